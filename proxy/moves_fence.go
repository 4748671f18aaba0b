package proxy

import (
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/shardmap"
)

// A move fences its shard on the source with triggers that reject every write for it with
// SQLSTATE SW001 (shardmap.CodeShardFenced) before any row is produced: such a write did not
// run. When a write routed outside a transaction meets the fence and nothing of its request
// reached the client yet, the proxy hides the error, lets the backend finish the request (to
// its ReadyForQuery), gives the backend back, and once a map newer than the one the request
// was routed with arrives, runs the request again from its recorded messages — held if its
// shard is frozen, else at the new owner. The recording is the replica-read replay's
// (session.replay, route.go): a unit attached for a routed write records like a replica read.
// Inside a transaction the error goes on as 40001, so that the client's retry loop runs the
// transaction again. Nothing whose outcome is unknown is ever run again: only the fence's
// error, which says the write did not run, leads to a retry.

// maxFenceRetries bounds how often one request is run again after meeting a fence.
const maxFenceRetries = 3

// maxFenceRecord bounds the client messages a unit records for a fence retry; a larger unit
// is not retried.
const maxFenceRecord = 1 << 20

// fenceRetry is a request that met a fence, to run again once a newer map arrives.
type fenceRetry struct {
	frames  []byte          // the client's messages since the backend was attached
	parses  []deferredParse // the Parses held back at that attach
	skip    []byte          // types of the frames the client already has of the request
	epoch   int64           // the map epoch the request was routed with
	errResp []byte          // the fence's ErrorResponse, for the client when no retry happens
	attempt int             // this retry's number (1 for the first)
}

// isFenceError reports whether an ErrorResponse body carries the fence's SQLSTATE.
func isFenceError(body []byte) bool { return errorCode(body) == shardmap.CodeShardFenced }

// fenceHideLockedW decides, at a fence's ErrorResponse from sc, whether the request can be run
// again: the unit was attached outside a transaction for a routed write, the backend is still
// outside a transaction, nothing of a result reached the client, and the failed request is the
// only one queued, complete up to its Sync (or Query). When it can, the error is kept back and
// the request's remaining replies leave the queue (s.mu and s.wmu held).
func (s *session) fenceHideLockedW(sc *pool.Conn, f wire.Frame) bool {
	if !s.fenceOK || s.fenceErr != nil || s.server != sc || !s.srvWriter || s.relayDone != nil || s.clientGone ||
		s.txStatus != 'I' || s.resultsSent != s.replayResults || s.sentOverflow || s.fenceUnitAttempt >= maxFenceRetries {
		return false
	}
	if last := s.queue.last(); s.queue.syncs != 1 || last == nil || !isRequestEnd(last) {
		return false
	}
	s.fenceErr = append([]byte(nil), f...)
	s.copyIn = false
	s.batchFailed = true
	s.dropUntilSyncLocked(sc)
	return true
}

// fenceReadyLocked handles the ReadyForQuery that ends a request whose fence error was kept
// back. When the backend can be given back, it is, the retry is left for the pump
// (runFenceRetry), and fenceReadyLocked reports true with s.mu released. Otherwise the client
// gets the error after all, ahead of this ReadyForQuery, and it reports false with s.mu
// still held.
func (s *session) fenceReadyLocked(sc *pool.Conn, f wire.Frame) bool {
	errResp := s.fenceErr
	s.fenceErr = nil
	status := byte('I')
	if b := f.Body(); len(b) == 1 {
		status = b[0]
	}
	s.txStatus = status
	p := s.queue.peek()
	if status != 'I' || p == nil || !isRequestEnd(p) || s.queue.len() != 1 || s.server != sc ||
		s.relayDone != nil || !s.releasableLocked() {
		if status != 'I' {
			errResp = fencedInTxError(errResp)
			s.srv.moves.metrics.fence.WithLabelValues(fenceInTx).Inc()
		} else {
			s.srv.moves.metrics.fence.WithLabelValues(fenceNotRetryable).Inc()
		}
		s.srv.metrics.errors.WithLabelValues(errorCode(wire.Frame(errResp).Body()), "server").Inc()
		s.wmu.Lock()
		s.writeClient(errResp)
		s.resultsSent++
		s.wmu.Unlock()
		return false
	}
	s.queue.pop()
	s.settleSettings(sc, status) // the failed request's setting changes are dropped
	s.wrote, s.ranDDL = false, false
	r := &fenceRetry{
		frames:  append([]byte(nil), s.replay...),
		parses:  append([]deferredParse(nil), s.replayParses...),
		epoch:   s.fenceEpoch,
		errResp: errResp,
		attempt: s.fenceUnitAttempt + 1,
	}
	s.wmu.Lock()
	r.skip = append([]byte(nil), s.sentLog...)
	s.wmu.Unlock()
	s.fenceOK = false
	s.fenceRetry = r
	entry := s.pool
	s.detachLocked(sc)
	s.mu.Unlock()
	entry.release(sc)
	return true
}

