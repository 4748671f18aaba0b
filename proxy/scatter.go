package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/merge"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// proxyPortal is a statement the proxy runs on several groups itself: a scattered read or DDL
// for every group. In the extended protocol it is the client's portal until its Execute.
type proxyPortal struct {
	sql       string
	plan      router.Plan
	m         *shardmap.Map
	paramOIDs []uint32      // the client's Parse parameter types (extended protocol)
	bind      pgproto3.Bind // the client's Bind (extended protocol; zero for a simple query)
	describe  bool          // the client asked for the RowDescription
	executed  bool          // an Execute ran it
	// describeOnly: run only far enough to describe the rows (a Describe without Execute).
	describeOnly bool
	// cache is set for a read the cache may answer; capture collects a scatter's merged
	// reply for the fill.
	cache   *cacheRead
	capture *replyCapture
	// bindFrame is the client's Bind of a cacheable portal, sent to a backend after all when
	// the portal cannot be cached after all (rebindUncached).
	bindFrame []byte
	// rowShards are the shards of a split INSERT's VALUES rows, read at Bind (nil for a
	// simple query, whose rows are read from its text).
	rowShards []shardmap.Shard
}

// newProxyPortal makes the portal for a Bind of a statement the proxy runs itself: it keeps
// decoded copies of the client's Parse (for the parameter types) and Bind.
func newProxyPortal(sql string, plan router.Plan, m *shardmap.Map, parse, bind wire.Frame) (*proxyPortal, error) {
	pp := &proxyPortal{sql: sql, plan: plan, m: m}
	var p pgproto3.Parse
	if err := p.Decode(append([]byte(nil), parse.Body()...)); err != nil {
		return nil, fmt.Errorf("decode Parse: %w", err)
	}
	if err := pp.bind.Decode(append([]byte(nil), bind.Body()...)); err != nil {
		return nil, fmt.Errorf("decode Bind: %w", err)
	}
	pp.paramOIDs = p.ParameterOIDs
	return pp, nil
}

func (s *session) addProxyPortal(name string, pp *proxyPortal) {
	if s.proxyPortals == nil {
		s.proxyPortals = make(map[string]*proxyPortal)
	}
	s.proxyPortals[name] = pp
}

// runProxyQuery runs a scatter or a DDL broadcast for a simple Query or an Execute, writing
// the client's replies itself. It needs the session between transactions: a transaction is
// pinned to one group.
func (s *session) runProxyQuery(pp *proxyPortal, simple bool) error {
	s.mu.Lock()
	if s.server != nil && s.queue.syncs > 0 && s.relayDone == nil {
		s.mu.Unlock()
		s.pump() // finish what earlier requests still wait for
		s.mu.Lock()
	}
	inTx := s.virtualTx != 0 || (s.server != nil && (s.txStatus != 'I' || s.queue.len() > 0))
	multi := len(s.branches) > 0
	s.mu.Unlock()
	if multi && (pp.plan.Kind == router.KindCommit || pp.plan.Kind == router.KindRollback) {
		defer s.observeRoute("commit", time.Now())
		return s.endMultiGroupTx(pp.plan.Kind == router.KindCommit, simple, !simple && pp.describe)
	}
	if pp.plan.Split != nil || pp.plan.Target == router.TargetSplit {
		s.answerDeferredLocally() // the proxy runs the statement itself: its Parse is answered here
		defer s.observeRoute("split", time.Now())
	}
	switch {
	case pp.plan.Split != nil && pp.plan.Target == router.TargetShards:
		return s.splitInsert(pp, simple)
	case pp.plan.Target == router.TargetSplit && pp.plan.Copy != nil && pp.describeOnly:
		s.routeFailed(newClientError(codeFeatureNotSupp, "a COPY of a sharded table cannot be described without running it").
			withHint("execute the COPY"), simple)
		return nil
	case pp.plan.Target == router.TargetSplit && pp.plan.Copy != nil:
		return s.runCopy(pp, simple)
	}
	if inTx && pp.plan.Target == router.TargetAllGroups && pp.cache == nil && s.twoPhaseEnabled() && s.mode != config.PoolModeSession {
		return s.broadcastInTx(pp, simple)
	}
	s.answerDeferredLocally()
	what := "a read without a shard key"
	if pp.plan.Target == router.TargetAllGroups {
		what = "DDL on sharded tables"
	}
	if inTx {
		s.routeFailed(newClientError(codeFeatureNotSupp, what+" runs on every shard group and cannot be part of a transaction or pipeline").
			withHint("run it on its own, outside BEGIN ... COMMIT, or add the shard key"), simple)
		return nil
	}
	start, route := time.Now(), "scatter"
	switch {
	case pp.cache != nil && !pp.describeOnly:
		route = "cache"
	case pp.plan.Target == router.TargetAllGroups:
		route = "broadcast"
	}
	defer func() { s.srv.metrics.queryDuration.WithLabelValues(route, "").Observe(time.Since(start).Seconds()) }()
	s.mu.Lock()
	s.multiRunning = true // from here a CancelRequest is for this statement
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.multiRunning, s.multiCancelled = false, false
		s.mu.Unlock()
	}()
	var ce *clientError
	switch {
	case pp.cache != nil && !pp.describeOnly:
		ce = s.cachedRead(pp, simple)
	case pp.plan.Target == router.TargetAllGroups:
		ce = s.broadcast(pp, !simple && pp.describe)
	default:
		ce = s.scatter(pp, simple)
	}
	if ce != nil {
		s.localError(ce, simple)
		return nil
	}
	if simple {
		s.reply(nil)
	}
	return nil
}

