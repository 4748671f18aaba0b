package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// relay forwards the attached backend's replies to the client until the backend goes back to
// the pool, fails, or the client is gone and the backend has been cleaned up.
//
// The relay runs only where the backend may speak unprompted while the client is idle: in
// session mode (LISTEN/NOTIFY), and while a client that left is being cleaned up after. In
// transaction mode the client loop reads the replies itself (pump), so the hot path has one
// goroutine per session.
func (s *session) relay(sc *pool.Conn, done chan struct{}) {
	defer func() {
		s.mu.Lock()
		if s.relayDone == done {
			s.relayDone = nil
		}
		s.mu.Unlock()
		close(done)
	}()
	s.readReplies(sc, untilReleased)
}

// replyScope says how long readReplies goes on.
type replyScope uint8

const (
	// untilReleased: until the backend leaves the session (the relay, and the cleanup after a
	// client that left).
	untilReleased replyScope = iota
	// untilAnswered: until no request the client completed waits for a reply (the pump).
	untilAnswered
)

// readReplies is the one loop that reads a backend's replies: rows go on as bytes, decoded
// by nobody (the hot path); everything else goes through handleServerFrame. It reports
// whether the backend left the session.
func (s *session) readReplies(sc *pool.Conn, scope replyScope) bool {
	for {
		f, err := sc.R.Next()
		if err != nil {
			s.serverReadFailed(sc, err)
			return true
		}
		if t := f.Type(); t == wire.DataRow || t == wire.CopyData {
			if !s.forwardRow(sc, f) {
				s.clientWentAway(sc)
			}
			continue
		}
		if s.handleServerFrame(sc, f) {
			return true
		}
		if s.clientWriteFailed() {
			s.clientWentAway(sc)
		}
		if scope == untilAnswered && !s.pumpWantsMore() {
			return false
		}
	}
}

// forwardRow sends a row (or COPY data) on to the client; it reports false when writing to
// the client has failed.
func (s *session) forwardRow(sc *pool.Conn, f wire.Frame) bool {
	s.wmu.Lock()
	s.writeClient(f)
	s.resultsSent++
	if sc.R.Buffered() == 0 {
		_ = s.out.Flush()
	}
	ok := s.out.Err() == nil
	s.wmu.Unlock()
	return ok
}

// clientWriteFailed reports whether writing to the client has failed.
func (s *session) clientWriteFailed() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.out.Err() != nil
}

// startRelayLocked starts the relay goroutine for sc (s.mu held).
func (s *session) startRelayLocked(sc *pool.Conn) {
	s.relayDone = make(chan struct{})
	go s.relay(sc, s.relayDone)
}

// pump reads the backend's replies on the client loop until every request the client has
// completed (with Sync, Query or Flush) is answered, or a COPY waits for the client's data.
// Postgres itself does not read its client while it answers, so neither need the proxy; this
// spares a goroutine hand-off per request. In session mode it hands the backend to a relay.
func (s *session) pump() {
	s.mu.Lock()
	sc := s.server
	if sc == nil || s.relayDone != nil {
		s.mu.Unlock()
		return
	}
	if s.mode == config.PoolModeSession {
		s.startRelayLocked(sc)
		s.mu.Unlock()
		return
	}
	more := s.pumpWantsMoreLocked()
	s.mu.Unlock()
	if more && sc.W.Buffered() > 0 {
		// Requests written while the client had more to send are still in the buffer (a
		// replay writes so too): the backend must have them before its replies are awaited.
		if err := sc.W.Flush(); err != nil {
			s.serverWriteFailed(sc, err)
		}
	}
	if more && s.readReplies(sc, untilAnswered) {
		s.runFenceRetry() // a write that met a move's fence runs again, if one did
		s.pump()          // the backend left; a replayed request may have attached another
	}
}

func (s *session) pumpWantsMore() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pumpWantsMoreLocked()
}

