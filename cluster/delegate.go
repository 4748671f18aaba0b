package cluster

import (
	"encoding/json"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// delegate implements memberlist.Delegate for a Cluster. memberlist calls it
// from its gossip and network goroutines: every method copies what it needs
// and returns without blocking.
type delegate Cluster

// eventDelegate implements memberlist.EventDelegate for a Cluster. memberlist
// calls it while holding its node-state lock, so it must not call back into
// the Memberlist; it records the change and posts it to the event goroutine.
type eventDelegate Cluster

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*eventDelegate)(nil)
)

// NodeMeta returns the encoded local metadata (already checked against
// memberlist.MetaMaxSize by refreshMeta).
func (d *delegate) NodeMeta(limit int) []byte {
	b := *(*Cluster)(d).meta.Load()
	if len(b) > limit {
		return nil
	}
	return b
}

// NotifyMsg receives a user message. Acks are matched here (a map lookup);
// everything else goes to the dispatch goroutine, or is dropped and counted
// when its queue is full.
func (d *delegate) NotifyMsg(b []byte) {
	c := (*Cluster)(d)
	c.metrics.traffic("in", len(b))
	e, err := decodeEnvelope(b)
	if err != nil {
		c.log.Warn("dropping undecodable cluster message", zap.Error(err))
		return
	}
	if e.typ == envAck {
		c.handleAck(e)
		return
	}
	select {
	case c.inbound <- e:
	default:
		c.metrics.eventsDropped.Inc()
		c.log.Warn("dropping cluster message: handler queue full", zap.String("kind", e.Kind), zap.String("from", e.from))
	}
}

// GetBroadcasts hands queued best-effort broadcasts to memberlist's gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	c := (*Cluster)(d)
	msgs := c.queue.GetBroadcasts(overhead, limit)
	for _, m := range msgs {
		c.metrics.traffic("out", len(m))
	}
	return msgs
}

// pushPullState is what LocalState sends and MergeRemoteState receives.
type pushPullState struct {
	Name  string `json:"n"`
	Epoch int64  `json:"e"`
}

// LocalState returns this node's name and shard-map epoch for a push/pull
// exchange.
func (d *delegate) LocalState(join bool) []byte {
	c := (*Cluster)(d)
	c.mu.Lock()
	st := pushPullState{Name: c.cfg.NodeName, Epoch: c.localEpoch}
	c.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		c.log.Warn("encode push/pull state", zap.Error(err))
		return nil
	}
	c.metrics.traffic("out", len(b))
	return b
}

// MergeRemoteState learns a remote node's epoch from its push/pull state.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	c := (*Cluster)(d)
	if len(buf) == 0 {
		return
	}
	c.metrics.traffic("in", len(buf))
	var st pushPullState
	if err := json.Unmarshal(buf, &st); err != nil {
		c.log.Warn("dropping undecodable push/pull state", zap.Error(err))
		return
	}
	c.observeEpoch(st.Epoch, st.Name)
}

// NotifyJoin records a member that became alive.
func (d *eventDelegate) NotifyJoin(n *memberlist.Node) {
	c := (*Cluster)(d)
	c.mu.Lock()
	delete(c.leaving, n.Name)
	c.mu.Unlock()
	c.setMember(n, StateAlive, EventJoin)
}

// NotifyLeave records a member declared dead or that left. memberlist does
// not say which (its Node.State is not maintained), so a member counts as
// left when it announced its departure with Leave first.
func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	c := (*Cluster)(d)
	c.mu.Lock()
	_, left := c.leaving[n.Name]
	delete(c.leaving, n.Name)
	c.mu.Unlock()
	if left {
		c.setMember(n, StateLeft, EventLeft)
		return
	}
	c.setMember(n, StateDead, EventDead)
}

// NotifyUpdate records an alive member's new metadata or address.
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) {
	(*Cluster)(d).setMember(n, StateAlive, EventUpdate)
}
