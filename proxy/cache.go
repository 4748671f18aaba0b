package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// The read-through cache, proxy side. The cache package stores entries and generations; the
// proxy decides what may be cached (cacheRequest), runs a cached read (cachedRead: a hit is
// replayed, a miss runs on a backend chosen so that the fill is exact), and bumps the
// generations a write touched after it commits and before the client sees its ReadyForQuery
// (bumpTouches).

// Bypass reasons, the shardwire_cache_bypass_total label for a read the cache did not serve
// (besides the router's NoCacheReason names).
const (
	bypassTable       = "table"       // reads a table not configured cacheable (and no hint)
	bypassNoTable     = "no_table"    // touches no table at all
	bypassTarget      = "target"      // not a single-group or scattered read
	bypassTransaction = "transaction" // inside a transaction, a pipeline, or a pinned session
	bypassStrong      = "strong"      // SET shardwire.consistency = 'strong'
	bypassUnavailable = "unavailable" // Redis is unreachable (or clustered without Redis)
	bypassPortal      = "portal"      // an Execute with a row limit (a suspended portal)
	bypassRecovering  = "recovering"  // the session read on the writer while Redis was out, lately
)

// Fill refusal reasons (shardwire_cache_fills_refused_total).
const (
	refuseSize   = "size"   // the result exceeded max_result_bytes
	refuseError  = "error"  // the backend answered with an error or a notice
	refuseStatus = "status" // the backend was left inside a transaction
)

// cacheRead is what a cacheable read needs beyond its portal: its generations and what they
// ask of the backends a miss may read from.
type cacheRead struct {
	ttl  time.Duration
	gens []cache.Gen
	vals []cache.GenValue
	// need[g] is the replay position a replica of group g must have reached for a fill from
	// it; writerOnly[g] says only g's writer may fill (a generation without a known position).
	need       []uint64 // by group index
	writerOnly []bool
	key        cache.Key
}

// needOf returns what a fill from group gi needs.
func (r *cacheRead) needOf(gi int) (minLSN uint64, writerOnly bool) {
	if gi < 0 || gi >= len(r.need) {
		return 0, true
	}
	return r.need[gi], r.writerOnly[gi]
}

// cacheRequest decides whether plan's read may be served from the cache and, when it may,
// returns the cacheRead with its generations read. nil means the normal path; the reason is
// counted. query is the statement text; bind the client's Bind (nil for a simple query).
func (s *session) cacheRequest(plan *router.Plan, m *shardmap.Map) *cacheRead {
	c := s.srv.cache
	s.cacheOff = false
	if c == nil {
		return nil
	}
	if plan.Kind != router.KindRead {
		if plan.NoCache == router.NoCacheLocking {
			c.Bypass(plan.NoCache.String()) // a locking read runs on the writer as a write
		}
		return nil
	}
	cfg := &s.srv.config().Cache
	if plan.NoCache != router.CacheOK {
		c.Bypass(plan.NoCache.String())
		return nil
	}
	if len(plan.Tables) == 0 {
		c.Bypass(bypassNoTable)
		return nil
	}
	ttl := time.Duration(0)
	for _, t := range plan.Tables {
		tableTTL, ok := cfg.Tables[t]
		if !ok {
			c.Bypass(bypassTable)
			return nil
		}
		if ttl == 0 || tableTTL.D() < ttl {
			ttl = tableTTL.D()
		}
	}
	if plan.CacheTTL > 0 && plan.CacheTTL < ttl {
		ttl = plan.CacheTTL // a hint shortens the TTL; the table's is the cap
	}
	switch plan.Target {
	case router.TargetShards:
		if _, one := shardsGroup(plan.Shards, m); !one {
			c.Bypass(bypassTarget) // the normal path refuses it (0A000)
			return nil
		}
	case router.TargetScatter, router.TargetDefault:
	default:
		c.Bypass(bypassTarget)
		return nil
	}
	if s.strong {
		c.Bypass(bypassStrong)
		return nil
	}
	if !s.idleForCache() || plan.Statements != 1 {
		c.Bypass(bypassTransaction)
		return nil
	}
	if time.Now().Before(s.directUntil) {
		c.Bypass(bypassRecovering)
		s.cacheOff = true
		return nil
	}
	if !c.Usable() {
		c.Bypass(bypassUnavailable)
		s.readDirect(cfg)
		return nil
	}
	r := &cacheRead{ttl: ttl}
	r.gens = s.readGens(plan, m, r.gens)
	// The cache bounds its Redis round trips itself (cache.timeout).
	vals, err := c.Generations(s.ctx, r.gens, nil)
	if err != nil {
		c.Bypass(bypassUnavailable)
		s.readDirect(cfg)
		s.logger().Debug("cache generations unavailable; reading from the database", zap.Error(err))
		return nil
	}
	r.vals = vals
	r.needs(m)
	return r
}