func (s *session) pumpWantsMoreLocked() bool {
	return !s.copyIn && (s.queue.syncs > 0 || s.queue.popped < s.flushMark)
}

// clientWentAway is called when writing to the client failed mid-reply: the running query is
// cancelled and the rest of its reply drained, then the backend is cleaned up at its
// ReadyForQuery.
func (s *session) clientWentAway(sc *pool.Conn) {
	s.mu.Lock()
	if s.clientGone {
		s.mu.Unlock()
		return
	}
	s.clientGone = true
	s.cancelling++
	s.mu.Unlock()
	_ = s.cancelBackend(sc)
}

// cancelBackend sends a CancelRequest to sc's backend. The caller has counted it in
// s.cancelling, under s.mu and while sc was attached, so that sc is never handed to another
// client whose query the cancel could hit; cancelBackend uncounts it when done.
func (s *session) cancelBackend(sc *pool.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := sc.Cancel(ctx)
	cancel()
	s.mu.Lock()
	s.cancelling--
	s.mu.Unlock()
	return err
}

// copyFailFrame aborts a COPY whose client went away.
var copyFailFrame = func() []byte {
	const reason = "client went away"
	msg := wire.AppendHeader(nil, wire.CopyFail, len(reason)+1)
	msg = append(msg, reason...)
	return append(msg, 0)
}()

// finishAbandoned settles a backend the client left while no relay ran: an open COPY is
// failed, a batch without Sync is ended, the remaining replies are drained, and the backend is
// cleaned up and returned to the pool (or closed when it does not settle in time).
func (s *session) finishAbandoned(sc *pool.Conn) {
	_ = sc.SetDeadline(time.Now().Add(clientLeftBudget))
	s.mu.Lock()
	var msg []byte
	switch {
	case s.copyIn:
		msg = copyFailFrame
	case s.queue.len() > 0 && s.queue.syncs == 0:
		msg = []byte{wire.Sync, 0, 0, 0, 4}
		s.queue.push(pending{kind: pendSync})
	}
	pendingReplies := s.queue.len() > 0 || s.copyIn
	s.mu.Unlock()
	if msg != nil {
		if _, err := sc.W.Write(msg); err == nil {
			_ = sc.W.Flush()
		}
	}
	if pendingReplies {
		// Replies go nowhere; at the last ReadyForQuery handleServerFrame cleans up.
		s.readReplies(sc, untilReleased)
		return
	}
	s.cleanupAfterClient(sc)
}

