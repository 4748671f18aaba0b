package cache

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
)

func TestEntriesThroughL1AndL2(t *testing.T) {
	r := pgtest.NewRedis(t)
	cfg := testConfig([]string{r.Addr()}, time.Second)
	cfg.MaxResultBytes = 1024
	a := startNode(t, cfg, true, nil)
	b := startNode(t, cfg, true, nil)
	ctx := context.Background()
	key := keyOf("select 1")
	val := []byte("frames of a reply")

	if _, layer, ok := a.Get(ctx, key); ok {
		t.Fatalf("hit in %s before any Set", layer)
	}
	if !a.Set(ctx, key, val, time.Minute) {
		t.Fatal("Set refused a small value")
	}
	val[0] = 'X' // Set keeps its own copy
	// At once from one layer or the other (L1 takes the entry asynchronously), then from L1.
	got, _, ok := a.Get(ctx, key)
	if !ok || string(got) != "frames of a reply" {
		t.Fatalf("A: Get = %q, %v right after Set", got, ok)
	}
	eventually(t, time.Second, "A to hold the entry in L1", func() bool {
		got, layer, ok := a.Get(ctx, key)
		return ok && layer == LayerL1 && string(got) == "frames of a reply"
	})
	got, layer, ok := b.Get(ctx, key)
	if !ok || layer != LayerL2 || string(got) != "frames of a reply" {
		t.Fatalf("B: Get = %q, %s, %v; want the value from L2", got, layer, ok)
	}
	eventually(t, time.Second, "B to copy the L2 hit into L1", func() bool {
		_, layer, ok := b.Get(ctx, key)
		return ok && layer == LayerL1
	})
	rc := redisClient(t, r.Addr())
	ttl, err := rc.PTTL(ctx, entryKey(key)).Result()
	if err != nil || ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("L2 TTL = %v, %v; want within (54s, 60s] (jitter only shortens)", ttl, err)
	}

	// Size limit.
	if a.Set(ctx, keyOf("big"), bytes.Repeat([]byte{1}, 1025), time.Minute) {
		t.Fatal("Set stored a value above MaxResultBytes")
	}
	if _, _, ok := b.Get(ctx, keyOf("big")); ok {
		t.Fatal("a refused value is readable")
	}
	if !a.Set(ctx, keyOf("limit"), bytes.Repeat([]byte{1}, 1024), time.Minute) {
		t.Fatal("Set refused a value of exactly MaxResultBytes")
	}
	// Empty results are entries too.
	if !a.Set(ctx, keyOf("empty"), nil, time.Minute) {
		t.Fatal("Set refused an empty value")
	}
	if v, _, ok := b.Get(ctx, keyOf("empty")); !ok || len(v) != 0 {
		t.Fatalf("empty entry: %q, %v", v, ok)
	}
	if a.Set(ctx, keyOf("no ttl"), val, 0) {
		t.Fatal("Set stored a value without a TTL")
	}
}

func TestEntriesExpire(t *testing.T) {
	r := pgtest.NewRedis(t)
	cfg := testConfig([]string{r.Addr()}, time.Second)
	a := startNode(t, cfg, true, nil)
	b := startNode(t, cfg, true, nil)
	ctx := context.Background()
	key := keyOf("short")
	const ttl = 300 * time.Millisecond
	start := time.Now()
	if !a.Set(ctx, key, []byte("v"), ttl) {
		t.Fatal("Set refused")
	}
	if _, layer, ok := b.Get(ctx, key); !ok || layer != LayerL2 {
		t.Fatalf("B: %s %v, want an L2 hit", layer, ok)
	}
	eventually(t, 3*time.Second, "the entry to expire on both nodes", func() bool {
		_, _, okA := a.Get(ctx, key)
		_, _, okB := b.Get(ctx, key)
		return !okA && !okB
	})
	if d := time.Since(start); d < ttl*9/10 {
		t.Fatalf("expired after %s, before the TTL less its jitter", d)
	}
}