// readDirect sends this cacheable read to the writer, and the session's next ones for a
// while: a write it sees there may not have bumped its generations yet (the bump follows
// the commit), and until the bump has reached this node's memory of the generations a
// cached reply could be older than what the session just read (monotonic reads).
func (s *session) readDirect(cfg *config.Cache) {
	s.cacheOff = true
	s.directUntil = time.Now().Add(cfg.Staleness.D() + cfg.Timeout.D())
}

// idleForCache reports whether the session is between transactions with nothing in flight:
// a cached read is answered by the proxy itself, which needs the stream to itself.
func (s *session) idleForCache() bool {
	if s.mode == config.PoolModeSession {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server == nil && s.virtualTx == 0 && s.deferredBegin == nil && s.pinReason == "" && s.advisory == 0
}

// readGens appends the generations a read of plan includes: the database's global one; per
// table its GenTable on every group read; for a read of exact customers their GenCustomer,
// otherwise the GenShard of every shard read.
func (s *session) readGens(plan *router.Plan, m *shardmap.Map, dst []cache.Gen) []cache.Gen {
	db := s.db.BackendName
	dst = append(dst, cache.Gen{Kind: cache.GenGlobal, DB: db})
	var groups []int
	shards := plan.Shards
	switch plan.Target {
	case router.TargetShards:
		if gi, ok := shardsGroup(plan.Shards, m); ok {
			groups = append(groups, gi)
		}
	case router.TargetScatter:
		shards = shardmap.AllShards
		for gi := range m.Groups {
			if !m.OwnedBy(gi).Empty() {
				groups = append(groups, gi)
			}
		}
	default:
		groups = append(groups, m.DefaultGroup)
	}
	for _, t := range plan.Tables {
		for _, gi := range groups {
			dst = append(dst, cache.Gen{Kind: cache.GenTable, DB: db, Table: t, Group: m.Groups[gi].Name})
		}
		if _, sharded := m.KeyColumn(t); !sharded || plan.Target == router.TargetDefault {
			continue
		}
		if plan.Target == router.TargetShards && plan.Keys.Exact() {
			for i := 0; i < plan.Keys.Len(); i++ {
				dst = append(dst, cache.Gen{Kind: cache.GenCustomer, DB: db, Table: t, N: plan.Keys.At(i)})
			}
			continue
		}
		for _, sh := range shards.Shards() {
			dst = append(dst, cache.Gen{Kind: cache.GenShard, DB: db, Table: t, N: int64(sh)})
		}
	}
	return dst
}

// needs works out, per group, what a backend must have replayed to fill this read: a
// generation last bumped by a write on group g at a known position asks g's replicas for that
// position; one without a known position (created, flushed, or bumped on another group since
// a shard moved) leaves only g's writer. The global generation is never about data.
func (r *cacheRead) needs(m *shardmap.Map) {
	r.need, r.writerOnly = make([]uint64, len(m.Groups)), make([]bool, len(m.Groups))
	for i, g := range r.gens {
		v := r.vals[i]
		var gi int
		switch g.Kind {
		case cache.GenGlobal:
			continue
		case cache.GenTable:
			gi = groupIndex(m, g.Group)
		case cache.GenShard:
			gi = m.Owner[g.N%shardmap.NumShards]
		case cache.GenCustomer:
			gi = m.Owner[shardmap.ShardOf(g.N)]
		}
		if gi < 0 || gi >= len(r.need) {
			continue
		}
		if v.LSN == 0 || v.LSN == cache.UnknownLSN || v.Group != m.Groups[gi].Name {
			r.writerOnly[gi] = true
			continue
		}
		r.need[gi] = max(r.need[gi], v.LSN)
	}
}

func groupIndex(m *shardmap.Map, name string) int {
	for i := range m.Groups {
		if m.Groups[i].Name == name {
			return i
		}
	}
	return -1
}

// cacheKey hashes everything the reply depends on: database, role, the session's settings,
// the statement and its parameters and formats, and the generations read.
func (s *session) cacheKey(pp *proxyPortal, simple bool) cache.Key {
	kb := s.srv.keyBuilders.Get().(*cache.KeyBuilder)
	defer s.srv.keyBuilders.Put(kb)
	kb.Reset()
	kb.String(s.db.BackendName)
	kb.String(s.user)
	kb.String(s.userCfg.ServerUser)
	s.mu.Lock()
	set := s.settings
	s.mu.Unlock()
	kb.Uint64(uint64(len(set.items)))
	for _, it := range set.items {
		kb.String(it.setSQL)
	}
	kb.String(pp.sql)
	if simple {
		kb.Uint64(0)
	} else {
		kb.Uint64(1)
		kb.Uint64(uint64(len(pp.paramOIDs)))
		for _, oid := range pp.paramOIDs {
			kb.Uint64(uint64(oid))
		}
		kb.Uint64(uint64(len(pp.bind.ParameterFormatCodes)))
		for _, f := range pp.bind.ParameterFormatCodes {
			kb.Uint64(uint64(f))
		}
		kb.Uint64(uint64(len(pp.bind.Parameters)))
		for _, p := range pp.bind.Parameters {
			if p == nil {
				kb.Uint64(1 << 63) // NULL, distinct from every length
				continue
			}
			kb.Bytes(p)
		}
		kb.Uint64(uint64(len(pp.bind.ResultFormatCodes)))
		for _, f := range pp.bind.ResultFormatCodes {
			kb.Uint64(uint64(f))
		}
	}
	r := pp.cache
	kb.Uint64(uint64(len(r.vals)))
	for _, v := range r.vals {
		kb.Uint64(v.V)
	}
	return kb.Sum()
}

// An entry is the backend's reply as the client would get it: a 4-byte length, the
// RowDescription frame, then every DataRow and the CommandComplete frame, byte for byte.

func entryParts(val []byte) (rowDesc, rest []byte, ok bool) {
	if len(val) < 4 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint32(val))
	if n > len(val)-4 {
		return nil, nil, false
	}
	return val[4 : 4+n], val[4+n:], true
}

