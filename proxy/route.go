package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// anyGroup is a target without a group preference: the attached backend, else the default
// group.
const anyGroup = -1

// anyTarget is where a message goes that the router did not plan (Parse and Describe of a
// statement, Sync, a function call): the attached backend, else the default group's writer,
// which has every schema change (a replica may not have replayed one yet).
var anyTarget = routeTarget{group: anyGroup, writer: true}

// routeTarget is where one request goes: a group, and whether it needs the group's writer.
type routeTarget struct {
	group  int
	writer bool
	// read: the request only reads, so a replica may serve it and a failed replica may be
	// retried elsewhere.
	read bool
	// shards names the request's shards, for error messages.
	shards shardmap.ShardSet
	// minLSN is a replay position a replica needs for this read beyond the session's own
	// (a cache fill's generations).
	minLSN uint64
}

// currentMap returns the shard map as the session's database sees it.
func (s *session) currentMap() *shardmap.Map {
	return s.srv.topo.mapFor(s.db.BackendName, s.loadSchema)
}

// loadSchema reads the database's schema on the default group's writer.
func (s *session) loadSchema(ctx context.Context) (schemaInfo, error) {
	m := s.srv.topo.store.Current()
	g := &m.Groups[m.DefaultGroup]
	entry, err := s.srv.poolFor(s.srv.topo.health.Writer(g.Name), s.db, s.userCfg)
	if err != nil {
		return schemaInfo{}, err
	}
	sc, err := entry.pool.Acquire(ctx)
	if err != nil {
		return schemaInfo{}, fmt.Errorf("schema of %s on %s: %w", s.db.BackendName, g.Name, err)
	}
	info, err := readSchema(sc, 10*time.Second)
	if err != nil {
		sc.MarkBroken()
	}
	entry.release(sc)
	return info, err
}

// routerSession is what the router needs of the session.
func (s *session) routerSession() router.Session {
	if s.hasLocalShardKey {
		s.mu.Lock()
		if s.virtualTx == 0 && (s.server == nil || s.txStatus == 'I') {
			s.hasLocalShardKey = false // SET LOCAL ends with its transaction
		}
		s.mu.Unlock()
	}
	switch {
	case s.hasLocalShardKey:
		return router.Session{ShardKey: s.localShardKey, HasShardKey: true}
	case s.hasShardKey:
		return router.Session{ShardKey: s.shardKey, HasShardKey: true}
	}
	return router.Session{}
}

// targetFor turns a plan for a single group (TargetAny, TargetDefault, TargetShards) into a
// target, or the error for a plan spanning groups.
func (s *session) targetFor(plan *router.Plan, m *shardmap.Map) (routeTarget, *clientError) {
	t := routeTarget{group: anyGroup, read: plan.Kind == router.KindRead}
	switch plan.Target {
	case router.TargetDefault:
		t.group = m.DefaultGroup
	case router.TargetShards:
		g, ok := shardsGroup(plan.Shards, m)
		if !ok {
			return t, crossGroupError(plan.Shards, m)
		}
		t.group, t.shards = g, plan.Shards
	}
	s.mu.Lock()
	inTx := s.virtualTx != 0 || (s.server != nil && s.txStatus != 'I')
	s.mu.Unlock()
	t.writer = !t.read || inTx || s.strong || s.cacheOff
	if t.read && !inTx && t.group != anyGroup {
		if _, writerOnly := s.ownWrite(m.Groups[t.group].Name); writerOnly {
			t.writer = true
		}
	}
	return t, nil
}

// shardsGroup returns the index of the one group owning every shard of shards, and false
// when they span several groups.
func shardsGroup(shards shardmap.ShardSet, m *shardmap.Map) (int, bool) {
	groups := m.GroupsOf(shards)
	if groups&(groups-1) != 0 {
		return -1, false
	}
	for g := range m.Groups {
		if groups&(1<<g) != 0 {
			return g, true
		}
	}
	return -1, false
}

// crossGroupError names two shards of a statement that live in different groups.
func crossGroupError(shards shardmap.ShardSet, m *shardmap.Map) *clientError {
	list := shards.Shards()
	a := list[0]
	for _, b := range list[1:] {
		if m.Owner[b] != m.Owner[a] {
			return newClientError(codeFeatureNotSupp, fmt.Sprintf(
				"statement touches shard %d (group %s) and shard %d (group %s); a statement or transaction runs in one shard group",
				a, m.OwnerOf(a).Name, b, m.OwnerOf(b).Name)).
				withHint("split the statement or transaction by customer, or send the rows of each group separately")
		}
	}
	return newClientError(codeFeatureNotSupp, "statement spans shard groups")
}

