package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shardwire/shardwire/internal/pgtest"
)

func TestLocalMode(t *testing.T) {
	c := startNode(t, testConfig(nil, time.Second), false, nil)
	ctx := context.Background()
	if !c.Usable() {
		t.Fatal("a node alone without Redis is not usable")
	}
	g := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 3}
	h := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 4}
	vals, err := c.Generations(ctx, []Gen{g, h}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vals[0].V == vals[1].V || vals[0].Group != "" || vals[0].LSN != 0 {
		t.Fatalf("new local generations %+v: want distinct random values, no group or LSN", vals)
	}
	if again := gen1(t, c.Cache, g); again != vals[0] {
		t.Fatalf("unstable: %+v then %+v", vals[0], again)
	}
	if err := c.Bump(ctx, "proxy", "g0", 77, []Touch{{DB: "app", Table: "invoices", Sharded: true, Customers: []int64{3}}}); err != nil {
		t.Fatal(err)
	}
	if got := gen1(t, c.Cache, g); got != (GenValue{V: vals[0].V + 1, Group: "g0", LSN: 77}) {
		t.Fatalf("after bump: %+v", got)
	}
	if got := gen1(t, c.Cache, h); got != vals[1] {
		t.Fatalf("untouched generation changed: %+v", got)
	}
	key := keyOf("local")
	if !c.Set(ctx, key, []byte("v"), time.Minute) {
		t.Fatal("Set refused")
	}
	if _, layer, ok := c.Get(ctx, key); !ok || layer != LayerL1 {
		t.Fatalf("Get = %s, %v; want an L1 hit", layer, ok)
	}
	// Two customers read, and the bump created the shard generation.
	if st := c.Stats(); st.Mode != "local" || !st.Usable || st.RedisUp || st.GenerationsHeld != 3 || st.Entries != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestLocalGensForgetBeyondLimit(t *testing.T) {
	l := newLocalGens(8)
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	first := l.get(keys, nil)
	l.get([]string{"i"}, nil)
	if l.size() > 8 {
		t.Fatalf("holds %d, limit 8", l.size())
	}
	// A forgotten counter comes back at a new value, never its old one.
	again := l.get(keys, nil)
	changed := 0
	for i := range keys {
		if again[i] != first[i] {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("nothing was forgotten")
	}
}

func TestClusteredWithoutRedisIsOff(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	c := startNode(t, testConfig(nil, time.Second), true, zap.New(core))
	ctx := context.Background()
	if c.Usable() {
		t.Fatal("clustered node without Redis is usable")
	}
	if _, err := c.Generations(ctx, []Gen{{Kind: GenGlobal, DB: "app"}}, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Generations = %v, want ErrUnavailable", err)
	}
	if err := c.BumpGens(ctx, "proxy", "g0", 1, []Gen{{Kind: GenGlobal, DB: "app"}}); err != nil {
		t.Fatalf("Bump on an off cache: %v", err)
	}
	if c.Set(ctx, keyOf("k"), []byte("v"), time.Minute) {
		t.Fatal("Set stored on an off cache")
	}
	if _, _, ok := c.Get(ctx, keyOf("k")); ok {
		t.Fatal("Get hit on an off cache")
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d warnings, want exactly one at start: %v", n, logs.All())
	}
	if st := c.Stats(); st.Mode != "off" || st.Usable {
		t.Fatalf("stats: %+v", st)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := testConfig(nil, time.Second)
	cfg.L1Bytes = -1
	if _, err := New(Options{Config: cfg}); err == nil {
		t.Fatal("New accepted a negative L1 budget")
	}
}

func TestMetricsAndStats(t *testing.T) {
	r := pgtest.NewRedis(t)
	rc := redisClient(t, r.Addr())
	if err := rc.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	c := startNode(t, testConfig([]string{r.Addr()}, time.Second), true, zap.New(core))
	if v := metricValue(t, c.reg, "shardwire_cache_redis_evicting_policy", nil); v != 1 {
		t.Fatalf("evicting policy gauge = %v, want 1", v)
	}
	if logs.FilterMessageSnippet("maxmemory-policy").Len() != 1 {
		t.Fatalf("no warning about maxmemory-policy: %v", logs.All())
	}
	c.Hit(LayerL1)
	c.Hit(LayerL1)
	c.Hit(LayerL2)
	c.Miss()
	c.Bypass("nocache")
	c.Filled(3 * time.Millisecond)
	c.FillRefused("lagging")
	st := c.Stats()
	if st.HitsL1 != 2 || st.HitsL2 != 1 || st.Misses != 1 || st.Fills != 1 ||
		st.HitRate != 0.75 || st.HitRateL1 != 0.5 || st.HitRateL2 != 0.5 {
		t.Fatalf("stats: %+v", st)
	}
	if st.Mode != "redis" || !st.RedisUp || !st.Usable {
		t.Fatalf("stats: %+v", st)
	}
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"shardwire_cache_hits_total", map[string]string{"layer": "l1"}, 2},
		{"shardwire_cache_hits_total", map[string]string{"layer": "l2"}, 1},
		{"shardwire_cache_misses_total", nil, 1},
		{"shardwire_cache_fills_total", nil, 1},
		{"shardwire_cache_fill_seconds", nil, 1},
		{"shardwire_cache_fills_refused_total", map[string]string{"reason": "lagging"}, 1},
		{"shardwire_cache_bypass_total", map[string]string{"reason": "nocache"}, 1},
		{"shardwire_cache_redis_up", nil, 1},
		{"shardwire_cache_evictions_total", map[string]string{"layer": "l1"}, 0},
		{"shardwire_cache_bytes", map[string]string{"layer": "l1"}, 0},
		{"shardwire_cache_entries", map[string]string{"layer": "l1"}, 0},
		{"shardwire_cache_generation_fetches_total", map[string]string{"result": "memory"}, 0},
	} {
		if got := metricValue(t, c.reg, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	if err := c.BumpGens(context.Background(), "flush", "", 0, []Gen{{Kind: GenGlobal, DB: "app"}}); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, c.reg, "shardwire_cache_invalidations_total", map[string]string{"source": "flush"}); got != 1 {
		t.Errorf("invalidations{flush} = %v", got)
	}
}