// observeRoute records the duration of a request the proxy ran itself.
func (s *session) observeRoute(route string, start time.Time) {
	s.srv.metrics.queryDuration.WithLabelValues(route, "").Observe(time.Since(start).Seconds())
}

// groupConn is one group's backend during a scatter or broadcast.
type groupConn struct {
	name  string
	sc    *pool.Conn
	entry *poolEntry
	done  bool   // the rows ended (CommandComplete or an error)
	idle  bool   // nothing was sent to it
	fail  []byte // the group's ErrorResponse frame, if it failed
}

var errGroupFailed = errors.New("shard group returned an error")

// Next returns the group's next DataRow frame, or nil after the last.
func (g *groupConn) Next() ([]byte, error) {
	for !g.done {
		f, err := g.sc.R.Next()
		if err != nil {
			g.done = true
			return nil, fmt.Errorf("group %s: %w", g.name, err)
		}
		switch f.Type() {
		case wire.DataRow:
			return f, nil
		case wire.CommandComplete, wire.EmptyQueryResponse:
			g.done = true
		case wire.ErrorResponse:
			g.fail = append([]byte(nil), f...)
			g.done = true
			return nil, errGroupFailed
		}
	}
	return nil, nil
}

// head reads up to the RowDescription (or the end of the reply when there is none).
func (g *groupConn) head() ([]byte, error) {
	for {
		f, err := g.sc.R.Next()
		if err != nil {
			g.done = true
			return nil, fmt.Errorf("group %s: %w", g.name, err)
		}
		switch f.Type() {
		case wire.RowDescription:
			return append([]byte(nil), f...), nil
		case wire.NoData, wire.CommandComplete, wire.EmptyQueryResponse:
			g.done = true
			return nil, nil
		case wire.ErrorResponse:
			g.fail = append([]byte(nil), f...)
			g.done = true
			return nil, errGroupFailed
		}
	}
}

// abandon cancels the group's running query and closes the backend without waiting for it.
func (g *groupConn) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = g.sc.Cancel(ctx)
	cancel()
	g.sc.MarkBroken()
	g.entry.release(g.sc)
}

// finish reads to ReadyForQuery and returns the backend to its pool (closing it when its
// reply could not be read to the end).
func (g *groupConn) finish() {
	_ = g.sc.SetDeadline(time.Now().Add(clientLeftBudget))
	for {
		f, err := g.sc.R.Next()
		if err != nil {
			g.sc.MarkBroken()
			break
		}
		if f.Type() == wire.ReadyForQuery {
			if b := f.Body(); len(b) != 1 || b[0] != 'I' {
				g.sc.MarkBroken()
			}
			break
		}
	}
	_ = g.sc.SetDeadline(time.Time{})
	g.entry.release(g.sc)
}

