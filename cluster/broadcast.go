package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Reserved message kinds: AnnounceEpoch uses "epoch", Leave uses "leave".
const (
	epochKind = "epoch"
	leaveKind = "leave"
)

// Message is one typed message between nodes: handlers are chosen by Kind.
type Message struct {
	Kind string
	Body []byte
}

// HandlerFunc handles one message of a kind. from is the sending node's name.
// Handlers run on one goroutine owned by the Cluster, one at a time, in the
// order messages arrive; body is the handler's to keep. A handler must return
// promptly: inbound messages queue behind it and are dropped, counted, when
// the queue is full. An error is logged and, for BroadcastAndWait, returned
// to the sender in the ack.
type HandlerFunc func(from string, body []byte) error

// BroadcastResult describes a finished BroadcastAndWait.
type BroadcastResult struct {
	// Acked lists the members (this node included) whose handler ran, sorted.
	Acked []string
	// Errors maps a member name to the error its handler returned.
	Errors map[string]string
	// Missing lists live members that did not ack before ctx ended, sorted.
	Missing []string
	// Elapsed is the round trip time.
	Elapsed time.Duration
}

// MissingAcksError is returned by BroadcastAndWait when ctx ended before every
// member acked.
type MissingAcksError struct {
	Kind    string
	Missing []string
	Cause   error // the context's error
}

// Error names the members that did not answer.
func (e *MissingAcksError) Error() string {
	return fmt.Sprintf("cluster: broadcast %q: no ack from %s: %v", e.Kind, strings.Join(e.Missing, ", "), e.Cause)
}

// Unwrap returns the context's error.
func (e *MissingAcksError) Unwrap() error { return e.Cause }

// HandlerError is returned by BroadcastAndWait when every member acked but at
// least one handler (possibly the local one) failed.
type HandlerError struct {
	Kind   string
	Errors map[string]string
}

// Error lists the failing members and their errors.
func (e *HandlerError) Error() string {
	names := make([]string, 0, len(e.Errors))
	for n := range e.Errors {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + e.Errors[n]
	}
	return fmt.Sprintf("cluster: broadcast %q: handler failed on %s", e.Kind, strings.Join(parts, "; "))
}

// pendingBroadcast tracks the acks one BroadcastAndWait still waits for.
type pendingBroadcast struct {
	waiting map[string]bool
	acked   []string
	errs    map[string]string
	done    chan struct{}
}

// Handle registers fn for messages of kind. It must be called before Join;
// each kind has one handler; "epoch" and "leave" are reserved for
// AnnounceEpoch and Leave.
func (c *Cluster) Handle(kind string, fn HandlerFunc) error {
	if kind == "" || fn == nil {
		return errors.New("cluster: handle: empty kind or nil handler")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.joined:
		return fmt.Errorf("cluster: handle %q: handlers must be registered before Join", kind)
	case kind == epochKind || kind == leaveKind:
		return fmt.Errorf("cluster: handle %q: kind is reserved", kind)
	case c.handlers[kind] != nil:
		return fmt.Errorf("cluster: handle %q: already registered", kind)
	}
	c.handlers[kind] = fn
	return nil
}

// Broadcast gossips a message to every member, best effort: it is queued for
// memberlist's piggybacked gossip (retransmitted about RetransmitMult*log(N+1)
// times) and may be lost. The local handler for kind, if any, runs before
// Broadcast returns, and its error is returned. body must fit one gossip
// packet (about 1.2 KB); use BroadcastAndWait for larger bodies.
func (c *Cluster) Broadcast(ctx context.Context, kind string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cluster: broadcast %q: %w", kind, err)
	}
	self := c.LocalNode()
	msg := envelope{typ: envBroadcast, from: self.Name, addr: self.Addr, Message: Message{Kind: kind, Body: body}}.encode()
	if len(msg) > c.maxBroadcast {
		return fmt.Errorf("cluster: broadcast %q: %d-byte message exceeds the %d-byte gossip limit", kind, len(msg), c.maxBroadcast)
	}
	c.queue.QueueBroadcast(gossipBroadcast(msg))
	if fn := c.handler(kind); fn != nil {
		if err := fn(self.Name, append([]byte(nil), body...)); err != nil {
			return fmt.Errorf("cluster: broadcast %q: local handler: %w", kind, err)
		}
	}
	return nil
}