// cachedRead answers a cacheable read: from the cache when its entry exists, else from a
// backend, storing the reply when it may. It writes the client's replies (not the final
// ReadyForQuery of a simple query) and returns the error to report, if any.
func (s *session) cachedRead(pp *proxyPortal, simple bool) *clientError {
	c := s.srv.cache
	r := pp.cache
	r.key = s.cacheKey(pp, simple)
	if s.replayEntry(pp, simple) {
		return nil
	}
	// A miss reads the database now: key it by Redis's generations, not by what this node
	// remembers (which may be up to the staleness bound old), or newer data would be filled
	// under older generations than entries of the current ones hold.
	fresh, err := c.FreshGenerations(s.ctx, r.gens, r.vals[:0:0])
	if err != nil {
		// Redis failed since: read on the writer without filling.
		s.readDirect(&s.srv.config().Cache)
		pp.cache = nil
		return s.uncachedRead(pp, simple)
	}
	if !slices.Equal(fresh, r.vals) {
		r.vals = fresh
		r.needs(pp.m)
		r.key = s.cacheKey(pp, simple)
		if s.replayEntry(pp, simple) {
			return nil
		}
	}
	leader, done, wait := c.Join(r.key)
	if !leader {
		ctx, cancel := context.WithTimeout(s.ctx, s.srv.config().Cache.Timeout.D()*10)
		_ = wait(ctx)
		cancel()
		if s.replayEntry(pp, simple) {
			return nil
		}
	} else {
		defer done()
	}
	c.Miss()
	if h := s.srv.cacheHook; h != nil {
		h(CacheStageGenerations, pp.sql)
	}
	start := time.Now()
	var capture *replyCapture
	var ce *clientError
	if pp.plan.Target == router.TargetScatter {
		capture = newReplyCapture(s.srv.config().Cache.MaxResultBytes)
		pp.capture = capture
		ce = s.scatter(pp, simple)
		pp.capture = nil
	} else {
		capture, ce = s.routedRead(pp, simple)
	}
	if ce != nil || capture == nil {
		return ce
	}
	if h := s.srv.cacheHook; h != nil {
		h(CacheStageFill, pp.sql)
	}
	switch {
	case capture.refused != "":
		c.FillRefused(capture.refused)
	default:
		ctx, cancel := context.WithTimeout(s.ctx, s.srv.config().Cache.Timeout.D())
		entry := capture.entry()
		if won, ok := c.Fill(ctx, r.key, entry, r.ttl); ok {
			c.Filled(time.Since(start))
			if !bytes.Equal(won, entry) {
				// Another fill of this key won with another reply: both are exact for the
				// key's generations (a write committed between them and has not bumped
				// yet), but this session saw its own, maybe the newer one. It keeps
				// reading its own under this key: never an older one (monotonic reads).
				s.ownKey, s.ownEntry = r.key, entry
			}
		} else {
			c.FillRefused(refuseSize)
		}
		cancel()
	}
	return nil
}