// scatter runs a keyless read on every group owning shards, each restricted to its shards, and
// merges the replies into the client's.
func (s *session) scatter(pp *proxyPortal, simple bool) (ce *clientError) {
	m := pp.m
	spec := pp.plan.Merge
	if spec == nil {
		return newClientError(codeInternal, "scatter without a merge plan")
	}
	limit, err := merge.ResolveLimit(spec.Limit, false, pp.bind.Parameters, pp.bind.ParameterFormatCodes)
	if err != nil {
		return mergeClientError(err)
	}
	offset, err := merge.ResolveLimit(spec.Offset, true, pp.bind.Parameters, pp.bind.ParameterFormatCodes)
	if err != nil {
		return mergeClientError(err)
	}
	var conns []*groupConn
	defer func() {
		// After a failure or a cancel, groups still running are cancelled and closed rather
		// than waited for; the others are read to their end.
		cancelled := s.endMulti()
		for _, g := range conns {
			switch {
			case g.idle:
				g.entry.release(g.sc)
			case (ce != nil || cancelled || pp.describeOnly) && !g.done:
				g.abandon()
			default:
				if cancelled {
					g.sc.MarkBroken()
				}
				g.finish()
			}
		}
	}()
	for gi := range m.Groups {
		owned := m.OwnedBy(gi)
		if owned.Empty() {
			continue
		}
		name := m.Groups[gi].Name
		sql, err := s.srv.topo.scatterSQL.ScatterSQL(pp.sql, owned, m)
		if err != nil {
			return newClientError(codeFeatureNotSupp, err.Error())
		}
		_, writerOnly := s.ownWrite(name)
		t := routeTarget{group: gi, read: true, writer: writerOnly || s.strong || s.cacheOff}
		if pp.cache != nil {
			need, w := pp.cache.needOf(gi)
			t.minLSN, t.writer = need, t.writer || w
		}
		sc, entry, _, err := s.attach(t)
		if err != nil {
			return asClientError(err)
		}
		g := &groupConn{name: name, sc: sc, entry: entry, idle: true}
		conns = append(conns, g)
		if s.addMulti(sc) {
			return queryCanceledError()
		}
		g.idle = false
		msg := s.scatterMessage(sql, pp, simple, spec)
		sc.UnnamedOwner = nil
		if _, err := sc.W.Write(msg); err == nil {
			err = sc.W.Flush()
		}
		if err != nil {
			sc.MarkBroken()
			return lostServerError().withCause(err)
		}
	}
	s.srv.metrics.scatterFanout.Observe(float64(len(conns)))
	var rowDesc []byte
	for _, g := range conns {
		rd, err := g.head()
		if err != nil {
			return s.groupError(g, err)
		}
		if rowDesc == nil {
			rowDesc = rd
		}
	}
	if rowDesc == nil {
		return newClientError(codeFeatureNotSupp, "a scattered statement must return rows")
	}
	merger, err := merge.New(spec, limit, offset, rowDesc, pp.bind.ResultFormatCodes)
	if err != nil {
		return mergeClientError(err)
	}
	sources := make([]merge.Source, len(conns))
	for i, g := range conns {
		sources[i] = g
	}
	s.wmu.Lock()
	if simple || pp.describe || pp.capture != nil {
		rd := merger.RowDescription(nil)
		if pp.capture != nil {
			pp.capture.add(rd)
		}
		if simple || pp.describe {
			s.writeClient(rd)
		}
	}
	if pp.describeOnly {
		s.wmu.Unlock()
		return nil
	}
	rows, err := merger.Run(sources, func(frame []byte) error {
		if pp.capture != nil {
			pp.capture.add(frame)
		}
		s.writeClient(frame)
		return s.out.Err()
	})
	if err != nil {
		s.wmu.Unlock()
		for _, g := range conns {
			if g.fail != nil {
				return s.groupError(g, errGroupFailed)
			}
		}
		return mergeClientError(err)
	}
	cc := commandCompleteFrame("SELECT " + strconv.FormatInt(rows, 10))
	if pp.capture != nil {
		pp.capture.add(cc)
	}
	s.writeClient(cc)
	_ = s.out.Flush()
	s.wmu.Unlock()
	return nil
}

