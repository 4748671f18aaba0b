package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// session is one client connection after login.
//
// Two goroutines touch it: the client loop (run, this file), which reads the client and writes
// to the attached backend, and the relay (relay.go), which reads the backend and writes to the
// client. Lock order: mu, then wmu. Fields are owned as their comments say.
type session struct {
	srv *Server
	log *zap.Logger // the node's; logger() adds the session's fields
	// logFields are added to log on first use: most sessions never log, and a logger with
	// fields costs more memory than an idle client is allowed.
	logFields  []zap.Field
	logOnce    sync.Once
	sessionLog *zap.Logger
	ctx        context.Context
	conn       net.Conn
	in         *wire.Reader // client loop only
	key        backendKey
	user       string
	db         config.Database
	userCfg    config.User
	mode       config.PoolMode
	pool       *poolEntry // the attached backend's pool (s.mu)

	// Client loop only.
	bytesIn       uint64 // received since last published to metrics
	unnamed       *unnamedStatement
	unnamedGen    uint64
	portals       map[string]*router.SessionEffects
	skipUntilSync bool
	scratch       []byte
	// flushMark is the queue position up to which a forwarded Flush asked for replies.
	flushMark uint64

	// Routing (client loop only).
	curMap           *shardmap.Map // the map the current request was planned with
	bindParams       bindParams
	proxyPortals     map[string]*proxyPortal // portals the proxy executes itself (scatter, DDL)
	describedPortals []string                // proxy portals described since the last Sync, in order
	candidates       []string
	readTurn         uint32 // advances per read attach, to spread reads over replicas
	shardKey         int64
	hasShardKey      bool
	localShardKey    int64
	hasLocalShardKey bool
	lastWrite        map[string]time.Time // group name → when a write of this session last committed there, or a cacheable read of it was served by the writer
	// seenLSN is, per group, the replay position of data this session was served from the
	// cache: its later replica reads of the group wait for it (monotonic reads).
	seenLSN map[string]uint64
	// strong: SET shardwire.consistency = 'strong' — reads go to writers, never the cache.
	strong bool
	// cacheOff: the current request is a cacheable read while the cache cannot be used
	// (Redis unreachable): it reads on the writer, which keeps the cache's guarantees
	// (monotonic reads, the staleness bound) through the outage.
	cacheOff bool
	// directUntil: until then the session's cacheable reads stay on the writer (readDirect).
	directUntil time.Time
	// ownKey and ownEntry are the last cache key whose fill lost to another reply than the
	// one this session was sent, and that reply: its later reads of the key get it again.
	ownKey   cache.Key
	ownEntry []byte
	// ranDDL: a DDL was sent since the backend was attached; its release marks the group
	// (topology.noteDDL) so that this node's replica reads wait for the new schema (s.mu).
	ranDDL bool

	mu          sync.Mutex
	writingDone *sync.Cond    // signalled when writing turns false
	server      *pool.Conn    // attached backend, nil when none
	relayDone   chan struct{} // closed when the relay goroutine ends; nil while none runs
	queue       queue
	writing     bool // the client loop is writing to server
	txStatus    byte
	clientGone  bool
	copyIn      bool
	cancelling  int
	statements  map[string]*statement // client statement name → shared statement
	startup     *settings             // settings from the startup packet (what RESET returns to)
	settings    *settings             // committed session settings
	txSettings  *settings             // settings staged in the open transaction, nil if none
	txResets    bool                  // the staged changes RESET a startup parameter
	batch       []router.SettingChange
	batchFailed bool
	txEndTag    string // "COMMIT" or "ROLLBACK" seen since the last ReadyForQuery
	// touches are what forwarded writes change, bumped in the cache when their transaction
	// ends (cachewrite.go); hasTouches says there are any without taking mu.
	touches    []posTouch
	hasTouches atomic.Bool
	advisory   int // session advisory locks held
	pinReason  string
	attachedAt time.Time
	// Routing state under mu.
	srvGroup      int    // group index of the attached backend in curMap
	srvWriter     bool   // the attached backend is its group's writer
	srvAddr       string // its endpoint
	wrote         bool   // it ran a write since it was attached
	virtualTx     byte   // transaction status the proxy shows while it holds a BEGIN back ('T', 'E') or 0
	deferredBegin []byte
	// txBeginFrame is the client's BEGIN of the open transaction, which a new branch opens
	// with too (dtx.go); nil when the proxy did not keep it.
	txBeginFrame []byte
	// branches are the backends of a transaction spanning shard groups, the attached one
	// included; empty otherwise (dtx.go).
	branches []branch
	// durObs is the latency histogram for the attached backend's route and group, valid
	// while curMap, srvGroup and srvWriter are durMap, durGroup and durWriter (s.mu).
	durObs    prometheus.Observer
	durMap    *shardmap.Map
	durGroup  int
	durWriter bool
	// savepoints: the open transaction used a savepoint, so it cannot span groups.
	savepoints bool
	// implicitTx: the proxy opened the transaction itself for one statement it splits over
	// groups (multi-row INSERT, COPY); it commits it when the statement succeeded.
	implicitTx bool
	// copySplit is the COPY FROM STDIN the proxy is splitting over groups, nil when none;
	// copyDiscard drops the client's remaining COPY data after the proxy failed the copy.
	copySplit      *copySplit
	copyDiscard    bool
	deferredParses []deferredParse
	// multi are the backends of a running scatter or DDL on every group (for cancel);
	// multiCancelled says a cancel was sent to them.
	multi          []*pool.Conn
	multiRunning   bool
	multiCancelled bool
	// lostTx: the backend died while the client was idle in a transaction; its next request
	// gets an error instead of silently running outside that transaction.
	lostTx atomic.Bool
	// skipAfterServerLoss asks the client loop to skip to the next Sync (set by the relay).
	skipAfterServerLoss atomic.Bool

	wmu      sync.Mutex
	out      *wire.Writer // to the client
	bytesOut uint64       // sent since last published to metrics (wmu)
	// resultsSent counts results written to the client (rows, command completions, errors,
	// ReadyForQuery): what a replay must not repeat (wmu).
	resultsSent uint64
	replaySkip  []byte // types of the frames of a replayed unit the client already has (wmu)

	// A read on a replica that fails before anything reached the client is replayed on another
	// endpoint (client loop, and s.mu where a backend is attached or released).
	replay        []byte          // the client's messages since the replica was attached
	replayResults uint64          // resultsSent when it was attached (wmu)
	replayParses  []deferredParse // held-back Parses it was sent at attach
	replayOK      bool            // the unit can still be replayed
	replaying     bool
	// sentLog lists the types of the frames written to the client since a replayable unit
	// was attached, while sentLogging (at most maxSentLog; past it sentOverflow, and the unit
	// is no longer replayable); a replay skips the same frames again (replaySkip) (wmu).
	sentLog      []byte
	sentLogging  bool
	sentOverflow bool

	// A write routed outside a transaction that meets a move's fence is run again once a
	// newer map arrives (moves_fence.go). It records its unit in replay, as a replica read
	// does (client loop, and s.mu where a backend is attached or released).
	fenceOK          bool        // the attached unit records for a fence retry
	fenceEpoch       int64       // the map epoch the unit was routed with
	fenceAttempt     int         // retries of the request being dispatched again (client loop)
	fenceUnitAttempt int         // fenceAttempt when the unit was attached
	fenceErr         []byte      // the fence error kept back until its request's ReadyForQuery
	fenceRetry       *fenceRetry // a retry for the pump to run (runFenceRetry)
	// holdCancel, while the client loop waits for a map (a held statement or a fence
	// retry), is closed by a CancelRequest for the session (s.mu).
	holdCancel chan struct{}
}

