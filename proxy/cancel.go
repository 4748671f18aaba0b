package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/proxy/pool"
)

// backendKey is the BackendKeyData the proxy gives a client. The process id's top byte carries
// the node's tag, so a key tells which node issued it.
type backendKey struct {
	pid    uint32
	secret [4]byte
}

// cancelRegistry maps the keys the proxy issued to their sessions.
type cancelRegistry struct {
	mu       sync.Mutex
	seq      uint32
	sessions map[uint32]*session
}

func newCancelRegistry() *cancelRegistry {
	return &cancelRegistry{sessions: make(map[uint32]*session)}
}

// newKey returns an unused key for a node tag.
func (r *cancelRegistry) newKey(nodeTag uint32) backendKey {
	var k backendKey
	_, _ = rand.Read(k.secret[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		r.seq = (r.seq + 1) & 0x00ffffff
		pid := nodeTag<<24 | r.seq
		if _, used := r.sessions[pid]; pid != 0 && !used {
			k.pid = pid
			r.sessions[pid] = nil // reserved until add
			return k
		}
	}
}

func (r *cancelRegistry) add(s *session) {
	r.mu.Lock()
	r.sessions[s.key.pid] = s
	r.mu.Unlock()
}

func (r *cancelRegistry) remove(s *session) {
	r.mu.Lock()
	delete(r.sessions, s.key.pid)
	r.mu.Unlock()
}

func (r *cancelRegistry) lookup(pid uint32, secret []byte) *session {
	r.mu.Lock()
	s := r.sessions[pid]
	r.mu.Unlock()
	if s == nil || len(secret) != len(s.key.secret) || subtle.ConstantTimeCompare(secret, s.key.secret[:]) != 1 {
		return nil
	}
	return s
}

// handleCancel cancels the query a client's session is running, if the key matches and a
// query is running. The backend that receives the cancel is never handed to another client
// while the cancel is in flight.
func (s *Server) handleCancel(pid uint32, secret []byte) {
	sess := s.cancels.lookup(pid, secret)
	if sess == nil {
		s.metrics.cancels.WithLabelValues("unknown_key").Inc()
		s.log.Info("cancel request with an unknown key", zap.Uint32("pid", pid))
		return
	}
	sess.mu.Lock()
	if sess.multiRunning {
		// A scatter or DDL on every group runs: cancel it on each group's backend. Those
		// backends are closed, not pooled, afterwards (a late cancel must hit nobody else).
		conns := append([]*pool.Conn(nil), sess.multi...)
		sess.multiCancelled = true
		sess.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		result := "forwarded"
		for _, sc := range conns {
			if err := sc.Cancel(ctx); err != nil {
				result = "failed"
				sess.logger().Warn("forwarding cancel request failed", zap.String("server", sc.Addr()), zap.Error(err))
			}
		}
		s.metrics.cancels.WithLabelValues(result).Inc()
		return
	}
	sc := sess.server
	if sc == nil || sess.queue.len() == 0 {
		sess.mu.Unlock()
		s.metrics.cancels.WithLabelValues("idle").Inc()
		return
	}
	sess.cancelling++
	sess.mu.Unlock()
	if err := sess.cancelBackend(sc); err != nil {
		s.metrics.cancels.WithLabelValues("failed").Inc()
		sess.logger().Warn("forwarding cancel request failed", zap.Error(err))
		return
	}
	s.metrics.cancels.WithLabelValues("forwarded").Inc()
	sess.logger().Debug("query cancelled", zap.Uint32("server_pid", sc.PID()))
}