// handleServerFrame processes one reply other than a row. It reports whether the backend left
// the session.
func (s *session) handleServerFrame(sc *pool.Conn, f wire.Frame) bool {
	if f.Type() == wire.ReadyForQuery && s.hasTouches.Load() {
		f = s.bumpAtReady(sc, f)
	}
	s.mu.Lock()
	s.wmu.Lock()
	s.emitSynthHeadLockedW()
	forward := true
	switch f.Type() {
	case wire.ParseComplete:
		p := s.popExpected(pendParse)
		if p.stmt != nil {
			p.stmt.valid.Store(true)
		}
		forward = p.action != actSwallow
	case wire.BindComplete:
		forward = s.popExpected(pendBind).action != actSwallow
	case wire.CloseComplete:
		if p := s.popExpected(pendClose); p.action == actSwallow {
			forward = false
		}
	case wire.NoData:
		s.popExpected(pendDescribe)
	case wire.RowDescription:
		if p := s.queue.peek(); p != nil && p.kind == pendDescribe {
			s.queue.pop()
		}
	case wire.CommandComplete:
		s.commandComplete(f.Body())
		forward = !s.swallowingQuery()
	case wire.EmptyQueryResponse, wire.PortalSuspended:
		if p := s.queue.peek(); p != nil && p.kind == pendExecute {
			s.queue.pop()
		}
	case wire.CopyInResponse, wire.CopyBothResponse:
		s.copyIn = true
	case wire.ErrorResponse:
		if isFatal(f.Body()) && s.answeredReadLocked(sc) {
			// A replica is going away while it ends a read's implicit transaction (at the
			// Sync): every answer reached the client already; only ReadyForQuery is missing.
			// Finish the read for the client and give the backend up.
			sc.MarkBroken()
			s.srv.topo.health.Ban(sc.Addr(), errReplicaEndedRead)
			s.logger().Info("replica ended a read it had answered; finishing it", zap.String("server", sc.Addr()),
				zap.String("error", errorMessage(f.Body())))
			s.wmu.Unlock()
			return s.readyForQuery(sc, readyForQueryFrame('I')) // unlocks s.mu
		}
		if fatal := isFatal(f.Body()); fatal && s.replayableLockedW(sc) {
			// The replica is going away before it answered: its connection's end replays
			// the requests elsewhere (serverReadFailed); the client sees nothing of it.
			forward = false
			sc.MarkBroken()
			break
		}
		if fatal := isFatal(f.Body()); fatal {
			// The backend is going away, the client connection is not: a FATAL would make the
			// driver drop it. Report it as an ERROR, or, when no request is waiting, on the
			// client's next request (see serverReadFailed).
			if s.queue.len() == 0 {
				forward = false
				break
			}
			f = downgradeFatal(f)
		} else if isFenceError(f.Body()) {
			// A move's fence refused a write: it did not run. Run it again once the map moved
			// on when nothing of it reached the client (moves_fence.go).
			if s.fenceHideLockedW(sc, f) {
				forward = false
				break
			}
			if s.txStatus == 'T' || s.txStatus == 'E' {
				f = fencedInTxError(f)
				s.srv.moves.metrics.fence.WithLabelValues(fenceInTx).Inc()
			} else {
				s.srv.moves.metrics.fence.WithLabelValues(fenceNotRetryable).Inc()
			}
		}
		s.serverError(sc, f.Body())
	case wire.ReadyForQuery:
		s.wmu.Unlock()
		return s.readyForQuery(sc, f) // unlocks s.mu
	}
	if forward {
		s.writeClient(f)
		switch f.Type() {
		case wire.CommandComplete, wire.ErrorResponse, wire.EmptyQueryResponse, wire.PortalSuspended,
			wire.CopyInResponse, wire.CopyOutResponse, wire.CopyBothResponse:
			s.resultsSent++ // a result the client may act on: no replay from here
		}
	}
	s.emitSynthHeadLockedW() // replies the proxy makes that this one unblocked
	if sc.R.Buffered() == 0 {
		_ = s.out.Flush()
	}
	s.mu.Unlock()
	s.wmu.Unlock()
	return false
}

// swallowingQuery reports whether the head request is a query the proxy sent on its own,
// whose replies the client must not see (s.mu held).
func (s *session) swallowingQuery() bool {
	p := s.queue.peek()
	return p != nil && p.kind == pendQuery && p.action == actSwallow
}

// popExpected pops the head reply, which should be of kind k.
func (s *session) popExpected(k pendingKind) pending {
	p := s.queue.peek()
	if p == nil || p.kind != k {
		s.logger().Warn("unexpected reply order from server", zap.Uint8("want", uint8(k)))
		return pending{}
	}
	return s.queue.pop()
}

func (s *session) commandComplete(body []byte) {
	s.copyIn = false
	tag, _, _ := wire.CString(body)
	switch string(tag) {
	case "COMMIT":
		s.txEndTag = "COMMIT"
	case "ROLLBACK":
		s.txEndTag = "ROLLBACK"
	}
	p := s.queue.peek()
	if p == nil {
		return
	}
	if p.kind == pendExecute {
		e := s.queue.pop()
		if e.effects != nil {
			s.noteEffects(e.effects)
		}
	}
}