// maxSentLog bounds sentLog.
const maxSentLog = 256

// run is the client loop. It returns when the client leaves or must be disconnected.
func (s *session) run() error {
	defer s.clientLeft()
	for {
		f, err := s.in.Next()
		if err != nil {
			return s.clientReadError(err)
		}
		s.bytesIn += uint64(len(f))
		if err := s.handle(f); err != nil {
			if errors.Is(err, errTerminate) || errors.Is(err, errClientGone) {
				return nil
			}
			return err
		}
		if s.in.Buffered() == 0 {
			s.pump()
		}
	}
}

var errTerminate = errors.New("client sent Terminate")

// logger returns the session's logger, built on first use.
func (s *session) logger() *zap.Logger {
	s.logOnce.Do(func() { s.sessionLog = s.log.With(s.logFields...) })
	return s.sessionLog
}

// takeLostTx reports and clears the lost-transaction mark.
func (s *session) takeLostTx() bool {
	return s.lostTx.Load() && s.lostTx.Swap(false)
}

func (s *session) clientReadError(err error) error {
	var tooLarge *wire.TooLargeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return nil
	case errors.As(err, &tooLarge):
		ce := fatalError(codeProgramLimit, fmt.Sprintf("message of %d bytes exceeds max_message_size (%d bytes)", tooLarge.Size, tooLarge.Limit))
		s.sendFatal(ce.withCause(err))
		return ce
	case errors.Is(err, wire.ErrInvalidLength), errors.Is(err, io.ErrUnexpectedEOF):
		ce := fatalError(codeProtocolViolation, "invalid message framing").withCause(err)
		s.sendFatal(ce)
		return ce
	}
	return err
}

// handle processes one client message; for a replica read or a write that may meet a move's
// fence it keeps the message for a replay.
func (s *session) handle(f wire.Frame) error {
	err := s.dispatch(f)
	s.record(f)
	return err
}

// record keeps a message of the attached unit for a replay: on a replica (a failed read runs
// elsewhere) or on a writer for a routed write (a fenced write runs again).
func (s *session) record(f wire.Frame) {
	if !(s.replayOK && !s.replaying) && !s.fenceOK {
		return
	}
	s.mu.Lock()
	switch {
	case s.server == nil:
	case s.replayOK && !s.replaying && !s.srvWriter:
		s.replay = append(s.replay, f...)
	case s.fenceOK && s.srvWriter:
		if len(s.replay)+len(f) > maxFenceRecord {
			s.fenceOK, s.replay = false, nil // too large to keep: this unit is not retried
			break
		}
		s.replay = append(s.replay, f...)
	}
	s.mu.Unlock()
}