// BroadcastAndWait sends a message over TCP to every member alive when the
// call starts (other than this node), and runs this node's own handler for
// kind. Each receiver runs its handler and acks. The call returns when every
// target acked, or when ctx ends with a *MissingAcksError naming the targets
// that did not ack. A target that dies or leaves during the call counts as
// missing: the caller, not this package, decides whether a dead node may be
// ignored (see Members). When all acked but some handler failed, the error is
// a *HandlerError. A member without a handler for kind acks with an error.
func (c *Cluster) BroadcastAndWait(ctx context.Context, kind string, body []byte) (BroadcastResult, error) {
	start := time.Now()
	defer func() { c.metrics.broadcastTime.Observe(time.Since(start).Seconds()) }()

	self := c.LocalNode()
	id := c.nextID.Add(1)
	p := &pendingBroadcast{waiting: map[string]bool{}, errs: map[string]string{}, done: make(chan struct{})}
	var targets []Member
	c.mu.Lock()
	for _, m := range c.members {
		if m.State == StateAlive && m.Name != self.Name {
			targets = append(targets, *m)
			p.waiting[m.Name] = true
		}
	}
	if len(targets) == 0 {
		close(p.done)
	}
	c.pending[id] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	msg := envelope{typ: envRequest, id: id, from: self.Name, addr: self.Addr, Message: Message{Kind: kind, Body: body}}.encode()
	for _, t := range targets {
		c.spawn(func() {
			node := &memberlist.Node{Name: t.Name, Addr: t.ip, Port: t.port}
			if err := c.ml.SendReliable(node, msg); err != nil {
				c.log.Warn("broadcast send failed", zap.String("kind", kind), zap.String("to", t.Name), zap.Error(err))
				return
			}
			c.metrics.traffic("out", len(msg))
		})
	}

	// The local handler runs while the remote sends are in flight.
	localErr := ""
	if fn := c.handler(kind); fn == nil {
		localErr = "no handler for kind " + strconv.Quote(kind)
	} else if err := fn(self.Name, append([]byte(nil), body...)); err != nil {
		localErr = err.Error()
	}

	var waitErr error
	select {
	case <-p.done:
	case <-ctx.Done():
		waitErr = ctx.Err()
	}

	c.mu.Lock()
	res := BroadcastResult{
		Acked:  append([]string{self.Name}, p.acked...),
		Errors: make(map[string]string, len(p.errs)+1),
	}
	for n, e := range p.errs {
		res.Errors[n] = e
	}
	for n := range p.waiting {
		res.Missing = append(res.Missing, n)
	}
	c.mu.Unlock()
	if localErr != "" {
		res.Errors[self.Name] = localErr
	}
	sort.Strings(res.Acked)
	sort.Strings(res.Missing)
	res.Elapsed = time.Since(start)
	if len(res.Missing) > 0 {
		if waitErr == nil {
			waitErr = context.Canceled
		}
		return res, &MissingAcksError{Kind: kind, Missing: res.Missing, Cause: waitErr}
	}
	if len(res.Errors) > 0 {
		return res, &HandlerError{Kind: kind, Errors: res.Errors}
	}
	return res, nil
}

