package ratelimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Label values of invoiced_ratelimit_decisions_total.
const (
	resultAllowed = "allowed"
	resultLimited = "limited"
	sourceRedis   = "redis"
	sourceLocal   = "local"
)

// metrics are a Limiter's Prometheus collectors, with every label
// combination created up front so that the hot path does no lookups.
type metrics struct {
	decisions   [4][2][2]prometheus.Counter // [tier index][limited][local]
	redisErrors prometheus.Counter
}

// newMetrics creates the collectors and registers them with reg (nil: not
// registered). When reg already holds them (two limiters on one registry),
// the registered ones are shared. Other registration failures are logged:
// a limiter without metrics still limits.
func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "invoiced_ratelimit_decisions_total",
		Help: "Rate limit decisions by customer tier, result (allowed, limited) and source (redis, local).",
	}, []string{"tier", "result", "source"})
	redisErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "invoiced_ratelimit_redis_errors_total",
		Help: "Rate limit calls to Redis that failed or timed out; those requests were decided locally.",
	})
	if reg != nil {
		decisions = register(reg, log, decisions)
		redisErrors = register(reg, log, redisErrors)
	}
	m := &metrics{redisErrors: redisErrors}
	for i, tier := range knownTiers() {
		for limited, result := range [...]string{resultAllowed, resultLimited} {
			for local, source := range [...]string{sourceRedis, sourceLocal} {
				m.decisions[i][limited][local] = decisions.WithLabelValues(string(tier), result, source)
			}
		}
	}
	return m
}

// register registers c with reg and returns it, or the collector of the same
// description that reg already holds.
func register[C prometheus.Collector](reg prometheus.Registerer, log *zap.Logger, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("rate limiter: cannot register metrics", zap.Error(err))
	return c
}

// observe counts one decision for tier (a known tier).
func (m *metrics) observe(tier Tier, d Decision) {
	m.decisions[tier.index()][b2i(!d.Allowed)][b2i(d.Local)].Inc()
}

// b2i returns 1 for true, else 0.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