func TestJitterOnlyShortens(t *testing.T) {
	for _, ttl := range []time.Duration{5, time.Millisecond, time.Second, time.Hour} {
		seen := map[time.Duration]bool{}
		for range 200 {
			j := jitter(ttl)
			if j > ttl || j < ttl-ttl/10 {
				t.Fatalf("jitter(%s) = %s, want within [%s, %s]", ttl, j, ttl-ttl/10, ttl)
			}
			seen[j] = true
		}
		if ttl >= time.Millisecond && len(seen) < 2 {
			t.Fatalf("jitter(%s) is constant", ttl)
		}
	}
}

func TestL1Evicts(t *testing.T) {
	cfg := testConfig(nil, time.Second)
	cfg.L1Bytes = 4096
	c := startNode(t, cfg, false, nil)
	ctx := context.Background()
	for i := range 200 {
		c.Set(ctx, keyOf(string(rune('a'+i%26))+string(rune(i))), make([]byte, 200), time.Minute)
	}
	st := c.Stats()
	if st.Bytes > cfg.L1Bytes || st.Bytes <= 0 || st.Entries <= 0 {
		t.Fatalf("L1 holds %d bytes in %d entries; want some, at most %d bytes", st.Bytes, st.Entries, cfg.L1Bytes)
	}
	if st.Entries*int64(200+l1Overhead) != st.Bytes {
		t.Fatalf("bytes %d do not match %d entries of %d", st.Bytes, st.Entries, 200+l1Overhead)
	}
	eventually(t, time.Second, "evictions to be counted", func() bool {
		return metricValue(t, c.reg, "shardwire_cache_evictions_total", nil) > 0
	})
}

func TestEntryRefusedByRedisKeepsCacheUsable(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := startNode(t, testConfig([]string{r.Addr()}, time.Second), true, nil)
	rc := redisClient(t, r.Addr())
	ctx := context.Background()
	// Full, and configured never to evict: writes get an OOM error reply.
	if err := rc.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	key := keyOf("oom")
	if !a.Set(ctx, key, []byte("v"), time.Minute) {
		t.Fatal("Set failed although L1 took the entry")
	}
	if !a.Usable() {
		t.Fatal("an error reply to an entry write marked Redis down")
	}
	if n, _ := rc.Exists(ctx, entryKey(key)).Result(); n != 0 {
		t.Fatal("Redis stored the entry despite OOM")
	}
	if _, layer, ok := a.Get(ctx, key); !ok || layer != LayerL1 {
		t.Fatalf("Get = %s, %v; want the L1 entry", layer, ok)
	}
}

// TestL2EvictionsCounted: keys Redis evicts under maxmemory are counted as layer l2
// evictions (from INFO stats, read every redisStatsInterval).
func TestL2EvictionsCounted(t *testing.T) {
	r := pgtest.NewRedis(t)
	c := startNode(t, testConfig([]string{r.Addr()}, time.Second), false, nil)
	rc := redisClient(t, r.Addr())
	ctx := context.Background()
	if err := rc.ConfigSet(ctx, "maxmemory-policy", "allkeys-random").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "maxmemory", "4mb").Err(); err != nil {
		t.Fatal(err)
	}
	filler := make([]byte, 4096)
	for i := range 3000 {
		if err := rc.Set(ctx, fmt.Sprintf("filler:%d", i), filler, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	evicted, err := rc.Info(ctx, "stats").Result()
	if err != nil || !strings.Contains(evicted, "evicted_keys:") || strings.Contains(evicted, "evicted_keys:0\r") {
		t.Fatalf("Redis evicted nothing under 4mb (%v):\n%s", err, evicted)
	}
	eventually(t, 3*redisStatsInterval, "Redis's evictions to be counted as l2", func() bool {
		return metricValue(t, c.reg, "shardwire_cache_evictions_total", map[string]string{"layer": "l2"}) > 0
	})
}