// txGroupError is the error for a statement that needs another group than the transaction's.
func txGroupError(t routeTarget, have int, m *shardmap.Map) *clientError {
	want := "group " + m.Groups[t.group].Name
	if !t.shards.Empty() {
		want = fmt.Sprintf("shard %d (group %s)", t.shards.Shards()[0], m.Groups[t.group].Name)
	}
	haveName := "?"
	if have >= 0 && have < len(m.Groups) {
		haveName = m.Groups[have].Name
	}
	return newClientError(codeFeatureNotSupp, fmt.Sprintf(
		"statement needs %s but the transaction is pinned to group %s (shards %s); the transaction is aborted",
		want, haveName, m.OwnedBy(have))).
		withHint("a transaction runs in one shard group: keep each transaction to one customer's rows")
}

// ownWrite tells how this session's reads of group see its own last write there: minLSN is
// the replay position a replica needs, and writerOnly is set while no health check that
// started after that write has told the position (only the writer is sure to have it).
func (s *session) ownWrite(group string) (minLSN uint64, writerOnly bool) {
	at, ok := s.lastWrite[group]
	if !ok {
		return 0, false
	}
	lsn, known := s.srv.topo.health.WriterLSNAfter(group, at)
	return lsn, !known
}

// errSwitchRefused says that the attached backend cannot be left for the request's target.
var errSwitchRefused = errors.New("attached backend cannot serve the target")

// begin makes sure a backend for t is attached, marks the session as writing, and returns with
// s.mu held. A backend already attached for another group is given up when the session may
// (no transaction, nothing pending); otherwise begin fails with errSwitchRefused wrapped in the
// client's error.
func (s *session) begin(t routeTarget) (*pool.Conn, error) {
	s.mu.Lock()
	if s.server != nil && !s.serves(t) {
		if s.queue.syncs > 0 && s.mode != config.PoolModeSession && s.relayDone == nil {
			// Earlier requests are still being answered: read their replies first; the
			// backend may go back to the pool at their end.
			s.mu.Unlock()
			s.pump()
			s.mu.Lock()
		}
		if s.server != nil && !s.serves(t) && len(s.branches) > 0 && s.txStatus == 'E' {
			s.mu.Unlock()
			return nil, &switchError{ce: newClientError("25P02", "current transaction is aborted, commands ignored until end of transaction block")}
		}
		if s.server != nil && !s.serves(t) && s.canBranchLocked(t) && t.group != s.srvGroup {
			// A transaction of a database with two_phase_commit takes on another group.
			if !s.drainBranchLocked() {
				s.mu.Unlock()
				return nil, &switchError{ce: newClientError(codeFeatureNotSupp,
					"a statement for another shard group must wait for the replies of the transaction's earlier statements").
					withHint("send a Sync (or wait for the results) before a statement for another customer's group")}
			}
			if err := s.switchBranchLocked(t); err != nil {
				s.mu.Unlock()
				return nil, err
			}
		}
		if s.server != nil && !s.serves(t) {
			if t.group == s.srvGroup && t.writer && !s.srvWriter && s.queue.len() == 0 && s.releasableLocked() && s.relayDone == nil {
				// A read-only session wants its group's writer now: give the replica back.
				sc := s.server
				entry := s.pool
				s.detachLocked(sc)
				s.mu.Unlock()
				entry.release(sc)
				s.mu.Lock()
			} else {
				m := s.curMap
				ce := txGroupError(t, s.srvGroup, m)
				if t.group == s.srvGroup {
					ce = newClientError(codeFeatureNotSupp, "a write cannot follow reads on a replica in the same pipeline").
						withHint("send a Sync between reads and writes, or open the transaction with BEGIN")
				}
				s.mu.Unlock()
				return nil, &switchError{ce: ce}
			}
		}
	}
	if s.server == nil {
		s.mu.Unlock()
		sc, entry, at, err := s.attach(t)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.server, s.pool = sc, entry
		s.srvGroup, s.srvWriter, s.srvAddr = at.group, at.writer, sc.Addr()
		s.wrote = false
		s.txStatus = 'I'
		s.attachedAt = time.Now()
		s.startReplayLocked(at)
		s.sendDeferredLocked(sc)
	}
	if t.group != anyGroup && !t.read && s.srvWriter {
		s.wrote = true
	}
	s.writing = true
	return s.server, nil
}