// noteEffects records a completed statement's session effects until its batch ends.
func (s *session) noteEffects(e *router.SessionEffects) {
	s.batch = append(s.batch, e.Changes...)
	s.advisory += e.AdvisoryLocks - e.AdvisoryUnlocks
	if e.Flags&router.EffectUnlockAll != 0 {
		s.advisory = 0
	}
	if s.advisory < 0 {
		s.advisory = 0
	}
	if e.Flags&router.EffectPin != 0 && s.pinReason == "" {
		s.pinReason = e.PinReason
		s.logger().Info("client pinned to its server connection", zap.String("reason", e.PinReason))
	}
	if e.Flags&router.EffectDiscardAll != 0 && s.server != nil {
		// DISCARD ALL also drops the backend's prepared statements, the client's included.
		s.server.Prepared().Clear()
		s.server.UnnamedOwner = nil
		clear(s.statements)
	}
}

// serverError handles an ErrorResponse: inside the extended protocol the backend now skips to
// the next Sync, so the replies it will never send leave the queue.
func (s *session) serverError(sc *pool.Conn, body []byte) {
	s.copyIn = false
	s.batchFailed = true
	s.srv.metrics.errors.WithLabelValues(errorCode(body), "server").Inc()
	s.dropUntilSyncLocked(sc)
}

// dropUntilSyncLocked takes the replies the backend skips after an error in the extended
// protocol off the queue, up to the next Sync (s.mu held).
func (s *session) dropUntilSyncLocked(sc *pool.Conn) {
	p := s.queue.peek()
	if p == nil || p.kind == pendQuery {
		return
	}
	for p := s.queue.peek(); p != nil && p.kind != pendSync; p = s.queue.peek() {
		e := s.queue.pop()
		if e.kind == pendParse && e.stmt != nil {
			sc.Prepared().Remove(e.stmt.name)
			if e.clientName != "" && s.statements[e.clientName] == e.stmt {
				delete(s.statements, e.clientName)
			}
		}
		if e.kind == pendParse && e.stmt == nil && e.action != actSynth {
			sc.UnnamedOwner = nil
		}
	}
}

// readyForQuery ends a request: it settles session state and decides whether the backend goes
// back to the pool. s.mu is held and is released here.
func (s *session) readyForQuery(sc *pool.Conn, f wire.Frame) bool {
	if s.fenceErr != nil && s.fenceReadyLocked(sc, f) {
		return true // the backend went back; the pump runs the request again
	}
	s.wmu.Lock()
	s.emitSynthHeadLockedW()
	status := byte('I')
	if b := f.Body(); len(b) == 1 {
		status = b[0]
	}
	s.txStatus = status
	var req pending
	if p := s.queue.peek(); p != nil && (p.kind == pendSync || p.kind == pendQuery) {
		req = s.queue.pop()
		if req.kind == pendQuery && req.effects != nil && !s.batchFailed {
			s.noteEffects(req.effects)
		}
	}
	if req.kind == pendQuery && req.action == actSwallow {
		// The reply to a statement the proxy sent on its own (a held-back BEGIN).
		s.wmu.Unlock()
		s.mu.Unlock()
		return false
	}
	s.resultsSent++
	s.settleSettings(sc, status)
	if s.fixSettingsLocked(sc) {
		f = readyForQueryFrame(status) // f pointed into the read buffer the fixup reused
	}
	s.writeClient(f)
	for {
		// Replies the proxy makes that were queued behind this one go out now: nothing else
		// would trigger them.
		s.emitSynthHeadLockedW()
		if s.queue.len() > 0 || (!s.releasableLocked() && !s.clientGone) || !s.writing {
			break
		}
		// The client loop is writing to this backend: wait, then look again.
		_ = s.out.Flush()
		s.wmu.Unlock()
		s.writingDone.Wait()
		s.wmu.Lock()
	}
	if sc.R.Buffered() == 0 || s.queue.len() == 0 {
		_ = s.out.Flush()
	}
	s.publishBytesOutLocked()
	s.wmu.Unlock()
	if !req.start.IsZero() {
		s.durationObserverLocked().Observe(time.Since(req.start).Seconds())
	}
	if s.queue.len() > 0 {
		s.mu.Unlock()
		return false
	}
	if s.clientGone {
		s.mu.Unlock()
		s.cleanupAfterClient(sc)
		return true
	}
	if !s.releasableLocked() {
		s.mu.Unlock()
		return false
	}
	s.noteWriteLocked()
	entry := s.pool
	s.detachLocked(sc)
	attachedAt := s.attachedAt
	s.mu.Unlock()
	s.srv.metrics.txDuration.Observe(time.Since(attachedAt).Seconds())
	entry.release(sc)
	return true
}