// scatterMessage builds the messages that run one group's rewritten query: a simple Query, or
// the client's Bind (result formats widened to the hidden columns) on the rewritten statement.
func (s *session) scatterMessage(sql string, pp *proxyPortal, simple bool, spec *router.MergeSpec) []byte {
	if simple {
		msg, _ := (&pgproto3.Query{String: sql}).Encode(nil)
		return msg
	}
	bind := pp.bind
	bind.DestinationPortal, bind.PreparedStatement = "", ""
	bind.ResultFormatCodes = merge.BackendResultFormats(spec, pp.bind.ResultFormatCodes)
	msg, _ := (&pgproto3.Parse{Query: sql, ParameterOIDs: pp.paramOIDs}).Encode(nil)
	msg, _ = bind.Encode(msg)
	msg, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(msg)
	msg, _ = (&pgproto3.Execute{}).Encode(msg)
	msg, _ = (&pgproto3.Sync{}).Encode(msg)
	return msg
}

// groupError reports a group's failure to the client: the group's own error, downgraded from
// FATAL, or a lost connection.
func (s *session) groupError(g *groupConn, err error) *clientError {
	if g.fail != nil {
		body := wire.Frame(g.fail).Body()
		s.srv.metrics.errors.WithLabelValues(errorCode(body), "server").Inc()
		return &clientError{code: errorCode(body), message: errorMessage(body), raw: downgradeFatal(g.fail)}
	}
	g.sc.MarkBroken()
	s.logger().Warn("shard group failed during a scatter", zap.String("group", g.name), zap.Error(err))
	return lostServerError().withCause(err)
}

// broadcast runs DDL on every group's writer, one group after another in group order. The
// client sees the first group's replies; when a group fails, the error says which groups
// applied the statement and which did not run it.
func (s *session) broadcast(pp *proxyPortal, noData bool) *clientError {
	defer s.srv.topo.schemaChanged(s.db.BackendName)
	lsns := make(map[string]uint64, len(pp.m.Groups)) // each group's writer position after the DDL
	defer func() { s.bumpBroadcast(&pp.plan, pp.m, lsns) }()
	defer func() {
		for gi := range pp.m.Groups {
			s.srv.topo.noteDDL(pp.m.Groups[gi].Name)
		}
	}()
	m := pp.m
	var replies [][]byte
	var applied []string
	for gi := range m.Groups {
		name := m.Groups[gi].Name
		sc, entry, _, err := s.attach(routeTarget{group: gi, writer: true})
		if err != nil {
			ce := asClientError(err)
			return s.broadcastError(ce.code, ce.message, name, applied, m, gi)
		}
		if s.addMulti(sc) {
			s.endMulti()
			entry.release(sc)
			return queryCanceledError()
		}
		frames, fail, err := runCollect(sc, pp.sql, 10*time.Minute)
		if s.endMulti() || err != nil {
			sc.MarkBroken()
		} else if fail == nil && s.srv.cache != nil {
			lsns[name] = s.writerLSN(sc)
		}
		entry.release(sc)
		if err != nil {
			return s.broadcastError(codeConnectionFailure, err.Error(), name, applied, m, gi)
		}
		if fail != nil {
			return s.broadcastError(errorCode(fail), errorMessage(fail), name, applied, m, gi)
		}
		if replies == nil {
			replies = frames
		}
		applied = append(applied, name)
	}
	s.wmu.Lock()
	if noData {
		s.writeClient(noDataFrame) // the client's Describe of the portal
	}
	for _, f := range replies {
		s.writeClient(f)
	}
	s.wmu.Unlock()
	return nil
}