// dispatch processes one client message.
func (s *session) dispatch(f wire.Frame) error {
	typ := f.Type()
	if s.skipAfterServerLoss.Load() && s.skipAfterServerLoss.Swap(false) {
		s.skipUntilSync = true
	}
	if typ != wire.Sync && typ != wire.Terminate && typ != wire.Flush && s.takeLostTx() {
		s.localError(lostServerError(), typ == wire.Query || typ == wire.FuncCall)
		return nil
	}
	if s.skipUntilSync && typ != wire.Sync && typ != wire.Terminate {
		return nil // the backend would discard these after an error, so does the proxy
	}
	if s.copySplit != nil && typ != wire.Terminate {
		return s.copySplitMessage(f)
	}
	if s.copyDiscard {
		if typ == wire.CopyData || typ == wire.CopyDone || typ == wire.CopyFail {
			return nil // the rest of a COPY the proxy failed, as Postgres drops it
		}
		s.copyDiscard = false
	}
	switch typ {
	case wire.Query:
		return s.handleQuery(f)
	case wire.Parse:
		return s.handleParse(f)
	case wire.Bind:
		return s.handleBind(f)
	case wire.Describe:
		return s.handleDescribe(f)
	case wire.Execute:
		return s.handleExecute(f)
	case wire.Close:
		return s.handleClose(f)
	case wire.Sync:
		return s.handleSync(f)
	case wire.Flush:
		return s.forwardIfAttached(f, false)
	case wire.CopyData, wire.CopyDone, wire.CopyFail:
		return s.forwardIfAttached(f, true)
	case wire.FuncCall:
		return s.forward(f, pending{kind: pendQuery, start: time.Now()})
	case wire.Terminate:
		return errTerminate
	}
	ce := fatalError(codeProtocolViolation, fmt.Sprintf("unexpected message type %q", typ))
	s.sendFatal(ce)
	return ce
}

func (s *session) handleQuery(f wire.Frame) error {
	s.publishBytesIn()
	body := f.Body()
	if len(body) == 0 || body[len(body)-1] != 0 {
		ce := fatalError(codeProtocolViolation, "malformed Query message")
		s.sendFatal(ce)
		return ce
	}
	sql := body[:len(body)-1]
	eff := analyze(sql)
	if eff != nil {
		if ce := s.refuse(eff); ce != nil {
			s.routeFailed(ce, true)
			return nil
		}
		if eff.Flags == router.EffectDeallocate && s.deallocate(eff) {
			s.reply(commandCompleteFrame(deallocateTag(eff)))
			s.reply(nil)
			return nil
		}
	}
	if tag, ce, ok := s.proxySetting(sql); ok {
		if ce != nil {
			s.localError(ce, true)
			return nil
		}
		s.reply(commandCompleteFrame(tag))
		s.reply(nil)
		return nil
	}
	m := s.currentMap()
	s.curMap = m
	plan := s.srv.topo.router.Route(bytesToString(sql), s.routerSession(), m)
	if s.refused(&plan, m, true) {
		return nil
	}
	if s.inMultiGroupTx() {
		if s.refuseInMultiGroupTx(&plan, true) {
			return nil
		}
		if plan.Statements == 1 && (plan.Kind == router.KindCommit || plan.Kind == router.KindRollback) {
			return s.endMultiGroupTx(plan.Kind == router.KindCommit, true, false)
		}
	}
	if req := s.cacheRequest(&plan, m); req != nil {
		return s.runProxyQuery(&proxyPortal{sql: string(sql), plan: plan, m: m, describe: true, cache: req}, true)
	}
	switch plan.Target {
	case router.TargetScatter, router.TargetAllGroups:
		return s.runProxyQuery(&proxyPortal{sql: string(sql), plan: plan, m: m, describe: true}, true)
	}
	if plan.Statements == 1 && s.virtualTxControl(f, &plan) {
		return nil
	}
	if plan.Target == router.TargetShards && !m.Frozen().Empty() {
		switch r, err := s.gateMove(&plan, m, true); {
		case err != nil:
			return err
		case r == gateAgain:
			return s.handleQuery(f) // the freeze ended: route it with the new map
		case r == gateDone:
			return nil
		}
	}
	if plan.Target == router.TargetSplit || (plan.Split != nil && splitsGroups(&plan, m)) {
		return s.runProxyQuery(&proxyPortal{sql: string(sql), plan: plan, m: m, describe: true}, true)
	}
	if plan.Kind == router.KindDDL {
		defer s.srv.topo.schemaChanged(s.db.BackendName)
	}
	t, ce := s.targetFor(&plan, m)
	if ce != nil {
		s.routeFailed(ce, true)
		return nil
	}
	sc, err := s.begin(t)
	if err != nil {
		return s.beginFailed(err, true)
	}
	sc.UnnamedOwner = nil // a simple query drops the backend's unnamed statement
	s.savepoints = s.savepoints || plan.Kind == router.KindSavepoint
	s.noteWriteTouchesLocked(&plan, m)
	s.ranDDL = s.ranDDL || plan.Kind == router.KindDDL
	s.queue.push(pending{kind: pendQuery, effects: eff, start: time.Now()})
	s.mu.Unlock()
	return s.write(sc, f)
}

// refused answers a request the proxy will not run — in a held transaction that already
// failed, while the node's lease on the map is expired, rejected by the router, or DDL on a
// sharded table while a shard is being moved — and reports whether it did.
func (s *session) refused(plan *router.Plan, m *shardmap.Map, simple bool) bool {
	if s.abortedVirtualTx(plan, simple) {
		return true
	}
	if ce := s.srv.leaseError(plan); ce != nil {
		s.routeFailed(ce, simple)
		return true
	}
	if plan.Target == router.TargetReject {
		s.routeFailed(routeClientError(plan.Err), simple)
		return true
	}
	if ce := moveDDLError(plan, m); ce != nil {
		s.srv.moves.metrics.refused.WithLabelValues("ddl").Inc()
		s.routeFailed(ce, simple)
		return true
	}
	return false
}

