package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/proxy/merge"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// proxyPortal is a statement the proxy runs on several groups itself: a scattered read or DDL
// for every group. In the extended protocol it is the client's portal until its Execute.
type proxyPortal struct {
	sql        string
	plan       router.Plan
	m          *shardmap.Map
	paramTypes []byte // the Parse message's parameter count and OIDs (extended protocol)
	bind       []byte // the client's Bind body after the statement name (extended protocol)
	describe   bool   // the client asked for the RowDescription
	executed   bool   // an Execute ran it
	// describeOnly: run only far enough to describe the rows (a Describe without Execute).
	describeOnly bool
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
	s.mu.Unlock()
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
	s.mu.Lock()
	s.multiRunning = true // from here a CancelRequest is for this statement
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.multiRunning, s.multiCancelled = false, false
		s.mu.Unlock()
	}()
	var ce *clientError
	if pp.plan.Target == router.TargetAllGroups {
		ce = s.broadcast(pp, !simple && pp.describe)
	} else {
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
	if !simple {
		if err := s.bindParams.reset(pp.bind); err != nil {
			return newClientError(codeProtocolViolation, "malformed Bind message")
		}
	}
	limit, err := s.limitValue(spec.Limit, simple)
	if err != nil {
		return newClientError("22023", fmt.Sprintf("LIMIT: %v", err))
	}
	offset, err := s.limitValue(spec.Offset, simple)
	if err != nil {
		return newClientError("22023", fmt.Sprintf("OFFSET: %v", err))
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
	start := time.Now()
	for gi := range m.Groups {
		owned := m.OwnedBy(gi)
		if owned.Empty() {
			continue
		}
		name := m.Groups[gi].Name
		sql, err := router.ScatterSQL(pp.sql, owned, m)
		if err != nil {
			return newClientError(codeFeatureNotSupp, err.Error())
		}
		t := routeTarget{group: gi, read: true, writer: s.mustReadOwnWrite(name)}
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
	var formats []int16
	if !simple {
		formats = resultFormats(pp.bind)
	}
	merger, err := merge.New(spec, limit, offset, rowDesc, formats)
	if err != nil {
		return mergeClientError(err)
	}
	sources := make([]merge.Source, len(conns))
	for i, g := range conns {
		sources[i] = g
	}
	s.wmu.Lock()
	if simple || pp.describe {
		s.writeClient(merger.RowDescription(nil))
	}
	if pp.describeOnly {
		s.wmu.Unlock()
		return nil
	}
	rows, err := merger.Run(sources, func(frame []byte) error {
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
	s.writeClient(commandCompleteFrame("SELECT " + strconv.FormatInt(rows, 10)))
	_ = s.out.Flush()
	s.wmu.Unlock()
	s.srv.metrics.queryDuration.Observe(time.Since(start).Seconds())
	return nil
}

// scatterMessage builds the messages that run one group's rewritten query.
func (s *session) scatterMessage(sql string, pp *proxyPortal, simple bool, spec *router.MergeSpec) []byte {
	if simple {
		msg := wire.AppendHeader(nil, wire.Query, len(sql)+1)
		return append(append(msg, sql...), 0)
	}
	msg := wire.AppendHeader(nil, wire.Parse, 1+len(sql)+1+len(pp.paramTypes))
	msg = append(append(append(msg, 0), sql...), 0)
	msg = append(msg, pp.paramTypes...)
	bind := extendResultFormats(pp.bind, spec.Hidden)
	msg = wire.AppendHeader(msg, wire.Bind, 2+len(bind))
	msg = append(append(msg, 0, 0), bind...)
	msg = append(msg, wire.Describe, 0, 0, 0, 6, 'P', 0)
	msg = append(msg, wire.Execute, 0, 0, 0, 9, 0, 0, 0, 0, 0)
	return append(msg, wire.Sync, 0, 0, 0, 4)
}

// resultFormats returns the result format codes at the end of a Bind body's part after the
// statement name.
func resultFormats(bind []byte) []int16 {
	off, ok := resultFormatsOffset(bind)
	if !ok {
		return nil
	}
	n := int(binary.BigEndian.Uint16(bind[off:]))
	out := make([]int16, 0, n)
	for i := range n {
		if off+2+2*i+2 > len(bind) {
			return nil
		}
		out = append(out, int16(binary.BigEndian.Uint16(bind[off+2+2*i:])))
	}
	return out
}

// resultFormatsOffset finds where the result format count starts in a Bind body's part after
// the statement name.
func resultFormatsOffset(bind []byte) (int, bool) {
	if len(bind) < 2 {
		return 0, false
	}
	off := 2 + 2*int(binary.BigEndian.Uint16(bind))
	if len(bind) < off+2 {
		return 0, false
	}
	n := int(binary.BigEndian.Uint16(bind[off:]))
	off += 2
	for range n {
		if len(bind) < off+4 {
			return 0, false
		}
		l := int(int32(binary.BigEndian.Uint32(bind[off:])))
		off += 4
		if l > 0 {
			off += l
		}
	}
	if len(bind) < off+2 {
		return 0, false
	}
	return off, true
}

// extendResultFormats gives the hidden trailing columns of a scatter's per-group query a
// (text) format code when the client listed one per column.
func extendResultFormats(bind []byte, hidden int) []byte {
	off, ok := resultFormatsOffset(bind)
	if !ok || hidden == 0 {
		return bind
	}
	n := int(binary.BigEndian.Uint16(bind[off:]))
	if n <= 1 {
		return bind // none (all text) or one code for every column: fits the hidden ones too
	}
	out := make([]byte, 0, len(bind)+2*hidden)
	out = append(out, bind[:off]...)
	out = binary.BigEndian.AppendUint16(out, uint16(n+hidden))
	out = append(out, bind[off+2:off+2+2*n]...)
	for range hidden {
		out = append(out, 0, 0)
	}
	return out
}

// limitValue resolves a LIMIT or OFFSET: -1 when absent.
func (s *session) limitValue(v router.LimitValue, simple bool) (int64, error) {
	if !v.Set {
		return -1, nil
	}
	if v.Param == 0 {
		return v.Const, nil
	}
	if simple {
		return 0, fmt.Errorf("parameter $%d in a simple query", v.Param)
	}
	b, bin, null := s.bindParams.Value(v.Param - 1)
	if null {
		return -1, nil // LIMIT NULL is no limit
	}
	if bin {
		switch len(b) {
		case 8:
			return int64(binary.BigEndian.Uint64(b)), nil
		case 4:
			return int64(int32(binary.BigEndian.Uint32(b))), nil
		case 2:
			return int64(int16(binary.BigEndian.Uint16(b))), nil
		}
		return 0, fmt.Errorf("parameter $%d: want an integer", v.Param)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter $%d: want an integer", v.Param)
	}
	return n, nil
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