// Send delivers one message to the alive member named to, over TCP (memberlist's reliable
// channel, encrypted like gossip). The member's handler for kind runs; there is no
// acknowledgement. It fails when to is not an alive member, or the send fails or outlasts ctx.
func (c *Cluster) Send(ctx context.Context, to, kind string, body []byte) error {
	c.mu.Lock()
	m := c.members[to]
	var node *memberlist.Node
	if m != nil && m.State == StateAlive {
		node = &memberlist.Node{Name: m.Name, Addr: m.ip, Port: m.port}
	}
	c.mu.Unlock()
	if node == nil {
		return fmt.Errorf("cluster: send %q to %s: not an alive member", kind, to)
	}
	self := c.LocalNode()
	msg := envelope{typ: envBroadcast, from: self.Name, addr: self.Addr, Message: Message{Kind: kind, Body: body}}.encode()
	done := make(chan error, 1)
	if !c.spawn(func() { done <- c.ml.SendReliable(node, msg) }) {
		return fmt.Errorf("cluster: send %q to %s: node is shut down", kind, to)
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("cluster: send %q to %s: %w", kind, to, err)
		}
		c.metrics.traffic("out", len(msg))
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: send %q to %s: %w", kind, to, ctx.Err())
	}
}

// AnnounceEpoch tells every member, best effort, that shard-map epoch exists.
// Receivers fire their OnEpoch callbacks if it is the highest they have seen.
func (c *Cluster) AnnounceEpoch(ctx context.Context, epoch int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(epoch))
	return c.Broadcast(ctx, epochKind, b[:])
}

// handleEpoch is the built-in handler for kind "epoch".
func (c *Cluster) handleEpoch(from string, body []byte) error {
	if len(body) != 8 {
		return fmt.Errorf("cluster: epoch message: want 8 bytes, got %d", len(body))
	}
	c.observeEpoch(int64(binary.BigEndian.Uint64(body)), from)
	return nil
}

func (c *Cluster) handler(kind string) HandlerFunc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handlers[kind]
}

// handleAck records one ack. It runs on memberlist's goroutine and only
// touches the pending map.
func (c *Cluster) handleAck(e envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[e.id]
	if p == nil || !p.waiting[e.from] {
		return
	}
	delete(p.waiting, e.from)
	p.acked = append(p.acked, e.from)
	if e.err != "" {
		p.errs[e.from] = e.err
	}
	if len(p.waiting) == 0 {
		close(p.done)
	}
}

// dispatchLoop runs handlers for inbound broadcasts and requests, and sends
// acks for requests from their own goroutines so a slow peer does not hold
// up the next message.
func (c *Cluster) dispatchLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case e := <-c.inbound:
			c.dispatch(e)
		}
	}
}

func (c *Cluster) dispatch(e envelope) {
	errText := ""
	if fn := c.handler(e.Kind); fn == nil {
		errText = "no handler for kind " + strconv.Quote(e.Kind)
		c.log.Warn("cluster message without handler", zap.String("kind", e.Kind), zap.String("from", e.from))
	} else if err := fn(e.from, e.Body); err != nil {
		errText = err.Error()
		c.log.Warn("cluster message handler failed", zap.String("kind", e.Kind), zap.String("from", e.from), zap.Error(err))
	}
	if e.typ != envRequest {
		return
	}
	host, portStr, err := net.SplitHostPort(e.addr)
	port, perr := strconv.ParseUint(portStr, 10, 16)
	ip := net.ParseIP(host)
	if err != nil || perr != nil || ip == nil {
		c.log.Warn("cannot ack: bad sender address", zap.String("from", e.from), zap.String("addr", e.addr))
		return
	}
	ack := envelope{typ: envAck, id: e.id, from: c.cfg.NodeName, err: errText}.encode()
	node := &memberlist.Node{Name: e.from, Addr: ip, Port: uint16(port)}
	c.spawn(func() {
		if err := c.ml.SendReliable(node, ack); err != nil {
			c.log.Warn("ack send failed", zap.String("to", e.from), zap.Error(err))
			return
		}
		c.metrics.traffic("out", len(ack))
	})
}

// gossipBroadcast is a best-effort broadcast in memberlist's queue.
type gossipBroadcast []byte

// Invalidates reports false: broadcasts never supersede each other.
func (b gossipBroadcast) Invalidates(memberlist.Broadcast) bool { return false }

// Message returns the encoded envelope.
func (b gossipBroadcast) Message() []byte { return b }

// Finished is a no-op.
func (b gossipBroadcast) Finished() {}