// beginFailed reports a failed begin: a refused switch of group fails the request (and an
// open transaction); anything else is an attach failure.
func (s *session) beginFailed(err error, simple bool) error {
	var se *switchError
	if errors.As(err, &se) {
		s.routeFailed(se.ce, simple)
		return nil
	}
	return s.attachFailed(err, simple)
}

// bytesToString views b as a string without copying; the string is valid while b is unchanged.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// refuse returns the error for a statement the pool mode cannot run, or nil.
func (s *session) refuse(eff *router.SessionEffects) *clientError {
	if eff.Flags&router.EffectListen != 0 && s.mode != config.PoolModeSession {
		return newClientError(codeFeatureNotSupp, "LISTEN/UNLISTEN need a session-mode pool").
			withHint("connect as a user or to a database configured with pool_mode: session")
	}
	if eff.Flags&router.EffectBegin != 0 && s.mode == config.PoolModeStatement {
		return newClientError(codeFeatureNotSupp, "transaction blocks are not allowed in statement pooling mode").
			withHint("use a transaction- or session-mode pool for multi-statement transactions")
	}
	return nil
}

// deallocate answers DEALLOCATE for statements the proxy prepared on the client's behalf and
// reports whether it did. Names it does not know (SQL-level PREPARE on a pinned session, or no
// such statement) go to the backend, which answers as Postgres would.
func (s *session) deallocate(eff *router.SessionEffects) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if eff.DeallocateAll {
		clear(s.statements)
		return s.pinReason == ""
	}
	if _, ok := s.statements[eff.Deallocate]; !ok {
		return false
	}
	delete(s.statements, eff.Deallocate)
	return true
}

func deallocateTag(eff *router.SessionEffects) string {
	if eff.DeallocateAll {
		return "DEALLOCATE ALL"
	}
	return "DEALLOCATE"
}

// analyze returns the session effects of sql, or nil when it has none (the common case, which
// allocates nothing).
func analyze(sql []byte) *router.SessionEffects {
	if len(sql) == 0 {
		return nil
	}
	eff := router.AnalyzeSession(unsafe.String(&sql[0], len(sql)))
	if eff.Flags == 0 {
		return nil
	}
	// Analyze again over a copy: the result keeps substrings of its input.
	eff = router.AnalyzeSession(string(sql))
	return &eff
}

