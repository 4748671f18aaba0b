package cache

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

func TestGenerationsCreatedAtRandomAndStable(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	gens := []Gen{
		{Kind: GenGlobal, DB: "app"},
		{Kind: GenTable, DB: "app", Table: "invoices", Group: "g0"},
		{Kind: GenShard, DB: "app", Table: "invoices", N: 3},
		{Kind: GenCustomer, DB: "app", Table: "invoices", N: 19},
	}
	first, err := a.Generations(context.Background(), gens, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(gens) {
		t.Fatalf("got %d values for %d generations", len(first), len(gens))
	}
	distinct := map[uint64]bool{}
	for i, v := range first {
		if v.Group != "" || v.LSN != 0 {
			t.Errorf("new generation %+v = %+v, want Group \"\" and LSN 0", gens[i], v)
		}
		distinct[v.V] = true
	}
	if len(distinct) != len(gens) {
		t.Errorf("start values %+v are not random", first)
	}

	// Stable: from memory, from Redis by a fresh node, and as Redis stores them.
	prefix := []GenValue{{V: 1}}
	again, err := a.Generations(context.Background(), gens, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1+len(gens) || again[0] != prefix[0] {
		t.Fatalf("Generations did not append to dst: %+v", again)
	}
	b := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	fromRedis, err := b.Generations(context.Background(), gens, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := redisClient(t, r.Addr())
	shift := redisShift(t, rc)
	for i := range gens {
		if again[1+i] != first[i] || fromRedis[i] != first[i] {
			t.Errorf("%+v: first %+v, again %+v, other node %+v", gens[i], first[i], again[1+i], fromRedis[i])
		}
		k := mustKey(t, gens[i])
		stored := first[i].V - shift
		if stored >= 1<<62 {
			t.Errorf("new generation %+v starts at %d in Redis, want a 62-bit value", gens[i], stored)
		}
		if v, _ := rc.HGet(context.Background(), k, "v").Result(); v != strconv.FormatUint(stored, 10) {
			t.Errorf("redis %s v = %q, want %d", k, v, stored)
		}
		if ttl, _ := rc.TTL(context.Background(), k).Result(); ttl != -1 {
			t.Errorf("redis %s has TTL %v, want none", k, ttl)
		}
	}
	if ttl, _ := rc.TTL(context.Background(), epochKey).Result(); ttl != -1 {
		t.Errorf("epoch key TTL %v, want none", ttl)
	}
	if got := testutil.ToFloat64(a.m.fetchMemory); got != 1 {
		t.Errorf("memory fetches = %v, want 1 (the second read)", got)
	}
	if got := testutil.ToFloat64(a.m.fetchRedis); got != 1 {
		t.Errorf("redis fetches = %v, want 1 (the first read)", got)
	}
	if _, err := a.Generations(context.Background(), []Gen{{Kind: 99}}, nil); err == nil {
		t.Error("Generations accepted an unknown kind")
	}
}

func TestBumpRecordsGroupAndLSN(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	cust := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 19}
	shard := Gen{Kind: GenShard, DB: "app", Table: "invoices", N: int64(shardmap.ShardOf(19))}
	table := Gen{Kind: GenTable, DB: "app", Table: "invoices", Group: "g0"}
	other := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 20}
	all := []Gen{cust, shard, table, other}
	before, err := a.Generations(context.Background(), all, nil)
	if err != nil {
		t.Fatal(err)
	}
	touch := []Touch{{DB: "app", Table: "invoices", Sharded: true, Customers: []int64{19, 19 + 16}}}
	steps := []struct {
		name    string
		group   string
		lsn     uint64
		touches []Touch
		want    GenValue // for cust, relative V
		bumps   uint64
	}{
		{"first bump", "g0", 0x100, touch, GenValue{Group: "g0", LSN: 0x100}, 1},
		{"older LSN of the same group keeps the newer", "g0", 0x80, touch, GenValue{Group: "g0", LSN: 0x100}, 2},
		{"another group replaces", "g1", 0x7, touch, GenValue{Group: "g1", LSN: 0x7}, 3},
		{"unknown LSN", "g1", 0, touch, GenValue{Group: "g1", LSN: UnknownLSN}, 4},
		{"unknown stays the largest", "g1", 0x900, touch, GenValue{Group: "g1", LSN: UnknownLSN}, 5},
		{"a flush keeps group and LSN", "", 0, touch, GenValue{Group: "g1", LSN: UnknownLSN}, 6},
	}
	b := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	for _, st := range steps {
		if err := a.Bump(context.Background(), "proxy", st.group, st.lsn, st.touches); err != nil {
			t.Fatalf("%s: Bump: %v", st.name, err)
		}
		memFetches := testutil.ToFloat64(a.m.fetchMemory)
		got, err := a.Generations(context.Background(), all, nil)
		if err != nil {
			t.Fatal(err)
		}
		if testutil.ToFloat64(a.m.fetchMemory) != memFetches+1 {
			t.Errorf("%s: the bumping node did not read its own bump from memory", st.name)
		}
		want := st.want
		want.V = before[0].V + st.bumps
		if got[0] != want {
			t.Errorf("%s: customer = %+v, want %+v", st.name, got[0], want)
		}
		// Two customers of one shard: the shard's generation advances once per bump.
		if got[1].V != before[1].V+st.bumps || got[1].Group != want.Group {
			t.Errorf("%s: shard = %+v, want V %d group %s", st.name, got[1], before[1].V+st.bumps, want.Group)
		}
		if got[2] != before[2] || got[3] != before[3] {
			t.Errorf("%s: untouched generations changed: %+v -> %+v", st.name, before[2:], got[2:])
		}
		// What Redis holds, through another node.
		eventually(t, 2*time.Second, "the other node to see the bump", func() bool {
			v, err := b.Generations(context.Background(), all[:1], nil)
			return err == nil && v[0] == want
		})
	}
	// A write whose customers are unknown bumps the table on its group.
	if err := a.Bump(context.Background(), "proxy", "g0", 0x200, []Touch{{DB: "app", Table: "invoices", Sharded: true}}); err != nil {
		t.Fatal(err)
	}
	if got := gen1(t, a.Cache, table); got != (GenValue{V: before[2].V + 1, Group: "g0", LSN: 0x200}) {
		t.Errorf("table = %+v after a keyless write", got)
	}
	if got, want := testutil.ToFloat64(a.m.invalidations.WithLabelValues("proxy")), float64(len(steps)*3+1); got != want {
		t.Errorf("invalidations{proxy} = %v, want %v", got, want)
	}
	// Flush: explicit generations.
	global := Gen{Kind: GenGlobal, DB: "app"}
	g0 := gen1(t, a.Cache, global)
	if err := a.BumpGens(context.Background(), "flush", "", 0, []Gen{global, global}); err != nil {
		t.Fatal(err)
	}
	if got := gen1(t, a.Cache, global); got.V != g0.V+1 {
		t.Errorf("global after flush = %+v, want V %d (duplicates bump once)", got, g0.V+1)
	}
}

func TestPubSubInvalidatesOtherNodes(t *testing.T) {
	r := pgtest.NewRedis(t)
	// Staleness of 5 s: only a pub/sub message can make B drop its value sooner.
	a := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	b := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	g := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 7}
	for round := range 5 {
		v0 := gen1(t, b.Cache, g)
		memFetches := testutil.ToFloat64(b.m.fetchMemory)
		if gen1(t, b.Cache, g) != v0 || testutil.ToFloat64(b.m.fetchMemory) != memFetches+1 {
			t.Fatalf("round %d: B does not hold the generation in memory", round)
		}
		if err := a.Bump(context.Background(), "proxy", "g0", uint64(round+1), []Touch{{DB: "app", Table: "invoices", Sharded: true, Customers: []int64{7}}}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		eventually(t, time.Second, "B to see the bump", func() bool { return gen1(t, b.Cache, g).V == v0.V+1 })
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("round %d: B saw the bump after %s, want < 100ms", round, d)
		}
	}
}