// broadcastError builds the error for a DDL that failed on group failed (index gi).
func (s *session) broadcastError(code, msg, failed string, applied []string, m *shardmap.Map, gi int) *clientError {
	var notRun []string
	for _, g := range m.Groups[gi+1:] {
		notRun = append(notRun, g.Name)
	}
	list := func(v []string) string {
		if len(v) == 0 {
			return "none"
		}
		return strings.Join(v, ", ")
	}
	s.logger().Warn("DDL failed on a shard group", zap.String("group", failed), zap.String("sqlstate", code))
	return newClientError(code, fmt.Sprintf("%s (on shard group %s; applied on: %s; not run on: %s)", msg, failed, list(applied), list(notRun))).
		withHint("fix the cause and run the statement again; with IF [NOT] EXISTS it is safe to repeat on the groups that applied it")
}

// runCollect runs sql as a simple query on a backend the caller owns and returns the reply
// frames up to ReadyForQuery (ParameterStatus left out), or the ErrorResponse body.
func runCollect(sc *pool.Conn, sql string, budget time.Duration) (frames [][]byte, fail []byte, err error) {
	fail, _, err = runQuery(sc, sql, budget, func(f wire.Frame) {
		if f.Type() != wire.ParameterStatus {
			frames = append(frames, append([]byte(nil), f...))
		}
	})
	return frames, fail, err
}

// mergeClientError turns a merge failure into the client's error.
func mergeClientError(err error) *clientError {
	var me *merge.Error
	if errors.As(err, &me) {
		return newClientError(me.Code, me.Message).withCause(err)
	}
	return newClientError(codeInternal, "could not merge the shard groups' rows").withCause(err)
}

// addMulti registers a backend of a running scatter or broadcast, for cancel requests, and
// reports whether the client already cancelled the statement (then nothing more is sent).
func (s *session) addMulti(sc *pool.Conn) (cancelled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.multi = append(s.multi, sc)
	return s.multiCancelled
}

// queryCanceledError is Postgres's error for a cancelled statement.
func queryCanceledError() *clientError {
	return newClientError("57014", "canceling statement due to user request")
}

// endMulti unregisters them and reports whether a cancel was sent to them.
func (s *session) endMulti() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cancelled := s.multiCancelled
	clear(s.multi)
	s.multi = s.multi[:0]
	return cancelled
}

// answerDeferredLocally sends the replies held back behind a deferred unnamed Parse when the
// proxy runs the statement itself: the Parse never reaches a backend as such (the groups get
// the rewritten statement), and the router parsed it, so it is answered as complete.
func (s *session) answerDeferredLocally() {
	s.mu.Lock()
	if len(s.deferredParses) == 0 || s.server != nil {
		s.mu.Unlock()
		return
	}
	s.wmu.Lock()
	for _, d := range s.deferredParses {
		switch {
		case d.synth != nil:
			s.writeClient(d.synth)
		case d.unnamed || d.stmt != nil:
			s.writeClient(parseCompleteFrame)
		}
	}
	s.deferredParses = s.deferredParses[:0]
	s.wmu.Unlock()
	s.mu.Unlock()
}

// describeUnexecuted answers the Describe of proxy portals the client did not execute before
// its Sync: NoData for DDL, the merged RowDescription for a scatter (which runs until the
// groups' RowDescriptions arrive and is then cancelled).
func (s *session) describeUnexecuted() {
	for _, name := range s.describedPortals {
		pp := s.proxyPortals[name]
		if pp == nil || pp.executed || !pp.describe {
			continue
		}
		s.answerDeferredLocally()
		if pp.plan.Target == router.TargetAllGroups {
			s.reply(noDataFrame)
			continue
		}
		pp.describeOnly = true
		if ce := s.scatter(pp, false); ce != nil {
			s.srv.metrics.errors.WithLabelValues(ce.code, "proxy").Inc()
			s.reply(appendErrorResponse(nil, ce))
			return // the rest of the batch is skipped, as after any error
		}
	}
}