func (s *session) handleParse(f wire.Frame) error {
	name, rest, ok := wire.CString(f.Body())
	if !ok {
		return s.protocolViolation("malformed Parse message")
	}
	query, _, ok := wire.CString(rest)
	if !ok {
		return s.protocolViolation("malformed Parse message")
	}
	if len(name) == 0 {
		eff := analyze(query)
		if eff != nil {
			if ce := s.refuse(eff); ce != nil {
				s.localError(ce, false)
				return nil
			}
		}
		s.unnamedGen++
		s.unnamed = &unnamedStatement{frame: append([]byte(nil), f...), effects: derefEffects(eff)}
		s.mu.Lock()
		if s.server == nil {
			// Which group runs it is known at Bind: hold the Parse until a backend is chosen.
			s.deferredParses = append(s.deferredParses, deferredParse{unnamed: true, gen: s.unnamedGen})
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		sc, err := s.begin(anyTarget)
		if err != nil {
			return s.beginFailed(err, false)
		}
		sc.UnnamedOwner, sc.UnnamedGen = s, s.unnamedGen
		s.queue.push(pending{kind: pendParse})
		s.mu.Unlock()
		return s.write(sc, f)
	}
	st := s.srv.statements.lookup(rest)
	if ce := s.refuse(&st.effects); ce != nil {
		s.localError(ce, false)
		return nil
	}
	if !st.valid.Load() && s.heldTx() {
		// Inside a held BEGIN: check it on a side connection rather than pin the
		// transaction to the group a backend would be attached from.
		if ce := s.sidePrepare(st); ce != nil {
			s.localError(ce, false)
			return nil
		}
	}
	if st.valid.Load() {
		// Known good: no backend needed now (a transaction-pooled client may prepare while
		// every backend is busy); the Bind prepares it on whichever backend runs it.
		s.mu.Lock()
		s.nameStatementLocked(name, st)
		s.mu.Unlock()
		s.reply(parseCompleteFrame)
		return nil
	}
	sc, err := s.begin(anyTarget)
	if err != nil {
		return s.beginFailed(err, false)
	}
	s.nameStatementLocked(name, st)
	if sc.Prepared().Has(st.name) {
		s.queue.push(pending{kind: pendParse, action: actSynth, synth: parseCompleteFrame})
		s.mu.Unlock()
		return s.endWrite(sc)
	}
	s.scratch = s.prepareLocked(sc, s.scratch[:0], st, actForward, string(name))
	s.mu.Unlock()
	return s.write(sc, s.scratch)
}

// nameStatementLocked records the client's name for st (s.mu held).
func (s *session) nameStatementLocked(name []byte, st *statement) {
	if cur, ok := s.statements[string(name)]; !ok || cur != st {
		s.statements[string(name)] = st
	}
}

func derefEffects(e *router.SessionEffects) router.SessionEffects {
	if e == nil {
		return router.SessionEffects{}
	}
	return *e
}

// prepareLocked appends the messages that prepare st on sc (a Close for an evicted statement,
// then the Parse) and queues their replies. s.mu is held.
func (s *session) prepareLocked(sc *pool.Conn, dst []byte, st *statement, act pendingAction, clientName string) []byte {
	if evicted, ok := sc.Prepared().Add(st.name); ok {
		dst = appendRenamed(dst, wire.Close, []byte{'S'}, evicted, nil)
		s.queue.push(pending{kind: pendClose, action: actSwallow})
	}
	s.queue.push(pending{kind: pendParse, action: act, stmt: st, clientName: clientName})
	return append(dst, st.frame...)
}

// ensureUnnamedLocked re-sends the client's unnamed Parse when sc does not hold it.
func (s *session) ensureUnnamedLocked(sc *pool.Conn, dst []byte) []byte {
	if s.unnamed == nil || (sc.UnnamedOwner == s && sc.UnnamedGen == s.unnamedGen) {
		return dst
	}
	sc.UnnamedOwner, sc.UnnamedGen = s, s.unnamedGen
	s.queue.push(pending{kind: pendParse, action: actSwallow})
	return append(dst, s.unnamed.frame...)
}

func (s *session) handleBind(f wire.Frame) error {
	portal, rest, ok := wire.CString(f.Body())
	if !ok {
		return s.protocolViolation("malformed Bind message")
	}
	stmtName, params, ok := wire.CString(rest)
	if !ok {
		return s.protocolViolation("malformed Bind message")
	}
	if len(s.proxyPortals) > 0 {
		delete(s.proxyPortals, string(portal))
	}
	var parse []byte // the Parse message of the statement bound, to route it
	var st *statement
	if len(stmtName) == 0 {
		if s.unnamed != nil {
			parse = s.unnamed.frame
		}
	} else if st = s.statements[string(stmtName)]; st != nil {
		parse = st.frame
	}
	t := anyTarget
	if parse != nil {
		query := parseQuery(parse)
		m := s.currentMap()
		s.curMap = m
		if err := s.bindParams.reset(params); err != nil {
			return s.protocolViolation("malformed Bind message")
		}
		plan := s.srv.topo.router.Prepare(bytesToString(query), m).Plan(&s.bindParams, s.routerSession(), m)
		if s.refused(&plan, m, false) {
			return nil
		}
		endsMulti := false
		if s.inMultiGroupTx() {
			if s.refuseInMultiGroupTx(&plan, false) {
				return nil
			}
			endsMulti = plan.Kind == router.KindCommit || plan.Kind == router.KindRollback
		}
		req := s.cacheRequest(&plan, m)
		if req != nil || endsMulti || plan.Target == router.TargetScatter || plan.Target == router.TargetAllGroups {
			pp, err := newProxyPortal(string(query), plan, m, parse, f)
			if err != nil {
				return s.protocolViolation("malformed Bind message")
			}
			if pp.cache = req; req != nil {
				pp.bindFrame = append([]byte(nil), f...)
			}
			s.addProxyPortal(string(portal), pp)
			s.reply(bindCompleteFrame)
			return nil
		}
		if plan.Target == router.TargetShards && !m.Frozen().Empty() {
			switch r, err := s.gateMove(&plan, m, false); {
			case err != nil:
				return err
			case r == gateAgain:
				return s.handleBind(f) // the freeze ended: route it with the new map
			case r == gateDone:
				return nil
			}
		}
		if plan.Target == router.TargetSplit || (plan.Split != nil && splitsGroups(&plan, m)) {
			pp, err := newProxyPortal(string(query), plan, m, parse, f)
			if err != nil {
				return s.protocolViolation("malformed Bind message")
			}
			if plan.Split != nil {
				shards, err := plan.Split.RowShards(pp.sql, &s.bindParams, nil)
				if err != nil {
					s.routeFailed(routeErrorOf(err), false)
					return nil
				}
				pp.rowShards = shards
			}
			s.addProxyPortal(string(portal), pp)
			s.reply(bindCompleteFrame)
			return nil
		}
		var ce *clientError
		if t, ce = s.targetFor(&plan, m); ce != nil {
			s.routeFailed(ce, false)
			return nil
		}
		if plan.Kind == router.KindDDL {
			defer s.srv.topo.schemaChanged(s.db.BackendName)
		}
		return s.sendBind(f, portal, stmtName, params, st, t, &plan, m, actForward)
	}
	return s.sendBind(f, portal, stmtName, params, st, t, nil, nil, actForward)
}

// sendBind forwards a Bind to the backend for t (with the Parse of its statement when the
// backend lacks it); act is what becomes of its BindComplete. plan, when known, records the
// write's tables for the cache.
func (s *session) sendBind(f wire.Frame, portal, stmtName, params []byte, st *statement, t routeTarget,
	plan *router.Plan, m *shardmap.Map, act pendingAction) error {
	sc, err := s.begin(t)
	if err != nil {
		return s.beginFailed(err, false)
	}
	if plan != nil {
		s.savepoints = s.savepoints || plan.Kind == router.KindSavepoint
		s.noteWriteTouchesLocked(plan, m)
		s.ranDDL = s.ranDDL || plan.Kind == router.KindDDL
	}
	buf := s.scratch[:0]
	var eff router.SessionEffects
	if len(stmtName) == 0 {
		buf = s.ensureUnnamedLocked(sc, buf)
		buf = append(buf, f...)
		if s.unnamed != nil {
			eff = s.unnamed.effects
		}
	} else if st != nil {
		if !sc.Prepared().Has(st.name) {
			buf = s.prepareLocked(sc, buf, st, actSwallow, "")
		}
		buf = appendRenamed(buf, wire.Bind, portalPrefix(f.Body(), portal), st.name, params)
		eff = st.effects
	} else {
		buf = append(buf, f...) // unknown to the proxy: let the backend report it
	}
	s.queue.push(pending{kind: pendBind, action: act})
	s.mu.Unlock()
	s.trackPortal(portal, eff)
	s.scratch = buf
	return s.write(sc, buf)
}

// parseQuery returns the query text of a Parse message.
func parseQuery(parse []byte) []byte {
	_, rest, _ := wire.CString(wire.Frame(parse).Body())
	query, _, _ := wire.CString(rest)
	return query
}

// portalPrefix returns the Bind body's portal field with its NUL.
func portalPrefix(body, portal []byte) []byte { return body[:len(portal)+1] }

func (s *session) trackPortal(portal []byte, eff router.SessionEffects) {
	if eff.Flags == 0 {
		if len(s.portals) > 0 {
			delete(s.portals, string(portal))
		}
		return
	}
	if s.portals == nil {
		s.portals = make(map[string]*router.SessionEffects)
	}
	s.portals[string(portal)] = &eff
}

func (s *session) handleDescribe(f wire.Frame) error {
	body := f.Body()
	if len(body) < 2 {
		return s.protocolViolation("malformed Describe message")
	}
	name, _, ok := wire.CString(body[1:])
	if !ok {
		return s.protocolViolation("malformed Describe message")
	}
	if body[0] == 'P' {
		if pp := s.proxyPortals[string(name)]; pp != nil {
			pp.describe = true
			s.describedPortals = append(s.describedPortals, string(name))
			return nil // answered with the portal's execution
		}
	}
	if body[0] == 'S' && s.heldTx() {
		return s.describeHeld(name, body)
	}
	sc, err := s.begin(anyTarget)
	if err != nil {
		return s.beginFailed(err, false)
	}
	buf := s.scratch[:0]
	switch {
	case body[0] != 'S':
		buf = append(buf, f...)
	case len(name) == 0:
		buf = s.ensureUnnamedLocked(sc, buf)
		buf = append(buf, f...)
	default:
		if st := s.statements[string(name)]; st != nil {
			if !sc.Prepared().Has(st.name) {
				buf = s.prepareLocked(sc, buf, st, actSwallow, "")
			}
			buf = appendRenamed(buf, wire.Describe, body[:1], st.name, nil)
		} else {
			buf = append(buf, f...)
		}
	}
	s.queue.push(pending{kind: pendDescribe})
	s.mu.Unlock()
	s.scratch = buf
	return s.write(sc, buf)
}

func (s *session) handleExecute(f wire.Frame) error {
	portal, _, ok := wire.CString(f.Body())
	if !ok {
		return s.protocolViolation("malformed Execute message")
	}
	if pp := s.proxyPortals[string(portal)]; pp != nil {
		if pp.cache == nil || executeMaxRows(f) == 0 {
			pp.executed = true
			return s.runProxyQuery(pp, false)
		}
		// A row limit suspends the portal between Executes: the backend must hold it.
		delete(s.proxyPortals, string(portal))
		s.srv.cache.Bypass(bypassPortal)
		if err := s.rebindUncached(pp); err != nil {
			return err
		}
	}
	var eff *router.SessionEffects
	if len(s.portals) > 0 {
		eff = s.portals[string(portal)]
	}
	return s.forward(f, pending{kind: pendExecute, effects: eff})
}

func (s *session) handleClose(f wire.Frame) error {
	body := f.Body()
	if len(body) < 2 {
		return s.protocolViolation("malformed Close message")
	}
	name, _, ok := wire.CString(body[1:])
	if !ok {
		return s.protocolViolation("malformed Close message")
	}
	if body[0] != 'S' {
		if pp := s.proxyPortals[string(name)]; pp != nil {
			delete(s.proxyPortals, string(name))
			s.reply(closeCompleteFrame)
			return nil
		}
		return s.forward(f, pending{kind: pendClose})
	}
	// Statements stay prepared on the backends for other clients; the proxy answers.
	if len(name) == 0 {
		s.unnamed = nil
	} else {
		s.mu.Lock()
		delete(s.statements, string(name))
		s.mu.Unlock()
	}
	s.reply(closeCompleteFrame)
	return nil
}

func (s *session) handleSync(f wire.Frame) error {
	if len(s.describedPortals) > 0 && !s.skipUntilSync {
		s.describeUnexecuted()
	}
	s.describedPortals = s.describedPortals[:0]
	s.skipUntilSync = false
	s.publishBytesIn()
	clear(s.proxyPortals)
	s.mu.Lock()
	if s.server == nil && len(s.deferredParses) == 0 {
		s.mu.Unlock()
		s.reply(nil) // nothing reached a backend: the proxy answers ReadyForQuery itself
		return nil
	}
	if s.server == nil && s.virtualTx != 0 && s.deferredAnswerableLocked() {
		// Inside a held BEGIN, every held Parse was checked on a side connection: answer
		// them here rather than attach a backend (and pin the transaction) for a Sync.
		s.mu.Unlock()
		s.answerDeferredLocally()
		s.reply(nil)
		return nil
	}
	s.mu.Unlock()
	return s.forward(f, pending{kind: pendSync, start: time.Now()})
}

// forwardIfAttached forwards f to the attached backend, if any, queueing nothing. Copy
// messages for a copy that already failed are dropped, as the backend would; Flush with nothing
// pending has nothing to flush.
func (s *session) forwardIfAttached(f wire.Frame, copyMsg bool) error {
	s.mu.Lock()
	sc := s.server
	if sc == nil || (!copyMsg && s.queue.len() == 0) {
		if !copyMsg {
			s.emitSynthLocked() // a Flush may be waiting for replies the proxy makes
		} else {
			s.mu.Unlock()
		}
		return nil
	}
	s.writing = true
	if !copyMsg {
		s.emitSynthHeadLocked()
		s.flushMark = s.queue.pushed()
	} else if t := f.Type(); t == wire.CopyDone || t == wire.CopyFail {
		s.copyIn = false // the client ended its side: the backend's reply comes next
	}
	s.mu.Unlock()
	return s.write(sc, f)
}

// forward sends f to the backend, attaching one if needed, and queues its reply.
func (s *session) forward(f []byte, p pending) error {
	sc, err := s.begin(anyTarget)
	if err != nil {
		return s.beginFailed(err, p.kind == pendQuery)
	}
	s.queue.push(p)
	s.mu.Unlock()
	return s.write(sc, f)
}

// write writes frames to the backend, flushing when the client has nothing more buffered,
// and ends the writing phase.
func (s *session) write(sc *pool.Conn, frames []byte) error {
	if _, err := sc.W.Write(frames); err != nil {
		s.serverWriteFailed(sc, err)
	}
	return s.endWrite(sc)
}

func (s *session) endWrite(sc *pool.Conn) error {
	if s.in.Buffered() == 0 && sc.W.Buffered() > 0 {
		if err := sc.W.Flush(); err != nil {
			s.serverWriteFailed(sc, err)
		}
	}
	s.mu.Lock()
	s.writing = false
	s.mu.Unlock()
	s.writingDone.Broadcast()
	return nil
}

// serverWriteFailed closes the backend's socket so the relay sees the failure and reports it.
func (s *session) serverWriteFailed(sc *pool.Conn, err error) {
	s.logger().Debug("write to server failed", zap.Error(err))
	sc.MarkBroken()
	_ = sc.SetDeadline(time.Now())
}

// waitForServer waits up to query_wait_timeout for a backend, opening one if the pool may.
func (s *session) waitForServer(entry *poolEntry) (*pool.Conn, error) {
	cfg := s.srv.config()
	ctx, cancel := context.WithTimeout(s.ctx, cfg.Pool.QueryWaitTimeout.D())
	defer cancel()
	start := time.Now()
	s.srv.metrics.clientsWaiting.Inc()
	sc, err := entry.pool.Acquire(ctx)
	s.srv.metrics.clientsWaiting.Dec()
	s.srv.metrics.waitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		switch {
		case errors.Is(err, pool.ErrWaitTimeout):
			return nil, newClientError(codeTooManyConnections,
				fmt.Sprintf("no server connection became free within query_wait_timeout (%s)", cfg.Pool.QueryWaitTimeout.D())).
				withHint("the pool is saturated: shorten transactions or raise default_pool_size").withCause(err)
		case errors.Is(err, pool.ErrClosed), errors.Is(err, context.Canceled):
			return nil, fatalError(codeAdminShutdown, "the proxy is shutting down").withCause(err)
		}
		return nil, newClientError(codeCannotConnect, "cannot connect to the database server").
			withHint("the backend is unreachable or refused the proxy's login; retry later").withCause(err)
	}
	return sc, nil
}