func TestGenerationsUnavailable(t *testing.T) {
	c, err := New(Options{Config: testConfig([]string{"127.0.0.1:1"}, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Not run yet: Redis has not answered.
	if c.Usable() {
		t.Fatal("usable before Redis answered")
	}
	_, err = c.Generations(context.Background(), []Gen{{Kind: GenGlobal, DB: "x"}}, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Generations = %v, want ErrUnavailable", err)
	}
}

func TestBumpIfNewerSkipsWhatWasBumped(t *testing.T) {
	r := pgtest.NewRedis(t)
	for _, mode := range []string{"redis", "local"} {
		t.Run(mode, func(t *testing.T) {
			var addrs []string
			if mode == "redis" {
				addrs = []string{r.Addr()}
			}
			a := startNode(t, testConfig(addrs, 5*time.Second), false, nil)
			g := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 42}
			touch := []Touch{{DB: "app", Table: "invoices", Sharded: true, Customers: []int64{42}}}
			ctx := context.Background()
			if err := a.Bump(ctx, "proxy", "g0", 0x500, touch); err != nil {
				t.Fatal(err)
			}
			v0 := gen1(t, a.Cache, g)
			// The feed's bump of a commit at or before what the proxy recorded changes nothing.
			for _, lsn := range []uint64{0x400, 0x500} {
				if err := a.BumpIfNewer(ctx, "change_feed", "g0", lsn, touch); err != nil {
					t.Fatal(err)
				}
				if got := gen1(t, a.Cache, g); got != v0 {
					t.Fatalf("BumpIfNewer at %#x changed %+v to %+v", lsn, v0, got)
				}
			}
			// A later commit (a write behind the proxy's back), or another group's, bumps.
			if err := a.BumpIfNewer(ctx, "change_feed", "g0", 0x600, touch); err != nil {
				t.Fatal(err)
			}
			v1 := gen1(t, a.Cache, g)
			if v1.V != v0.V+1 || v1.LSN != 0x600 {
				t.Fatalf("BumpIfNewer at 0x600: %+v -> %+v, want one bump recording 0x600", v0, v1)
			}
			if err := a.BumpIfNewer(ctx, "change_feed", "g1", 0x10, touch); err != nil {
				t.Fatal(err)
			}
			if v2 := gen1(t, a.Cache, g); v2.V != v1.V+1 || v2.Group != "g1" {
				t.Fatalf("BumpIfNewer from another group: %+v -> %+v, want a bump", v1, v2)
			}
		})
	}
}