// serves reports whether the attached backend can take a request for t (s.mu held).
func (s *session) serves(t routeTarget) bool {
	if t.group == anyGroup {
		return true
	}
	return t.group == s.srvGroup && (!t.writer || s.srvWriter)
}

// switchError is a request refused because the session's backend serves another group.
type switchError struct{ ce *clientError }

func (e *switchError) Error() string { return e.ce.Error() }
func (e *switchError) Unwrap() error { return errSwitchRefused }

// sendDeferredLocked writes what the proxy held back until the transaction's group was known:
// the BEGIN it answered itself, then Parse messages it answered (s.mu held).
func (s *session) sendDeferredLocked(sc *pool.Conn) {
	if s.deferredBegin != nil {
		s.queue.push(pending{kind: pendQuery, action: actSwallow})
		_, _ = sc.W.Write(s.deferredBegin)
		s.deferredBegin = nil
		s.virtualTx = 0
		s.txStatus = 'T'
	}
	for _, d := range s.deferredParses {
		if d.synth != nil {
			s.queue.push(pending{kind: pendParse, action: actSynth, synth: d.synth})
			continue
		}
		if d.unnamed {
			if s.unnamed == nil || s.unnamedGen != d.gen {
				continue // replaced since; the client saw this Parse answered by the backend anyway
			}
			sc.UnnamedOwner, sc.UnnamedGen = s, s.unnamedGen
			s.queue.push(pending{kind: pendParse})
			_, _ = sc.W.Write(s.unnamed.frame)
			continue
		}
		if sc.Prepared().Has(d.stmt.name) {
			s.queue.push(pending{kind: pendParse, action: actSynth, synth: parseCompleteFrame})
			continue
		}
		s.scratch = s.prepareLocked(sc, s.scratch[:0], d.stmt, actForward, d.clientName)
		_, _ = sc.W.Write(s.scratch)
	}
	s.deferredParses = s.deferredParses[:0]
}

// deferredParse is a client's Parse the proxy holds until it knows which group runs the
// statement.
type deferredParse struct {
	synth      []byte // a reply the proxy made after the held Parse, to send in order
	unnamed    bool
	gen        uint64 // the unnamed statement's generation
	stmt       *statement
	clientName string
}

// attach checks a backend for t out of the pool and applies the session's settings to it. For
// a read it tries the candidates best first, banning a replica it cannot reach.
func (s *session) attach(t routeTarget) (*pool.Conn, *poolEntry, routeTarget, error) {
	m := s.curMap
	if m == nil {
		m = s.currentMap()
		s.curMap = m
	}
	if t.group == anyGroup {
		t.group = m.DefaultGroup
	}
	g := &m.Groups[t.group]
	hc := s.srv.topo.health
	var candidates []string
	if t.writer {
		candidates = append(s.candidates[:0], hc.Writer(g.Name))
	} else {
		// Equivalent replicas take turns: each session starts somewhere else, and moves on
		// with every transaction.
		s.readTurn++
		minLSN, _ := s.ownWrite(g.Name)
		minLSN = max(minLSN, t.minLSN, s.seenLSN[g.Name])
		if ddl, known := s.srv.topo.ddlLSN(g.Name); known {
			minLSN = max(minLSN, ddl)
			candidates = hc.ReadTargetsFrom(g.Name, minLSN, s.key.pid+s.readTurn, s.candidates[:0])
		} else {
			candidates = append(s.candidates[:0], hc.Writer(g.Name)) // a replica may lack the new schema
		}
	}
	s.candidates = candidates
	var lastErr error
	for i, addr := range candidates {
		last := i == len(candidates)-1
		sc, entry, err := s.acquire(addr)
		if err == nil {
			at := t
			at.writer = addr == hc.Writer(g.Name)
			s.srv.metrics.routed.WithLabelValues(g.Name, roleName(at.writer)).Inc()
			return sc, entry, at, nil
		}
		lastErr = err
		var ce *clientError
		if errors.As(err, &ce) && (ce.code == codeTooManyConnections || ce.code == codeAdminShutdown) {
			return nil, nil, t, err
		}
		if !last {
			hc.Ban(addr, err)
			s.srv.metrics.retries.WithLabelValues(g.Name).Inc()
			s.logger().Info("backend unreachable; trying the next one", zap.String("group", g.Name), zap.String("server", addr), zap.Error(err))
		}
	}
	return nil, nil, t, lastErr
}