// attachFailed reports a failed attach to the client: an error, then ReadyForQuery for a simple
// query, or skipping to the next Sync for the extended protocol.
func (s *session) attachFailed(err error, simple bool) error {
	ce := asClientError(err)
	s.logger().Warn("no server connection for client", zap.Error(err))
	if ce.fatal {
		s.sendFatal(ce)
		return ce
	}
	s.localError(ce, simple)
	return nil
}

// localError sends an error the proxy decided on, in stream order.
func (s *session) localError(ce *clientError, simple bool) {
	s.srv.metrics.errors.WithLabelValues(ce.code, "proxy").Inc()
	s.reply(appendErrorResponse(nil, ce))
	if simple {
		s.reply(nil)
		return
	}
	s.skipUntilSync = true
}

// reply sends a frame the proxy makes (nil: ReadyForQuery with the current status) after every
// reply still pending, or at once when nothing is pending.
func (s *session) reply(frame []byte) {
	s.mu.Lock()
	if len(s.deferredParses) > 0 && frame != nil {
		// A held-back Parse comes first: this reply waits with it.
		s.deferredParses = append(s.deferredParses, deferredParse{synth: frame})
		s.mu.Unlock()
		return
	}
	if s.queue.len() > 0 {
		if frame == nil {
			s.queue.push(pending{kind: pendSync, action: actSynth})
		} else {
			s.queue.push(pending{kind: pendParse, action: actSynth, synth: frame})
		}
		s.mu.Unlock()
		return
	}
	if frame == nil {
		frame = readyForQueryFrame(s.txStatusLocked())
	}
	s.wmu.Lock()
	s.mu.Unlock()
	s.writeClient(frame)
	if s.in.Buffered() == 0 {
		_ = s.out.Flush()
	}
	s.wmu.Unlock()
}