// settleSettings applies the batch's setting changes: committed outside a transaction, staged
// inside one, dropped when the batch or the transaction failed.
func (s *session) settleSettings(sc *pool.Conn, status byte) {
	if len(s.batch) > 0 && !s.batchFailed {
		base := s.txSettings
		if base == nil {
			base = s.settings
		}
		var resets bool
		s.txSettings, resets = base.with(s.batch, s.startup)
		s.txResets = s.txResets || resets
	}
	s.batch = s.batch[:0]
	s.batchFailed = false
	if status != 'I' {
		return
	}
	if s.txSettings != nil && s.txEndTag != "ROLLBACK" {
		s.settings = s.txSettings
		sc.Settings = s.settings
		if s.txResets {
			sc.Settings = unknownSettings // the backend reset to its own defaults, not the client's
		}
	}
	s.txSettings, s.txResets = nil, false
	s.txEndTag = ""
}

// fixSettingsLocked re-applies the client's settings on the attached backend when a RESET
// left it at the backend's defaults. It runs before the client sees ReadyForQuery, while
// nothing else is in flight on the backend.
func (s *session) fixSettingsLocked(sc *pool.Conn) (ran bool) {
	have, _ := sc.Settings.(*settings)
	if have == nil || !have.unknown || s.queue.len() > 0 || s.writing {
		return false
	}
	// The client saw the backend report its defaults; it sees its own values again.
	forwardStatus := func(f wire.Frame) { s.writeClient(f) }
	if err := runSimple(sc, transitionSQL(have, s.settings), 10*time.Second, forwardStatus); err != nil {
		s.logger().Warn("could not restore session settings after RESET", zap.Error(err))
		sc.MarkBroken()
		return true
	}
	sc.Settings = s.settings
	return true
}

// releasableLocked reports whether the backend may go back to the pool now.
func (s *session) releasableLocked() bool {
	return s.mode != config.PoolModeSession && s.txStatus == 'I' && s.pinReason == "" &&
		s.advisory == 0 && !s.copyIn && !s.clientGone
}

func (s *session) detachLocked(sc *pool.Conn) {
	if s.cancelling > 0 {
		sc.MarkBroken() // a cancel may still land: never hand this backend to another client
	}
	if sc.Settings == nil {
		sc.Settings = s.settings
	}
	s.server = nil
	s.txStatus = 'I'
}

// durationObserverLocked returns the latency histogram of the attached backend's route and
// group, kept on the session while they stay the same (no label lookup per request; s.mu).
func (s *session) durationObserverLocked() prometheus.Observer {
	if s.durObs == nil || s.durMap != s.curMap || s.durGroup != s.srvGroup || s.durWriter != s.srvWriter {
		group := ""
		if s.curMap != nil && s.srvGroup >= 0 && s.srvGroup < len(s.curMap.Groups) {
			group = s.curMap.Groups[s.srvGroup].Name
		}
		s.durObs = s.srv.metrics.queryDuration.WithLabelValues(roleName(s.srvWriter), group)
		s.durMap, s.durGroup, s.durWriter = s.curMap, s.srvGroup, s.srvWriter
	}
	return s.durObs
}

// errReplicaEndedRead is why a replica that failed after answering a read is banned.
var errReplicaEndedRead = errors.New("replica terminated the connection after answering a read")