// runFenceRetry runs the retry fenceReadyLocked left, if any, on the client loop: it asks for
// a map reload, waits (at most moves.buffer_timeout) for a map newer than the one the request
// was routed with, and runs the request again; without a newer map the client gets the fence's
// error.
func (s *session) runFenceRetry() {
	s.mu.Lock()
	r := s.fenceRetry
	s.fenceRetry = nil
	s.mu.Unlock()
	if r == nil {
		return
	}
	ms := s.srv.moves
	s.srv.HintEpoch()
	cfg := s.srv.config().Moves
	var end waitEnd
	if ms.take(cfg.BufferLimit) {
		end = s.waitMap(cfg.BufferTimeout.D(), func(m *shardmap.Map) bool { return m.Epoch > r.epoch })
		ms.put()
	} else {
		end = waitTimeout // the node holds all it may: the write goes back as it failed
	}
	switch end {
	case waitMet:
		ms.metrics.fence.WithLabelValues(fenceRetried).Inc()
		s.logger().Info("a write met a move's fence; running it again with the newer shard map",
			zap.Int64("routed_epoch", r.epoch), zap.Int("attempt", r.attempt))
		s.replayFenced(r)
		return
	case waitCancelled:
		ms.metrics.fence.WithLabelValues(fenceCancelled).Inc()
		s.localError(queryCanceledError(), true)
		return
	case waitClientGone, waitShutdown:
		ms.metrics.fence.WithLabelValues(fenceClientGone).Inc()
		return // the client loop reads the end of the connection next
	}
	ms.metrics.fence.WithLabelValues(fenceNoNewMap).Inc()
	s.srv.metrics.errors.WithLabelValues(shardmap.CodeShardFenced, "server").Inc()
	s.reply(r.errResp)
	s.reply(nil)
}

// replayFenced dispatches a fenced request's messages again; the replies the client already
// has are not sent twice.
func (s *session) replayFenced(r *fenceRetry) {
	s.mu.Lock()
	s.deferredParses = append(s.deferredParses[:0], r.parses...)
	s.mu.Unlock()
	s.wmu.Lock()
	s.replaySkip = r.skip
	s.wmu.Unlock()
	skip := s.skipUntilSync
	s.skipUntilSync = false
	s.fenceAttempt = r.attempt
	frames := r.frames
	for len(frames) >= wire.HeaderSize {
		n := 1 + int(uint32(frames[1])<<24|uint32(frames[2])<<16|uint32(frames[3])<<8|uint32(frames[4]))
		if n > len(frames) {
			break
		}
		f := wire.Frame(frames[:n])
		err := s.dispatch(f)
		s.record(f)
		if err != nil {
			s.logger().Info("running a fenced write again", zap.Error(err))
			break
		}
		frames = frames[n:]
	}
	s.fenceAttempt = 0
	s.skipUntilSync = s.skipUntilSync || skip
}

// fencedInTxError rewrites a fence's ErrorResponse met inside a transaction: SQLSTATE 40001,
// the message kept, and a detail saying that the shard moved, so that the client's retry loop
// runs the transaction again.
func fencedInTxError(f []byte) []byte {
	const detail = "shardwire: the shard this write is for was being moved to another group and its old owner refused the write (SQLSTATE " +
		shardmap.CodeShardFenced + "); nothing of the transaction was committed; run the transaction again"
	out := wire.AppendHeader(nil, wire.ErrorResponse, 0)
	hadDetail := false
	ok := errorFields(wire.Frame(f).Body(), func(field byte, v []byte) bool {
		switch field {
		case 'C':
			v = []byte(codeSerializationFailure)
		case 'D':
			v = append(append([]byte(detail), "; "...), v...)
			hadDetail = true
		}
		out = append(out, field)
		out = append(out, v...)
		out = append(out, 0)
		return true
	})
	if !ok {
		return f
	}
	if !hadDetail {
		out = append(out, 'D')
		out = append(out, detail...)
		out = append(out, 0)
	}
	out = append(out, 0)
	n := len(out) - 1
	out[1], out[2], out[3], out[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return out
}
