package cache

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/config"
)

// eventually polls cond until it holds, failing the test after within.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// testConfig is a cache configuration for tests: staleness as given, a Redis timeout
// generous enough for a loaded machine under the race detector, everything else default.
func testConfig(addrs []string, staleness time.Duration) config.Cache {
	cfg := config.Default().Cache
	cfg.Redis.Addrs = addrs
	cfg.Staleness = config.Duration(staleness)
	cfg.Timeout = config.Duration(time.Second)
	return cfg
}

// testNode is one cache as a proxy node holds it: own registry, Run in the background.
type testNode struct {
	*Cache
	reg *prometheus.Registry
}

// startNode builds a cache from cfg, runs it until the test ends, and (in Redis mode) waits
// until it is usable and subscribed.
func startNode(t *testing.T, cfg config.Cache, clustered bool, log *zap.Logger) *testNode {
	t.Helper()
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	reg := prometheus.NewRegistry()
	c, err := New(Options{Config: cfg, Log: log, Registry: reg, Clustered: clustered})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if c.mode == modeRedis {
		waitReady(t, c)
	}
	return &testNode{Cache: c, reg: reg}
}

// waitReady waits until c serves cached reads and its generation memory is live.
func waitReady(t *testing.T, c *Cache) {
	t.Helper()
	eventually(t, 5*time.Second, "the cache to be usable and subscribed", func() bool {
		return c.Usable() && c.mem.isOn()
	})
}

func (m *genMemory) isOn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on
}

// redisClient is a plain client for checking what the cache wrote.
func redisClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// gens1 reads one generation, failing the test on error.
func gen1(t *testing.T, c *Cache, g Gen) GenValue {
	t.Helper()
	v, err := c.Generations(context.Background(), []Gen{g}, nil)
	if err != nil {
		t.Fatalf("Generations(%+v): %v", g, err)
	}
	return v[0]
}

func mustKey(t *testing.T, g Gen) string {
	t.Helper()
	k, err := genKey(g)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyOf(s string) Key {
	b := NewKeyBuilder()
	b.String(s)
	return b.Sum()
}

// metricValue returns the value of the metric name with the given labels (counter, gauge,
// or a histogram's count) from reg, or -1 when it is not there.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// redisShift is what the cache adds to the counters Redis stores (epochShift of the epoch
// key).
func redisShift(t *testing.T, rc *redis.Client) uint64 {
	t.Helper()
	epoch, err := rc.Get(context.Background(), epochKey).Result()
	if err != nil {
		t.Fatalf("epoch key: %v", err)
	}
	return epochShift(epoch)
}
