package cache

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the cache's Prometheus metrics and the counters Stats reports.
type metrics struct {
	hitsL1, hitsL2  prometheus.Counter
	misses          prometheus.Counter
	fills           prometheus.Counter
	fillSeconds     prometheus.Histogram
	fillsRefused    *prometheus.CounterVec
	bypass          *prometheus.CounterVec
	invalidations   *prometheus.CounterVec
	invalidationLag *prometheus.HistogramVec
	evictions       prometheus.Counter
	// evictionsL2 counts the keys Redis evicted (INFO stats evicted_keys), all clients' and
	// not only this cache's; single-node Redis and Sentinel only.
	evictionsL2      prometheus.Counter
	redisUp          prometheus.Gauge
	evictingPolicy   prometheus.Gauge
	fetchMemory      prometheus.Counter
	fetchRedis       prometheus.Counter
	fetchError       prometheus.Counter
	collectors       []prometheus.Collector
	nHitsL1, nHitsL2 atomic.Uint64
	nMisses, nFills  atomic.Uint64
}

// newMetrics builds the metrics; bytes and entries read the L1 through the functions given.
func newMetrics(l1Bytes, l1Entries func() float64) *metrics {
	l1 := prometheus.Labels{"layer": "l1"}
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardwire_cache_hits_total", Help: "Cached reads served, by the layer that held the entry.",
	}, []string{"layer"})
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardwire_cache_generation_fetches_total",
		Help: "Generation lookups: answered from this node's memory, from Redis, or failed.",
	}, []string{"result"})
	m := &metrics{
		hitsL1: hits.WithLabelValues("l1"),
		hitsL2: hits.WithLabelValues("l2"),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_cache_misses_total", Help: "Cacheable reads not found in any layer.",
		}),
		fills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_cache_fills_total", Help: "Entries stored after a miss.",
		}),
		fillSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shardwire_cache_fill_seconds",
			Help:    "Time from a miss to its entry being stored (the backend query included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		fillsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cache_fills_refused_total", Help: "Misses whose result was not stored, by reason.",
		}, []string{"reason"}),
		bypass: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cache_bypass_total", Help: "Reads that did not use the cache, by reason.",
		}, []string{"reason"}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cache_invalidations_total",
			Help: "Generations bumped (applied, or kept for retry while Redis is down), by source.",
		}, []string{"source"}),
		invalidationLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shardwire_cache_invalidation_seconds",
			Help:    "From a bump's start (right after the write committed) to its generations being bumped in Redis and this node's memory, by source; other nodes drop them on the pub/sub message a moment later.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"source"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_cache_evictions_total", Help: "Entries evicted from a layer to make room (expiry not included).",
			ConstLabels: l1,
		}),
		evictionsL2: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_cache_evictions_total", Help: "Entries evicted from a layer to make room (expiry not included).",
			ConstLabels: prometheus.Labels{"layer": "l2"},
		}),
		redisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardwire_cache_redis_up", Help: "1 when Redis answers and cached reads may be served.",
		}),
		evictingPolicy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardwire_cache_redis_evicting_policy",
			Help: "1 when Redis runs with an allkeys-* maxmemory-policy, which may evict generation counters.",
		}),
		fetchMemory: fetches.WithLabelValues("memory"),
		fetchRedis:  fetches.WithLabelValues("redis"),
		fetchError:  fetches.WithLabelValues("error"),
	}
	m.collectors = []prometheus.Collector{
		hits, m.misses, m.fills, m.fillSeconds, m.fillsRefused, m.bypass, m.invalidations, m.invalidationLag, m.evictions, m.evictionsL2,
		m.redisUp, m.evictingPolicy, fetches,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shardwire_cache_bytes", Help: "Bytes held by a layer (entries and their overhead).", ConstLabels: l1,
		}, l1Bytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shardwire_cache_entries", Help: "Entries held by a layer.", ConstLabels: l1,
		}, l1Entries),
	}
	return m
}

// register registers every metric with reg (nil: none).
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("register cache metrics: %w", err)
		}
	}
	return nil
}

