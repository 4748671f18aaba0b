package health

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the checker's Prometheus instruments. Labels are bounded: group names,
// endpoint addresses and the two roles.
type metrics struct {
	lag           *prometheus.GaugeVec
	up            *prometheus.GaugeVec
	bans          *prometheus.CounterVec
	checkDuration prometheus.Histogram
	writerChanges *prometheus.CounterVec
}

// Role names, as Snapshot and the endpoint_up metric show them.
const (
	RoleWriter  = "writer"
	RoleReplica = "replica"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardwire_replica_lag_seconds",
			Help: "Replication lag of each replica as the health checker measures it; +Inf when down or unknown, 0 for the writer."},
			[]string{"group", "endpoint"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardwire_endpoint_up",
			Help: "1 if the endpoint answered its latest health check, else 0."},
			[]string{"group", "endpoint", "role"}),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_endpoint_bans_total",
			Help: "Times an endpoint was banned from reads after a failed read."},
			[]string{"group", "endpoint"}),
		checkDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shardwire_health_check_duration_seconds",
			Help:    "Duration of one endpoint health check, connect included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		writerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_writer_changes_total",
			Help: "Times a group's writer changed (promotion or failover)."},
			[]string{"group"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.up, m.bans, m.checkDuration, m.writerChanges)
	}
	return m
}

// export publishes ep's role, liveness and lag. The caller holds Checker.mu.
func (m *metrics) export(ep *endpoint, role string) {
	g := ep.group.name
	if ep.metricRole != role {
		if ep.metricRole != "" {
			m.up.DeleteLabelValues(g, ep.addr, ep.metricRole)
		}
		ep.metricRole = role
	}
	up := 0.0
	if ep.state.up {
		up = 1
	}
	m.up.WithLabelValues(g, ep.addr, role).Set(up)
	lag := math.Inf(1)
	switch {
	case role == RoleWriter:
		lag = 0
	case ep.state.up && ep.state.lagKnown:
		lag = ep.state.lag.Seconds()
	}
	m.lag.WithLabelValues(g, ep.addr).Set(lag)
}

// forget removes ep's series. The caller holds Checker.mu.
func (m *metrics) forget(ep *endpoint) {
	g := ep.group.name
	if ep.metricRole != "" {
		m.up.DeleteLabelValues(g, ep.addr, ep.metricRole)
	}
	m.lag.DeleteLabelValues(g, ep.addr)
	m.bans.DeleteLabelValues(g, ep.addr)
}
