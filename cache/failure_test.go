package cache

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/netfault"
	"github.com/shardwire/shardwire/internal/pgtest"
)

func TestRedisKilledAndRestarted(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	ctx := context.Background()
	g := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 5}
	bumped := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 6}
	before := gen1(t, a.Cache, g)
	key := keyOf("entry")
	if !a.Set(ctx, key, []byte("v"), time.Minute) {
		t.Fatal("Set refused")
	}

	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the cache to notice Redis is gone", func() bool { return !a.Usable() })
	if _, err := a.Generations(ctx, []Gen{g}, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Generations with Redis down = %v, want ErrUnavailable", err)
	}
	if _, layer, ok := a.Get(ctx, key); ok {
		t.Fatalf("Get served from %s with Redis down", layer)
	}
	if a.Set(ctx, keyOf("other"), []byte("v"), time.Minute) {
		t.Fatal("Set stored with Redis down")
	}
	if err := a.Bump(ctx, "proxy", "g1", 0xABC, []Touch{{DB: "app", Table: "invoices", Sharded: true, Customers: []int64{6}}}); err == nil {
		t.Fatal("Bump with Redis down returned no error")
	}
	if st := a.Stats(); st.Usable || st.RedisUp || st.PendingBumps != 2 {
		t.Fatalf("stats with Redis down: %+v; want unusable, 2 pending bumps", st)
	}
	if v := metricValue(t, a.reg, "shardwire_cache_redis_up", nil); v != 0 {
		t.Fatalf("redis_up = %v", v)
	}

	// Same port, data lost.
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, a.Cache)
	after := gen1(t, a.Cache, g)
	if after.V == before.V || after.V == before.V+1 {
		t.Fatalf("counter after data loss = %d, before %d: want a new random value", after.V, before.V)
	}
	// The bump kept while Redis was down was applied before reads resumed.
	rc := redisClient(t, r.Addr())
	h, err := rc.HGetAll(ctx, mustKey(t, bumped)).Result()
	if err != nil || h["g"] != "g1" || h["l"] != formatLSN(0xABC) {
		t.Fatalf("bumped generation in Redis = %v, %v; want group g1, lsn %s", h, err, formatLSN(0xABC))
	}
	if got := gen1(t, a.Cache, bumped); got.Group != "g1" || got.LSN != 0xABC {
		t.Fatalf("bumped generation = %+v", got)
	}
	if st := a.Stats(); !st.Usable || !st.RedisUp || st.PendingBumps != 0 {
		t.Fatalf("stats after recovery: %+v", st)
	}
	if v := metricValue(t, a.reg, "shardwire_cache_redis_up", nil); v != 1 {
		t.Fatalf("redis_up = %v after recovery", v)
	}
	if v := metricValue(t, a.reg, "shardwire_cache_generation_fetches_total", map[string]string{"result": "error"}); v < 1 {
		t.Fatalf("generation fetch errors = %v, want at least 1", v)
	}
}

func TestBumpKeptDuringPartitionIsApplied(t *testing.T) {
	r := pgtest.NewRedis(t)
	relay, err := netfault.NewRelay(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	a := startNode(t, testConfig([]string{relay.Addr()}, 5*time.Second), true, nil)
	b := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	ctx := context.Background()
	g := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 8}
	v0 := gen1(t, a.Cache, g)
	if got := gen1(t, b.Cache, g); got != v0 {
		t.Fatalf("nodes disagree: %+v vs %+v", got, v0)
	}

	relay.Cut()
	eventually(t, 2*time.Second, "A to mark Redis down", func() bool { return !a.Usable() })
	touch := []Touch{{DB: "app", Table: "invoices", Sharded: true, Customers: []int64{8}}}
	for _, lsn := range []uint64{40, 42} {
		if err := a.Bump(ctx, "proxy", "g0", lsn, touch); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Bump while cut = %v, want ErrUnavailable", err)
		}
	}
	if got := gen1(t, b.Cache, g); got != v0 {
		t.Fatalf("B sees %+v while A's bump is pending", got)
	}

	relay.Restore()
	eventually(t, 5*time.Second, "A to recover", func() bool { return a.Usable() })
	// Usable turns true only after the replay: Redis has the bump already.
	rc := redisClient(t, r.Addr())
	want := GenValue{V: v0.V + 1, Group: "g0", LSN: 42}
	if v, _ := rc.HGet(ctx, mustKey(t, g), "v").Result(); v != strconv.FormatUint(want.V-redisShift(t, rc), 10) {
		t.Fatalf("A usable before its pending bump reached Redis (v = %s, want %d)", v, want.V)
	}
	// B held v0 in memory for up to 5 s; the replay's message makes it refetch at once.
	eventually(t, time.Second, "B to see the replayed bump", func() bool { return gen1(t, b.Cache, g) == want })
	if got := gen1(t, a.Cache, g); got != want {
		t.Fatalf("A reads %+v after recovery, want %+v", got, want)
	}
}

func TestBumpOutlivesCancelledCaller(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := startNode(t, testConfig([]string{r.Addr()}, time.Second), true, nil)
	g := Gen{Kind: GenTable, DB: "app", Table: "plans", Group: "g0"}
	v0 := gen1(t, a.Cache, g)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.BumpGens(ctx, "proxy", "g0", 9, []Gen{g}); err != nil {
		t.Fatalf("Bump with a cancelled context: %v", err)
	}
	if got := gen1(t, a.Cache, g); got.V != v0.V+1 {
		t.Fatalf("after a bump whose caller had gone: %+v, want V %d", got, v0.V+1)
	}
	if !a.Usable() {
		t.Fatal("a cancelled caller marked Redis down")
	}
	// A cancelled read is the caller's doing, not Redis's.
	if _, err := a.Generations(ctx, []Gen{{Kind: GenGlobal, DB: "new"}}, nil); err == nil {
		t.Fatal("Generations with a cancelled context fetched")
	}
	if !a.Usable() {
		t.Fatal("a cancelled read marked Redis down")
	}
}
