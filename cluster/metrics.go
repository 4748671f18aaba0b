package cluster

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the package's collectors. Label values are bounded: state is
// one of MemberState's strings, direction is "in" or "out".
type metrics struct {
	members       *prometheus.GaugeVec
	gossipMsgs    *prometheus.CounterVec
	gossipBytes   *prometheus.CounterVec
	broadcastTime prometheus.Histogram
	eventsDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardwire_cluster_members",
			Help: "Cluster members known to this node, by state.",
		}, []string{"state"}),
		gossipMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cluster_gossip_messages_total",
			Help: "Application gossip messages (user messages, broadcasts, push/pull state) by direction.",
		}, []string{"direction"}),
		gossipBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cluster_gossip_bytes_total",
			Help: "Bytes of application gossip messages by direction.",
		}, []string{"direction"}),
		broadcastTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shardwire_cluster_broadcast_seconds",
			Help:    "Round trip of BroadcastAndWait, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_cluster_events_dropped_total",
			Help: "Membership events and inbound messages dropped because a queue was full.",
		}),
	}
	for _, s := range []MemberState{StateAlive, StateDead, StateLeft} {
		m.members.WithLabelValues(s.String())
	}
	for _, d := range []string{"in", "out"} {
		m.gossipMsgs.WithLabelValues(d)
		m.gossipBytes.WithLabelValues(d)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.members, m.gossipMsgs, m.gossipBytes, m.broadcastTime, m.eventsDropped} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("cluster: metrics already registered (one Cluster per registry): %w", err)
			}
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) traffic(direction string, n int) {
	m.gossipMsgs.WithLabelValues(direction).Inc()
	m.gossipBytes.WithLabelValues(direction).Add(float64(n))
}