// Hit records a read served from the cache.
func (c *Cache) Hit(layer Layer) {
	switch layer {
	case LayerL1:
		c.m.hitsL1.Inc()
		c.m.nHitsL1.Add(1)
	case LayerL2:
		c.m.hitsL2.Inc()
		c.m.nHitsL2.Add(1)
	}
}

// Miss records a cacheable read that no layer held.
func (c *Cache) Miss() {
	c.m.misses.Inc()
	c.m.nMisses.Add(1)
}

// Bypass records a read that did not use the cache, and why (e.g. "nocache",
// "transaction", "unavailable").
func (c *Cache) Bypass(reason string) { c.m.bypass.WithLabelValues(reason).Inc() }

// Filled records an entry stored d after its miss began.
func (c *Cache) Filled(d time.Duration) {
	c.m.fills.Inc()
	c.m.nFills.Add(1)
	c.m.fillSeconds.Observe(d.Seconds())
}

// FillRefused records a miss whose result was not stored, and why (e.g. "lagging",
// "size").
func (c *Cache) FillRefused(reason string) { c.m.fillsRefused.WithLabelValues(reason).Inc() }

// Stats is a snapshot of the cache for the admin API (GET /api/v1/cache) and SHOW CACHE.
type Stats struct {
	// Mode is "redis", "local" (a node alone, without Redis) or "off" (clustered without
	// Redis: no caching).
	Mode string `json:"mode"`
	// Usable reports whether cached reads are served now.
	Usable bool `json:"usable"`
	// RedisUp reports whether Redis answers (always false without Redis).
	RedisUp bool `json:"redis_up"`
	// Entries and Bytes are what L1 holds; Bytes counts each entry's overhead too.
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"`
	// HitsL1, HitsL2 and Misses count cacheable reads since start; Fills the entries
	// stored after misses.
	HitsL1 uint64 `json:"hits_l1"`
	HitsL2 uint64 `json:"hits_l2"`
	Misses uint64 `json:"misses"`
	Fills  uint64 `json:"fills"`
	// HitRate is (HitsL1+HitsL2) over all cacheable reads. Each layer's rate is its hits
	// over the lookups that reached it: all reads for L1, those L1 missed for L2. Zero
	// when nothing reached the layer.
	HitRate   float64 `json:"hit_rate"`
	HitRateL1 float64 `json:"hit_rate_l1"`
	HitRateL2 float64 `json:"hit_rate_l2"`
	// GenerationsHeld is how many generation values this node holds: in its memory of
	// Redis's, or all of them in local mode.
	GenerationsHeld int `json:"generations_held"`
	// PendingBumps is how many bumps wait for Redis to come back.
	PendingBumps int `json:"pending_bumps"`
}

// Stats returns a snapshot of the cache's state and counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Mode:    c.mode.String(),
		Usable:  c.Usable(),
		RedisUp: c.mode == modeRedis && c.up.Load(),
		Entries: int64(c.l1Entries()),
		Bytes:   int64(c.l1Bytes()),
		HitsL1:  c.m.nHitsL1.Load(),
		HitsL2:  c.m.nHitsL2.Load(),
		Misses:  c.m.nMisses.Load(),
		Fills:   c.m.nFills.Load(),
	}
	if total := s.HitsL1 + s.HitsL2 + s.Misses; total > 0 {
		s.HitRate = float64(s.HitsL1+s.HitsL2) / float64(total)
		s.HitRateL1 = float64(s.HitsL1) / float64(total)
		if reachedL2 := total - s.HitsL1; reachedL2 > 0 {
			s.HitRateL2 = float64(s.HitsL2) / float64(reachedL2)
		}
	}
	switch c.mode {
	case modeRedis:
		s.GenerationsHeld = c.mem.held()
		c.stateMu.Lock()
		s.PendingBumps = c.pending.len()
		c.stateMu.Unlock()
	case modeLocal:
		s.GenerationsHeld = c.local.size()
	}
	return s
}