// answeredReadLocked reports whether sc is a replica serving a read outside a transaction whose
// requests are all answered but for the final Sync's ReadyForQuery (s.mu held). Postgres ends
// the implicit transaction of an extended-protocol read at the Sync, after the rows and
// CommandComplete went out, so a replica's shutdown can land in between.
func (s *session) answeredReadLocked(sc *pool.Conn) bool {
	if s.server != sc || s.srvWriter || s.txStatus != 'I' || s.clientGone || s.relayDone != nil || s.queue.len() != 1 {
		return false
	}
	p := s.queue.peek()
	return p.kind == pendSync && p.action == actForward
}

// serverReadFailed handles a read error on the backend: either the client left and the relay
// was woken to clean up, or the backend died.
func (s *session) serverReadFailed(sc *pool.Conn, err error) {
	s.mu.Lock()
	if s.clientGone && errors.Is(err, os.ErrDeadlineExceeded) && !sc.Broken() && s.queue.len() == 0 {
		// The client loop woke an idle relay to clean up. (A deadline mid-reply means the
		// backend did not settle in time: it is closed below, never reused half-read.)
		s.mu.Unlock()
		s.cleanupAfterClient(sc)
		return
	}
	if s.replayableLocked(sc) {
		s.replayElsewhere(sc, err) // unlocks s.mu
		return
	}
	if len(s.branches) > 0 {
		s.dropParkedBranchesLocked() // the transaction over several groups is lost with this branch
	}
	gone := s.clientGone
	fenced := s.fenceErr // a write the fence refused: it did not run, whatever became of the connection
	s.fenceErr = nil
	s.bumpLostLocked()
	s.server = nil
	s.copyIn = false
	s.advisory, s.pinReason = 0, ""
	s.txSettings, s.txResets, s.batch, s.txEndTag = nil, false, s.batch[:0], ""
	var tail pending
	waiting := s.queue.len() > 0
	if p := s.queue.last(); p != nil {
		tail = *p
	}
	syncs := 0
	for s.queue.len() > 0 {
		if e := s.queue.pop(); e.kind == pendSync || e.kind == pendQuery {
			syncs++
		}
	}
	inTx := s.txStatus == 'T' || s.txStatus == 'E'
	s.txStatus = 'I'
	if !gone {
		s.logger().Warn("server connection lost", zap.String("server", sc.Addr()), zap.Uint32("server_pid", sc.PID()), zap.Error(err))
		s.wmu.Lock()
		switch {
		case !waiting && inTx:
			// Nobody is waiting now: the client's next request learns that its transaction is gone.
			s.lostTx.Store(true)
		case waiting:
			if fenced != nil {
				s.writeClient(fenced)
				s.srv.metrics.errors.WithLabelValues(shardmap.CodeShardFenced, "server").Inc()
			} else if !s.batchFailed { // the backend's own error (e.g. 57P01) may already have been sent
				s.writeClient(appendErrorResponse(nil, lostServerError()))
				s.srv.metrics.errors.WithLabelValues(codeConnectionFailure, "proxy").Inc()
			}
			for range syncs {
				s.writeClient(readyForQueryFrame('I'))
			}
			// Messages of the interrupted batch still to come must be skipped until its Sync.
			if syncs == 0 || (tail.kind != pendSync && tail.kind != pendQuery) {
				s.skipAfterServerLoss.Store(true)
			}
		}
		_ = s.out.Flush()
		s.wmu.Unlock()
	}
	s.batchFailed = false
	entry := s.pool
	s.mu.Unlock()
	sc.MarkBroken()
	entry.release(sc)
}