// uncachedRead runs a read the cache was to answer on the database after all (Redis failed
// meanwhile), without filling.
func (s *session) uncachedRead(pp *proxyPortal, simple bool) *clientError {
	if pp.plan.Target == router.TargetScatter {
		return s.scatter(pp, simple)
	}
	_, ce := s.routedRead(pp, simple)
	return ce
}

// replayEntry sends the cached reply for pp's key, if there is one, and reports whether it did.
func (s *session) replayEntry(pp *proxyPortal, simple bool) bool {
	c := s.srv.cache
	var val []byte
	var layer cache.Layer
	ok := false
	if s.ownEntry != nil && s.ownKey == pp.cache.key {
		val, layer, ok = s.ownEntry, cache.LayerL1, true
	} else {
		val, layer, ok = c.Get(s.ctx, pp.cache.key)
	}
	if !ok {
		return false
	}
	rowDesc, rest, ok := entryParts(val)
	if !ok {
		return false
	}
	c.Hit(layer)
	s.notePortalSeen(pp)
	s.wmu.Lock()
	if simple || pp.describe {
		s.writeClient(rowDesc)
	}
	for len(rest) >= 5 {
		n := int(binary.BigEndian.Uint32(rest[1:5])) + 1
		if n > len(rest) {
			break
		}
		s.writeClient(rest[:n])
		s.resultsSent++
		rest = rest[n:]
	}
	// A simple query's ReadyForQuery follows at once and flushes; in the extended protocol
	// the client may wait for these replies before it sends more (a Flush).
	if !simple && s.in.Buffered() == 0 {
		_ = s.out.Flush()
	}
	s.wmu.Unlock()
	return true
}

// notePortalSeen records what a hit tells about the session's later reads: it read data at
// least as new as the positions its generations name, so its later replica reads of those
// groups wait for them (monotonic reads across the cache and the database).
func (s *session) notePortalSeen(pp *proxyPortal) {
	if pp.cache == nil {
		return
	}
	for gi, lsn := range pp.cache.need {
		if gi < 0 || gi >= len(pp.m.Groups) || lsn == 0 {
			continue
		}
		if s.seenLSN == nil {
			s.seenLSN = make(map[string]uint64)
		}
		name := pp.m.Groups[gi].Name
		s.seenLSN[name] = max(s.seenLSN[name], lsn)
	}
}

// replyCapture collects a reply to store while it is also sent to the client.
type replyCapture struct {
	limit   int
	rowDesc []byte
	rest    []byte
	refused string // why it may not be stored; "" when it may
}

func newReplyCapture(limit int) *replyCapture { return &replyCapture{limit: limit} }

// add records one frame of the reply.
func (c *replyCapture) add(f []byte) {
	if c.refused != "" {
		return
	}
	switch wire.Frame(f).Type() {
	case wire.RowDescription:
		c.rowDesc = append(c.rowDesc[:0], f...)
		return
	case wire.DataRow, wire.CommandComplete, wire.EmptyQueryResponse:
	case wire.ErrorResponse, wire.NoticeResponse:
		c.refuse(refuseError)
		return
	default:
		return
	}
	if len(c.rowDesc)+len(c.rest)+len(f) > c.limit {
		c.refuse(refuseSize)
		return
	}
	c.rest = append(c.rest, f...)
}

func (c *replyCapture) refuse(why string) {
	if c.refused == "" {
		c.refused = why
		c.rest = nil
	}
}