func roleName(writer bool) string {
	if writer {
		return "writer"
	}
	return "replica"
}

// acquire checks a backend out of one endpoint's pool and gives it the session's settings.
func (s *session) acquire(addr string) (*pool.Conn, *poolEntry, error) {
	if s.srv.console.anyPaused.Load() {
		// PAUSE: a new transaction waits for RESUME before it takes a server connection.
		ctx, cancel := context.WithTimeout(s.ctx, s.srv.config().Pool.QueryWaitTimeout.D())
		err := s.srv.waitUnpaused(ctx, s.db.Name)
		cancel()
		if err != nil {
			return nil, nil, err
		}
	}
	entry, err := s.srv.poolFor(addr, s.db, s.userCfg)
	if err != nil {
		return nil, nil, err
	}
	sc := entry.pool.TryAcquire() // the common case: an idle backend, no waiting
	if sc == nil {
		if sc, err = s.waitForServer(entry); err != nil {
			return nil, nil, err
		}
	} else {
		s.srv.metrics.waitSeconds.Observe(0)
	}
	s.mu.Lock()
	want := s.settings
	s.mu.Unlock()
	have, _ := sc.Settings.(*settings)
	if have == nil {
		have = emptySettings
	}
	if sql := transitionSQL(have, want); sql != "" {
		if err := runSimple(sc, sql, 10*time.Second, nil); err != nil {
			entry.pool.Discard(sc)
			return nil, nil, newClientError(codeConnectionFailure, "could not restore session settings on a server connection").withCause(err)
		}
		sc.Settings = want
	}
	return sc, entry, nil
}

// routeFailed reports an error the proxy decided on for one request. A transaction open on the
// backend is failed there too, so that a later COMMIT cannot commit half of it: the backend
// itself raises the error. simple says whether the request was a simple Query.
func (s *session) routeFailed(ce *clientError, simple bool) {
	s.mu.Lock()
	sc := s.server
	open := sc != nil && (s.txStatus == 'T' || (s.queue.len() > 0 && s.queue.syncs == 0 && !simple))
	if s.server == nil && s.virtualTx == 'T' {
		s.virtualTx = 'E'
	}
	if !open {
		s.mu.Unlock()
		s.localError(ce, simple)
		return
	}
	s.writing = true
	s.srv.metrics.errors.WithLabelValues(ce.code, "proxy").Inc()
	raise := raiseStatement(ce)
	var msg []byte
	if simple {
		msg, _ = (&pgproto3.Query{String: raise}).Encode(nil)
		s.queue.push(pending{kind: pendQuery, start: time.Now()})
	} else {
		sc.UnnamedOwner = nil
		msg, _ = (&pgproto3.Parse{Query: raise}).Encode(nil)
		msg, _ = (&pgproto3.Bind{}).Encode(msg)
		msg, _ = (&pgproto3.Execute{}).Encode(msg)
		s.queue.push(pending{kind: pendParse, action: actSwallow})
		s.queue.push(pending{kind: pendBind, action: actSwallow})
		s.queue.push(pending{kind: pendExecute})
		s.skipUntilSync = true
	}
	s.mu.Unlock()
	_ = s.write(sc, msg)
}

// raiseStatement is a DO block that fails with ce's SQLSTATE, message and hint.
func raiseStatement(ce *clientError) string {
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	var b strings.Builder
	b.WriteString("DO $shardwire$BEGIN RAISE EXCEPTION USING ERRCODE = ")
	b.WriteString(q(ce.code))
	b.WriteString(", MESSAGE = ")
	b.WriteString(q(ce.message))
	if ce.hint != "" {
		b.WriteString(", HINT = ")
		b.WriteString(q(ce.hint))
	}
	b.WriteString("; END$shardwire$")
	return b.String()
}

// noteWriteLocked remembers that a write through this session committed on the attached
// backend's group (at its release), for read-your-writes (s.mu held).
func (s *session) noteWriteLocked() {
	if s.ranDDL {
		if s.srvWriter && s.curMap != nil && s.srvGroup >= 0 && s.srvGroup < len(s.curMap.Groups) {
			s.srv.topo.noteDDL(s.curMap.Groups[s.srvGroup].Name)
		}
		s.ranDDL = false
	}
	if !s.wrote || !s.srvWriter || s.curMap == nil || s.srvGroup < 0 || s.srvGroup >= len(s.curMap.Groups) {
		return
	}
	if s.lastWrite == nil {
		s.lastWrite = make(map[string]time.Time)
	}
	s.lastWrite[s.curMap.Groups[s.srvGroup].Name] = time.Now()
	s.wrote = false
}

