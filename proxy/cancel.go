package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"hash/fnv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/proxy/pool"
)

// Layout of the process id in the BackendKeyData the proxy issues: bit 31 stays clear (drivers
// read the field as a signed int32), the next tagBits carry the issuing node's tag, and the
// low seqBits number the node's sessions.
const (
	tagBits = 10
	seqBits = 31 - tagBits
	seqMask = 1<<seqBits - 1
	tagMask = 1<<tagBits - 1
)

// NodeTag is the tag a node named name puts in the keys it issues: every node computes it
// from the name alone, so a node that receives a cancel request for another node's key
// knows where to send it. Two names may share a tag; the key's secret tells them apart.
func NodeTag(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32() & tagMask
}

// KeyTag returns the node tag inside a process id the proxy issued.
func KeyTag(pid uint32) uint32 { return pid >> seqBits & tagMask }

// CancelForwarder sends a cancel request for a key this node did not issue to the node(s)
// whose tag the key carries. It must not block for long: it runs on the cancel connection.
type CancelForwarder func(ctx context.Context, pid uint32, secret []byte)

// backendKey is the BackendKeyData the proxy gives a client. The process id carries the node's
// tag (NodeTag), so a key tells which node issued it.
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
		r.seq = (r.seq + 1) & seqMask
		pid := nodeTag<<seqBits | r.seq
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

// SetCancelForwarder makes cancel requests for keys issued by other nodes go to fwd. Call it
// before Serve.
func (s *Server) SetCancelForwarder(fwd CancelForwarder) { s.forwardCancel = fwd }

// handleCancel handles a CancelRequest a client sent to this node: a key this node issued
// cancels here, any other goes to the forwarder (another node issued it). A key with this
// node's tag that matches none of its sessions goes to the forwarder too: another node's name
// may hash to the same tag.
func (s *Server) handleCancel(pid uint32, secret []byte) {
	if (KeyTag(pid) == s.nodeTag || s.forwardCancel == nil) && s.CancelLocal(pid, secret) {
		return
	}
	if s.forwardCancel == nil {
		return
	}
	s.metrics.cancels.WithLabelValues("to_peer").Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.forwardCancel(ctx, pid, secret)
}

// CancelLocal cancels the query running in the session this node issued the key (pid,
// secret) to, and reports whether the key matched a session of this node. The cancel of a
// session that runs nothing does nothing. The backend that receives the cancel is never
// handed to another client while the cancel is in flight.
func (s *Server) CancelLocal(pid uint32, secret []byte) bool {
	sess := s.cancels.lookup(pid, secret)
	if sess == nil {
		s.metrics.cancels.WithLabelValues("unknown_key").Inc()
		s.log.Info("cancel request with an unknown key", zap.Uint32("pid", pid))
		return false
	}
	s.cancelSession(sess)
	return true
}

// cancelSession cancels what sess runs on its backend(s).
func (s *Server) cancelSession(sess *session) {
	sess.mu.Lock()
	if sess.holdCancel != nil {
		// The session holds its statement for a shard being moved: nothing runs yet, the
		// statement is refused.
		close(sess.holdCancel)
		sess.holdCancel = nil
		sess.mu.Unlock()
		s.metrics.cancels.WithLabelValues("held").Inc()
		return
	}
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