// cleanupAfterClient brings a backend the client abandoned back to a clean state and returns
// it to the pool, or closes it when that fails.
func (s *session) cleanupAfterClient(sc *pool.Conn) {
	const cleanupBudget = 10 * time.Second
	_ = sc.SetDeadline(time.Time{}) // the client loop set it to wake the relay
	s.mu.Lock()
	status, mode, pinned := s.txStatus, s.mode, s.pinReason != "" || s.advisory > 0
	s.server = nil
	entry := s.pool
	s.mu.Unlock()
	var err error
	if status != 'I' {
		err = runSimple(sc, "ROLLBACK", cleanupBudget, nil)
	}
	if err == nil && (mode == config.PoolModeSession || pinned) {
		if q := s.srv.config().Pool.ServerResetQuery; q != "" {
			err = runSimple(sc, q, cleanupBudget, nil)
			sc.Prepared().Clear()
			sc.UnnamedOwner = nil
			sc.Settings = emptySettings
		}
	}
	if err != nil {
		s.logger().Info("closing server connection the client left dirty", zap.Error(err))
		sc.MarkBroken()
	}
	entry.release(sc)
}

// runSimple runs sql as a simple query on a backend the caller owns and no relay reads, and
// reads to ReadyForQuery. Replies are dropped except ParameterStatus, given to onStatus when
// not nil; an ErrorResponse becomes the error.
func runSimple(sc *pool.Conn, sql string, budget time.Duration, onStatus func(wire.Frame)) error {
	start := time.Now()
	fail, status, err := runQuery(sc, sql, budget, func(f wire.Frame) {
		if onStatus != nil && f.Type() == wire.ParameterStatus {
			onStatus(f)
		}
	})
	switch {
	case err != nil:
		return fmt.Errorf("run %q (after %s): %w", sql, time.Since(start).Round(time.Millisecond), err)
	case fail != nil:
		return fmt.Errorf("run %q: server error %s", sql, errorCode(fail))
	case status != 'I':
		return fmt.Errorf("run %q: left transaction status %q", sql, status)
	}
	return nil
}

// runQuery sends sql as a simple query on a backend the caller owns and no relay reads, and
// reads its reply to ReadyForQuery: each frame but the ErrorResponse and ReadyForQuery goes to
// each (valid only during the call), the ErrorResponse body (copied) is returned as fail, and
// status is ReadyForQuery's transaction status. err is an I/O failure: the backend is unusable.
func runQuery(sc *pool.Conn, sql string, budget time.Duration, each func(wire.Frame)) (fail []byte, status byte, err error) {
	sc.UnnamedOwner = nil // a simple query drops the backend's unnamed statement
	msg := wire.AppendHeader(nil, wire.Query, len(sql)+1)
	msg = append(append(msg, sql...), 0)
	failFrame, status, err := exchange(sc, msg, budget, each)
	if failFrame != nil {
		fail = wire.Frame(failFrame).Body()
	}
	return fail, status, err
}

// exchange sends msgs (ending with a Query or a Sync) on a backend the caller owns and no
// relay reads, and reads the reply to ReadyForQuery: each frame but the ErrorResponse and
// ReadyForQuery goes to each (valid only during the call), the ErrorResponse frame (copied)
// is returned as fail, and status is ReadyForQuery's transaction status. err is an I/O
// failure: the backend is unusable.
func exchange(sc *pool.Conn, msgs []byte, budget time.Duration, each func(wire.Frame)) (fail []byte, status byte, err error) {
	_ = sc.SetDeadline(time.Now().Add(budget))
	defer sc.SetDeadline(time.Time{})
	if _, err := sc.W.Write(msgs); err != nil {
		return nil, 0, fmt.Errorf("send: %w", err)
	}
	if err := sc.W.Flush(); err != nil {
		return nil, 0, fmt.Errorf("send: %w", err)
	}
	for {
		f, err := sc.R.Next()
		if err != nil {
			return nil, 0, fmt.Errorf("read reply: %w", err)
		}
		switch f.Type() {
		case wire.ReadyForQuery:
			status = 'I'
			if b := f.Body(); len(b) == 1 {
				status = b[0]
			}
			return fail, status, nil
		case wire.ErrorResponse:
			fail = append([]byte(nil), f...)
		default:
			each(f)
		}
	}
}

func lostServerError() *clientError {
	return newClientError(codeConnectionFailure, "the server connection was lost; the transaction was aborted").
		withHint("retry the transaction")
}
