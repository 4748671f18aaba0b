package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// gateResult is what becomes of a statement routed to a frozen shard.
type gateResult uint8

const (
	gateRun   gateResult = iota // run it now
	gateAgain                   // it was held and the freeze ended: route it again
	gateDone                    // it was answered (refused): nothing more to do
)

// errClientGone ends a session whose client disconnected while its statement was held.
var errClientGone = errors.New("client left while its statement was held")

// moveTx is where the session stands for the move rules.
type moveTx uint8

const (
	moveTxNone      moveTx = iota // no transaction: nothing of the statement reached a backend
	moveTxHeldBegin               // the proxy holds the client's BEGIN; no backend yet
	moveTxOpen                    // a transaction (or a pipeline) is open on a backend
)

// gateMove applies the move rules to a statement routed to shards (plan.Target is
// TargetShards) under m: a write — or any statement opening a transaction the proxy still
// holds — for a frozen shard is held until the freeze ends, a statement in a transaction open
// on a backend runs for the grace period and is then refused, anything else runs. simple
// says whether the statement came as a simple Query.
func (s *session) gateMove(plan *router.Plan, m *shardmap.Map, simple bool) (gateResult, error) {
	frozen := plan.Shards & m.Frozen()
	if frozen.Empty() {
		return gateRun, nil
	}
	state := s.moveTxState()
	if s.curMap != m {
		// Reading earlier replies ran a fenced write again, with a newer map: route this
		// statement with it too.
		return gateAgain, nil
	}
	switch state {
	case moveTxOpen:
		grace := s.srv.config().Moves.Grace.D()
		if sh, past := s.srv.moves.pastGrace(frozen, grace, time.Now()); past {
			s.srv.moves.metrics.refused.WithLabelValues("grace").Inc()
			s.routeFailed(graceError(sh, grace), simple)
			return gateDone, nil
		}
		return gateRun, nil
	case moveTxNone:
		if plan.Kind == router.KindRead {
			return gateRun, nil // reads go on at the owner
		}
	}
	return s.hold(frozen, simple)
}

// moveTxState tells whether a statement arriving now would be the first of its unit of work
// (after reading the replies of requests already complete, whose backend may then go back to
// the pool) or part of a transaction or pipeline already open on a backend.
func (s *session) moveTxState() moveTx {
	s.mu.Lock()
	if s.server != nil && s.queue.syncs > 0 && s.mode != config.PoolModeSession && s.relayDone == nil {
		s.mu.Unlock()
		s.pump()
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	switch {
	case s.server == nil && s.virtualTx != 0:
		return moveTxHeldBegin
	case s.server == nil, s.txStatus == 'I' && s.queue.len() == 0:
		return moveTxNone
	}
	return moveTxOpen
}

// hold waits, without taking a backend, until the node's map has none of the shards of frozen
// frozen any more, bounded by moves.buffer_timeout and moves.buffer_limit. It reports gateAgain when
// the statement is to be routed again, gateDone when it was refused (SQLSTATE 40001, nothing
// ran), and an error when the session must end.
func (s *session) hold(frozen shardmap.ShardSet, simple bool) (gateResult, error) {
	ms := s.srv.moves
	cfg := s.srv.config().Moves
	shard := frozen.Shards()[0]
	if !ms.take(cfg.BufferLimit) {
		ms.metrics.held.WithLabelValues(heldLimit).Inc()
		s.routeFailed(heldLimitError(shard, cfg.BufferLimit), simple)
		return gateDone, nil
	}
	start := time.Now()
	end := s.waitMap(cfg.BufferTimeout.D(), func(cur *shardmap.Map) bool { return (cur.Frozen() & frozen).Empty() })
	ms.put()
	ms.metrics.wait.Observe(time.Since(start).Seconds())
	switch end {
	case waitMet:
		ms.metrics.held.WithLabelValues(heldReleased).Inc()
		return gateAgain, nil
	case waitTimeout:
		ms.metrics.held.WithLabelValues(heldTimeout).Inc()
		s.routeFailed(heldTimeoutError(shard, cfg.BufferTimeout.D()), simple)
		return gateDone, nil
	case waitCancelled:
		ms.metrics.held.WithLabelValues(heldCancelled).Inc()
		s.routeFailed(queryCanceledError(), simple)
		return gateDone, nil
	case waitClientGone:
		ms.metrics.held.WithLabelValues(heldClientGone).Inc()
		return gateDone, errClientGone
	}
	ms.metrics.held.WithLabelValues(heldShutdown).Inc()
	ce := fatalError(codeAdminShutdown, "the proxy is shutting down")
	s.sendFatal(ce)
	return gateDone, ce
}

// waitEnd is how a wait for a map ended.
type waitEnd uint8

const (
	waitMet        waitEnd = iota // the condition holds
	waitTimeout                   // the time ran out
	waitCancelled                 // the client sent a CancelRequest for the session
	waitClientGone                // the client disconnected
	waitShutdown                  // the node is stopping
)

// clientPollInterval is how often a waiting session looks whether its client left.
const clientPollInterval = 50 * time.Millisecond

// waitMap waits on the client loop until cond holds for the node's current map, at most
// timeout. A CancelRequest for the session, the client's disconnection and the node's
// shutdown end the wait early.
func (s *session) waitMap(timeout time.Duration, cond func(*shardmap.Map) bool) waitEnd {
	store := s.srv.topo.store
	cancel := make(chan struct{})
	s.mu.Lock()
	s.holdCancel = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.holdCancel = nil
		s.mu.Unlock()
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(clientPollInterval)
	defer poll.Stop()
	for {
		changed := store.Changed()
		if cond(store.Current()) {
			return waitMet
		}
		select {
		case <-changed:
		case <-deadline.C:
			return waitTimeout
		case <-cancel:
			return waitCancelled
		case <-s.ctx.Done():
			return waitShutdown
		case <-poll.C:
			if s.clientClosed() {
				return waitClientGone
			}
		}
	}
}

// clientClosed reports whether the client has closed its connection (or sent Terminate and
// nothing else) while the client loop does not read it. It peeks at the socket without
// consuming anything.
func (s *session) clientClosed() bool {
	nc := s.conn
	plain := true
	if tc, ok := nc.(*tls.Conn); ok {
		nc, plain = tc.NetConn(), false // only the end of the stream can be seen under TLS
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var buf [len(terminateFrame) + 1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		case rerr != nil, n == 0:
			closed = true // reset, or the end of the stream
		case plain && n == len(terminateFrame) && string(buf[:n]) == terminateFrame && s.in.Buffered() == 0:
			closed = true // the client said goodbye: nothing it sent before waits unread
		}
		return true // never wait for readiness
	})
	if err != nil && errors.Is(err, net.ErrClosed) {
		return true
	}
	return closed
}

// terminateFrame is the client's Terminate message.
const terminateFrame = "X\x00\x00\x00\x04"