func (s *session) txStatusLocked() byte {
	if s.server == nil {
		if s.virtualTx != 0 {
			return s.virtualTx
		}
		return 'I'
	}
	if s.txStatus == 0 {
		return 'I'
	}
	return s.txStatus
}

// emitSynthLocked emits the synthesized replies at the head of the queue and unlocks s.mu.
func (s *session) emitSynthLocked() {
	s.wmu.Lock()
	n := s.emitSynthHeadLockedW()
	s.mu.Unlock()
	if n > 0 {
		_ = s.out.Flush()
	}
	s.wmu.Unlock()
}

// emitSynthHeadLocked emits synthesized replies at the queue head (s.mu held).
func (s *session) emitSynthHeadLocked() {
	s.wmu.Lock()
	if s.emitSynthHeadLockedW() > 0 {
		_ = s.out.Flush()
	}
	s.wmu.Unlock()
}

// emitSynthHeadLockedW writes the synthesized replies at the queue head; s.mu and s.wmu are held.
func (s *session) emitSynthHeadLockedW() int {
	n := 0
	for p := s.queue.peek(); p != nil && p.action == actSynth; p = s.queue.peek() {
		e := s.queue.pop()
		if e.synth == nil {
			s.writeClient(readyForQueryFrame(s.txStatusLocked()))
		} else {
			s.writeClient(e.synth)
		}
		n++
	}
	return n
}

