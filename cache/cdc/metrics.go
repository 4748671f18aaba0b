package cdc

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the feed's collectors. One Metrics serves every feed of a node; labels tell
// the feeds apart. Its methods are safe for concurrent use.
type Metrics struct {
	leader   *prometheus.GaugeVec     // group, database
	txns     *prometheus.CounterVec   // group
	bumpErrs *prometheus.CounterVec   // group
	lag      *prometheus.HistogramVec // group
}

// NewMetrics creates the feed's collectors and registers them with reg (nil: not
// registered). Called again with the same registry, it returns collectors sharing the
// registered ones. It panics, as prometheus.MustRegister does, when reg holds different
// collectors under the same names.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardwire_cache_feed_leader",
			Help: "1 while this node runs the change feed of a shard group's database, else 0.",
		}, []string{"group", "database"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cache_feed_transactions_total",
			Help: "Committed transactions received by the change feed, including those that touched no cached table.",
		}, []string{"group"}),
		bumpErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cache_feed_bump_errors_total",
			Help: "Failed attempts of the change feed to bump cache generations (each is retried).",
		}, []string{"group"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shardwire_cache_feed_lag_seconds",
			Help:    "Invalidation lag of writes that bypass the proxy: from a transaction's commit timestamp to its bump.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"group"}),
	}
	if reg == nil {
		return m
	}
	m.leader = register(reg, m.leader)
	m.txns = register(reg, m.txns)
	m.bumpErrs = register(reg, m.bumpErrs)
	m.lag = register(reg, m.lag)
	return m
}

// register registers c with reg and returns it, or the equal collector reg already holds.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic("cdc: register metrics: " + err.Error())
}