// startReplayLocked starts recording a unit of work on a newly attached replica, so that it
// can be replayed elsewhere if the replica fails before answering (s.mu held).
//
// A unit attached on a writer for a write routed to shards outside a transaction records the
// same way, so that it can run again if it meets a move's fence (moves_fence.go).
func (s *session) startReplayLocked(at routeTarget) {
	s.replay = s.replay[:0]
	s.replayParses = append(s.replayParses[:0], s.deferredParses...)
	s.replayOK = !at.writer && at.read && s.deferredBegin == nil && s.mode != config.PoolModeSession && !s.replaying
	s.fenceOK = at.writer && !at.read && !at.shards.Empty() && s.deferredBegin == nil &&
		s.mode != config.PoolModeSession && !s.replaying && s.curMap != nil
	if s.fenceOK {
		s.fenceEpoch, s.fenceUnitAttempt = s.curMap.Epoch, s.fenceAttempt
	}
	s.wmu.Lock()
	s.sentLog, s.sentOverflow = s.sentLog[:0], false
	s.sentLogging = s.replayOK || s.fenceOK
	if s.sentLogging {
		s.replayResults = s.resultsSent
	}
	s.wmu.Unlock()
}

// replayableLocked reports whether the attached replica's failure may be hidden from the
// client by running its requests again elsewhere (s.mu held).
func (s *session) replayableLocked(sc *pool.Conn) bool {
	if !s.replayCandidateLocked(sc) {
		return false
	}
	s.wmu.Lock()
	untouched := s.resultsSent == s.replayResults && !s.sentOverflow
	s.wmu.Unlock()
	return untouched
}

// replayableLockedW is replayableLocked with s.wmu held too.
func (s *session) replayableLockedW(sc *pool.Conn) bool {
	return s.replayCandidateLocked(sc) && s.resultsSent == s.replayResults && !s.sentOverflow
}

func (s *session) replayCandidateLocked(sc *pool.Conn) bool {
	return s.replayOK && !s.replaying && !s.srvWriter && !s.clientGone && s.relayDone == nil &&
		s.server == sc && s.txStatus == 'I'
}

// replayElsewhere gives up a failed replica (banned for a while) and runs the unit's requests
// again on the next candidate. s.mu is held and released here.
func (s *session) replayElsewhere(sc *pool.Conn, cause error) {
	addr, group := s.srvAddr, ""
	if s.curMap != nil && s.srvGroup >= 0 && s.srvGroup < len(s.curMap.Groups) {
		group = s.curMap.Groups[s.srvGroup].Name
	}
	frames := append([]byte(nil), s.replay...)
	s.deferredParses = append(s.deferredParses[:0], s.replayParses...)
	s.queue.reset()
	s.flushMark = 0
	s.server = nil
	s.copyIn = false
	s.batch, s.batchFailed = s.batch[:0], false
	s.txStatus = 'I'
	entry := s.pool
	s.replaying = true
	s.mu.Unlock()
	sc.MarkBroken()
	entry.release(sc)
	s.srv.topo.health.Ban(addr, cause)
	s.srv.metrics.retries.WithLabelValues(group).Inc()
	s.logger().Info("replica failed a read before answering; running it on another endpoint",
		zap.String("group", group), zap.String("server", addr), zap.Error(cause))
	s.wmu.Lock()
	s.replaySkip = append([]byte(nil), s.sentLog...) // replies before the first result: sent already
	s.wmu.Unlock()
	skip := s.skipUntilSync
	s.skipUntilSync = false
	for len(frames) >= 5 {
		n := 1 + int(uint32(frames[1])<<24|uint32(frames[2])<<16|uint32(frames[3])<<8|uint32(frames[4]))
		if n > len(frames) {
			break
		}
		if err := s.dispatch(wire.Frame(frames[:n])); err != nil {
			s.logger().Warn("replaying a failed read", zap.Error(err))
			break
		}
		frames = frames[n:]
	}
	s.skipUntilSync = s.skipUntilSync || skip
	s.replaying = false
}