// publishBytesIn adds the bytes received since the last call to the node's counter: once per
// request rather than once per message, which would contend across cores.
func (s *session) publishBytesIn() {
	if s.bytesIn > 0 {
		s.srv.metrics.clientBytesIn.Add(float64(s.bytesIn))
		s.bytesIn = 0
	}
}

// publishBytesOutLocked does the same for bytes sent; s.wmu is held.
func (s *session) publishBytesOutLocked() {
	if s.bytesOut > 0 {
		s.srv.metrics.clientBytesOut.Add(float64(s.bytesOut))
		s.bytesOut = 0
	}
}

// writeClient writes to the client; s.wmu is held. Errors surface on the client loop's read.
func (s *session) writeClient(frame []byte) {
	if len(s.replaySkip) > 0 {
		if s.replaySkip[0] == frame[0] {
			s.replaySkip = s.replaySkip[1:] // the client has this reply from the first run already
			return
		}
		s.replaySkip = nil // the run went another way from here: the client gets the rest
	}
	if s.sentLogging {
		if len(s.sentLog) < maxSentLog {
			s.sentLog = append(s.sentLog, frame[0])
		} else {
			s.sentLogging, s.sentOverflow = false, true
		}
	}
	_, _ = s.out.Write(frame)
	s.bytesOut += uint64(len(frame))
}

func (s *session) protocolViolation(msg string) error {
	ce := fatalError(codeProtocolViolation, msg)
	s.sendFatal(ce)
	return ce
}

// sendFatal writes a FATAL error; the caller closes the connection.
func (s *session) sendFatal(ce *clientError) {
	s.srv.metrics.errors.WithLabelValues(ce.code, "proxy").Inc()
	s.logger().Info("closing client connection", zap.String("sqlstate", ce.code), zap.Error(ce))
	ce.fatal = true
	s.wmu.Lock()
	s.writeClient(appendErrorResponse(nil, ce))
	_ = s.out.Flush()
	s.wmu.Unlock()
}

// clientLeft runs when the client loop ends: an attached backend is cleaned up by its relay
// (copy aborted, running query cancelled, transaction rolled back) and returned to the pool.
func (s *session) clientLeft() {
	s.publishBytesIn()
	s.wmu.Lock()
	s.publishBytesOutLocked()
	s.wmu.Unlock()
	s.mu.Lock()
	s.clientGone = true
	if len(s.branches) > 0 {
		s.dropParkedBranchesLocked() // closing them rolls their transactions back
	}
	sc, done := s.server, s.relayDone
	if sc == nil {
		s.mu.Unlock()
		return
	}
	if done == nil {
		s.mu.Unlock()
		s.finishAbandoned(sc)
		return
	}
	busy := s.queue.len() > 0
	if s.copyIn {
		s.writing = true
		s.mu.Unlock()
		_ = s.write(sc, copyFailFrame)
		_ = sc.W.Flush()
		s.mu.Lock()
	} else if busy {
		s.cancelling++
		s.mu.Unlock()
		_ = s.cancelBackend(sc)
		s.mu.Lock()
	} else {
		_ = sc.SetDeadline(time.Now()) // wake the relay so it cleans up
	}
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(clientLeftBudget):
		s.logger().Warn("server connection did not settle after the client left; closing it")
		sc.MarkBroken()
		_ = sc.SetDeadline(time.Now())
		<-done
	}
}

// clientLeftBudget bounds how long a backend the client abandoned may take to settle.
const clientLeftBudget = 15 * time.Second
