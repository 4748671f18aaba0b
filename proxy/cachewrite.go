package proxy

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/proxy/health"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// posTouch is what a forwarded write will change, with the queue position of its request:
// the ReadyForQuery that ends the transaction at or after that position bumps it.
type posTouch struct {
	pos   uint64
	group string
	touch cache.Touch
}

// noteWriteTouchesLocked records the tables a write forwarded to the attached backend
// changes (s.mu held, before the write's replies are queued).
func (s *session) noteWriteTouchesLocked(plan *router.Plan, m *shardmap.Map) {
	if s.srv.cache == nil || len(plan.Tables) == 0 {
		return
	}
	switch plan.Kind {
	case router.KindWrite, router.KindDDL, router.KindOther:
	default:
		return
	}
	if s.srvGroup < 0 || s.srvGroup >= len(m.Groups) {
		return
	}
	n := len(s.touches)
	s.touches = appendTouches(s.touches, s.queue.pushed(), s.db.BackendName, m.Groups[s.srvGroup].Name, plan, m,
		s.srv.config().Cache.Tables)
	if len(s.touches) > n {
		s.hasTouches.Store(true)
	}
}

// appendTouches appends one touch per cacheable table plan writes. DDL and writes without
// exact customers touch whole tables.
func appendTouches[V any](dst []posTouch, pos uint64, db, group string, plan *router.Plan, m *shardmap.Map, cacheable map[string]V) []posTouch {
	for _, t := range plan.Tables {
		if _, ok := cacheable[t]; !ok {
			continue
		}
		pt := posTouch{pos: pos, group: group, touch: cache.Touch{DB: db, Table: t}}
		if _, sharded := m.KeyColumn(t); sharded && plan.Kind == router.KindWrite {
			pt.touch.Sharded = true
			if plan.Keys.Exact() {
				pt.touch.Customers = make([]int64, plan.Keys.Len())
				for i := range pt.touch.Customers {
					pt.touch.Customers[i] = plan.Keys.At(i)
				}
			}
		}
		dst = append(dst, pt)
	}
	return dst
}

// bumpAtReady runs before a ReadyForQuery reaches the client. When it ends a transaction
// (status 'I') that wrote, it bumps the generations the writes touched — with the writer's
// WAL position when it can ask for it without delaying anything queued — so that no read
// that starts after the client sees the acknowledgement is answered from before the write.
// It returns the frame to go on with (a new one when the backend's read buffer was reused).
func (s *session) bumpAtReady(sc *pool.Conn, f wire.Frame) wire.Frame {
	if b := f.Body(); len(b) != 1 || b[0] != 'I' {
		return f
	}
	s.mu.Lock()
	p := s.queue.peek()
	if p == nil || (p.kind != pendSync && p.kind != pendQuery) || p.action == actSwallow {
		s.mu.Unlock()
		return f
	}
	upTo := s.queue.popped
	rolledBack := s.txEndTag == "ROLLBACK"
	var take []posTouch
	keep := s.touches[:0]
	for _, t := range s.touches {
		if t.pos <= upTo {
			take = append(take, t)
		} else {
			keep = append(keep, t)
		}
	}
	clear(s.touches[len(keep):])
	s.touches = keep
	s.hasTouches.Store(len(keep) > 0)
	askLSN := s.srvWriter && s.queue.len() == 1 && !s.writing && s.relayDone == nil
	writerPool := s.pool
	onWriter := s.srvWriter
	s.mu.Unlock()
	if len(take) == 0 || rolledBack {
		return f // a rolled-back transaction changed nothing
	}
	var lsn uint64
	switch {
	case askLSN:
		lsn = s.writerLSN(sc)
		f = readyForQueryFrame('I') // the query reused the read buffer f pointed into
	case onWriter && writerPool != nil:
		// More requests are in flight on this backend: ask an idle one of the same writer
		// (its position now is past this commit too). Without one the position stays
		// unknown, and only the writer fills under these generations.
		if other := writerPool.pool.TryAcquire(); other != nil {
			lsn = s.writerLSN(other)
			writerPool.release(other)
		}
	}
	s.bump(take, lsn)
	return f
}

// writerLSN asks the attached writer for its WAL insert position, which is at or after the
// commit of everything it acknowledged; 0 when that fails.
func (s *session) writerLSN(sc *pool.Conn) uint64 {
	rows, err := queryText(sc, "SELECT pg_current_wal_insert_lsn()::text", 5*time.Second)
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		sc.MarkBroken()
		return 0
	}
	lsn, err := health.ParseLSN(rows[0][0])
	if err != nil {
		return 0
	}
	return lsn
}

// bump bumps the touches' generations, grouped by the group that committed them.
func (s *session) bump(take []posTouch, lsn uint64) {
	s.bumpEach(take, func(string) uint64 { return lsn })
}

// bumpEach is bump with each group's commit position (a transaction over several groups).
func (s *session) bumpEach(take []posTouch, lsnOf func(group string) uint64) {
	c := s.srv.cache
	start := time.Now()
	for len(take) > 0 {
		group := take[0].group
		touches := make([]cache.Touch, 0, len(take))
		rest := take[:0]
		for _, t := range take {
			if t.group == group {
				touches = append(touches, t.touch)
			} else {
				rest = append(rest, t)
			}
		}
		take = rest
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.config().Cache.Timeout.D())
		err := c.Bump(ctx, "proxy", group, lsnOf(group), touches)
		cancel()
		if err != nil {
			s.logger().Warn("cache: could not bump generations after a write; caching is off on this node until Redis answers",
				zap.String("group", group), zap.Duration("after", time.Since(start)), zap.Error(err))
		}
	}
}

// bumpLost bumps every touch still held when the backend died: whether the transaction
// committed is unknown, so its tables are treated as written.
func (s *session) bumpLostLocked() {
	if len(s.touches) == 0 {
		return
	}
	take := append([]posTouch(nil), s.touches...)
	clear(s.touches)
	s.touches = s.touches[:0]
	s.hasTouches.Store(false)
	go s.bump(take, 0)
}

// bumpBroadcast bumps the tables of a DDL run on every group, with each group's writer
// position after it (lsns; missing: unknown).
func (s *session) bumpBroadcast(plan *router.Plan, m *shardmap.Map, lsns map[string]uint64) {
	if s.srv.cache == nil || len(plan.Tables) == 0 {
		return
	}
	p := *plan
	p.Kind = router.KindDDL
	for gi := range m.Groups {
		name := m.Groups[gi].Name
		take := appendTouches(nil, 0, s.db.BackendName, name, &p, m, s.srv.config().Cache.Tables)
		s.bump(take, lsns[name])
	}
}