// entry encodes the captured reply.
func (c *replyCapture) entry() []byte {
	out := make([]byte, 4, 4+len(c.rowDesc)+len(c.rest))
	binary.BigEndian.PutUint32(out, uint32(len(c.rowDesc)))
	out = append(out, c.rowDesc...)
	return append(out, c.rest...)
}

// routedRead runs a cache miss of a single-group read on a backend that may fill it — a
// replica that has replayed what the read's generations ask, else the group's writer — and
// returns the captured reply. The reply is held back until it is complete (up to the result
// size limit): a replica that fails before that is replaced by the next candidate, unseen by
// the client.
func (s *session) routedRead(pp *proxyPortal, simple bool) (*replyCapture, *clientError) {
	m := pp.m
	gi := m.DefaultGroup
	if pp.plan.Target == router.TargetShards {
		gi, _ = shardsGroup(pp.plan.Shards, m) // a single group: cacheRequest checked
	}
	name := m.Groups[gi].Name
	minLSN, writerOnly := uint64(0), s.cacheOff || s.strong
	if pp.cache != nil {
		minLSN, writerOnly = pp.cache.needOf(gi)
	}
	if _, own := s.ownWrite(name); own {
		writerOnly = true
	}
	msg := s.cacheMissMessage(pp, simple)
	limit := s.srv.config().Cache.MaxResultBytes
	for attempt := 0; ; attempt++ {
		t := routeTarget{group: gi, read: true, writer: writerOnly, minLSN: minLSN, shards: pp.plan.Shards}
		sc, entry, at, err := s.attach(t)
		if err != nil {
			return nil, asClientError(err)
		}
		if s.addMulti(sc) {
			s.endMulti()
			entry.release(sc)
			return nil, queryCanceledError()
		}
		capture := newReplyCapture(limit)
		streamed, ce, ioErr := s.runRead(sc, msg, pp, simple, capture)
		cancelled := s.endMulti()
		if ioErr != nil || cancelled {
			sc.MarkBroken()
		}
		entry.release(sc)
		if ioErr != nil && !streamed && !at.writer && attempt == 0 {
			s.srv.topo.health.Ban(sc.Addr(), ioErr)
			s.logger().Info("replica failed a cached read's miss; trying the next one", zap.String("server", sc.Addr()), zap.Error(ioErr))
			continue
		}
		if ioErr != nil {
			return nil, lostServerError().withCause(ioErr)
		}
		if ce != nil {
			return nil, ce
		}
		if at.writer {
			// The session has seen the writer's data: its later replica reads of the group
			// wait, as after its own write, for a replica that replayed at least as far
			// (monotonic reads when the next read cannot use the cache).
			if s.lastWrite == nil {
				s.lastWrite = make(map[string]time.Time)
			}
			s.lastWrite[name] = time.Now()
		}
		return capture, nil
	}
}

// cacheMissMessage builds what a miss sends: the client's Query, or its statement as an
// unnamed Parse, its Bind, a Describe of the portal (the entry keeps the RowDescription even
// when the client did not ask for it), an Execute and a Sync.
func (s *session) cacheMissMessage(pp *proxyPortal, simple bool) []byte {
	if simple {
		msg, _ := (&pgproto3.Query{String: pp.sql}).Encode(nil)
		return msg
	}
	bind := pp.bind
	bind.DestinationPortal, bind.PreparedStatement = "", ""
	msg, _ := (&pgproto3.Parse{Query: pp.sql, ParameterOIDs: pp.paramOIDs}).Encode(nil)
	msg, _ = bind.Encode(msg)
	msg, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(msg)
	msg, _ = (&pgproto3.Execute{}).Encode(msg)
	msg, _ = (&pgproto3.Sync{}).Encode(msg)
	return msg
}

// errReplyTooLong ends a backend reply that never reached ReadyForQuery in time.
var errReplyTooLong = errors.New("backend reply did not end")

// runRead sends msg on sc and relays its reply, capturing it. Frames are held back until the
// reply ends or outgrows the capture limit, then streamed. streamed reports whether any frame
// reached the client (after which a failure cannot be hidden); ce is the backend's own error
// for the client; ioErr a failure of the backend connection.
func (s *session) runRead(sc *pool.Conn, msg []byte, pp *proxyPortal, simple bool, capture *replyCapture) (streamed bool, ce *clientError, ioErr error) {
	sc.UnnamedOwner = nil
	if _, err := sc.W.Write(msg); err == nil {
		err = sc.W.Flush()
		if err != nil {
			return false, nil, fmt.Errorf("send: %w", err)
		}
	} else {
		return false, nil, fmt.Errorf("send: %w", err)
	}
	var held [][]byte // frames not yet sent to the client
	heldBytes := 0
	send := func(f []byte) {
		s.wmu.Lock()
		s.writeClient(f)
		switch wire.Frame(f).Type() {
		case wire.DataRow, wire.CommandComplete, wire.EmptyQueryResponse:
			s.resultsSent++
		}
		s.wmu.Unlock()
		streamed = true
	}
	flushHeld := func() {
		for _, f := range held {
			send(f)
		}
		held = nil
	}
	forward := func(f wire.Frame) {
		if streamed {
			send(f)
			return
		}
		held = append(held, append([]byte(nil), f...))
		heldBytes += len(f)
		if heldBytes > capture.limit {
			flushHeld()
		}
	}
	for {
		f, err := sc.R.Next()
		if err != nil {
			return streamed, nil, fmt.Errorf("read reply: %w", err)
		}
		switch f.Type() {
		case wire.ParseComplete, wire.BindComplete, wire.NoData:
			// Answered to the client already (the Parse, Bind) or not asked for.
		case wire.RowDescription:
			capture.add(f)
			if simple || pp.describe {
				forward(f)
			}
		case wire.ErrorResponse:
			capture.add(f)
			body := wire.Frame(downgradeFatal(f)).Body()
			s.srv.metrics.errors.WithLabelValues(errorCode(body), "server").Inc()
			ce = &clientError{code: errorCode(body), message: errorMessage(body), raw: downgradeFatal(f)}
			if isFatal(f.Body()) {
				sc.MarkBroken()
			}
		case wire.ReadyForQuery:
			if b := f.Body(); len(b) != 1 || b[0] != 'I' {
				capture.refuse(refuseStatus)
				sc.MarkBroken()
			}
			flushHeld()
			s.wmu.Lock()
			if s.in.Buffered() == 0 {
				_ = s.out.Flush()
			}
			s.wmu.Unlock()
			return streamed, ce, nil
		case wire.ParameterStatus:
			// A backend setting changed under a read (it cannot without a SET): pass it on.
			forward(f)
			capture.refuse(refuseError)
		default:
			capture.add(f)
			forward(f)
		}
	}
}

// Cache test hook stages: CacheStageGenerations runs after a miss read its generations and
// before it queries a backend; CacheStageFill after the backend answered, before the fill.
const (
	CacheStageGenerations = "generations"
	CacheStageFill        = "fill"
)

// SetCacheHook installs a function the cache path calls at each stage of a miss with the
// statement's text (tests pause a reader there). nil removes it. Set it before serving.
func (s *Server) SetCacheHook(h func(stage, sql string)) { s.cacheHook = h }

// Cache returns the node's cache, nil when caching is off.
func (s *Server) Cache() *cache.Cache { return s.cache }

// executeMaxRows returns an Execute message's row limit (0: all rows).
func executeMaxRows(f wire.Frame) uint32 {
	_, rest, ok := wire.CString(f.Body())
	if !ok || len(rest) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(rest)
}

// rebindUncached sends a cacheable portal's Bind (and its Describe) to a backend after all: the
// client executes it with a row limit, which only a backend portal can honour. Its
// BindComplete was sent already, so the backend's is swallowed.
func (s *session) rebindUncached(pp *proxyPortal) error {
	f := wire.Frame(pp.bindFrame)
	portal, rest, _ := wire.CString(f.Body())
	stmtName, params, _ := wire.CString(rest)
	var st *statement
	if len(stmtName) > 0 {
		st = s.statements[string(stmtName)]
	}
	t, ce := s.targetFor(&pp.plan, pp.m)
	if ce != nil {
		s.routeFailed(ce, false)
		return nil
	}
	if err := s.sendBind(f, portal, stmtName, params, st, t, nil, nil, actSwallow); err != nil {
		return err
	}
	if !pp.describe {
		return nil
	}
	msg := wire.AppendHeader(nil, wire.Describe, 2+len(portal))
	msg = append(append(append(msg, 'P'), portal...), 0)
	return s.forward(msg, pending{kind: pendDescribe})
}
