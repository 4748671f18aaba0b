package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// Every node reads its own bumps, however its bumps, reads, and other nodes' messages
// interleave.
func TestConcurrentReadYourWrites(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	b := startNode(t, testConfig([]string{r.Addr()}, 5*time.Second), true, nil)
	g := Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 1}
	touch := []Touch{{DB: "app", Table: "invoices", Sharded: true, Customers: []int64{1}}}
	var wg sync.WaitGroup
	for w := range 8 {
		node := a
		if w%2 == 1 {
			node = b
		}
		wg.Go(func() {
			ctx := context.Background()
			for i := range 40 {
				before, err := node.Generations(ctx, []Gen{g}, nil)
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if err := node.Bump(ctx, "proxy", "g0", uint64(i+1), touch); err != nil {
					t.Errorf("bump: %v", err)
					return
				}
				after, err := node.Generations(ctx, []Gen{g}, nil)
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if after[0].V <= before[0].V {
					t.Errorf("worker %d: read %d after its bump of %d", w, after[0].V, before[0].V)
					return
				}
			}
		})
	}
	wg.Wait()
	final := gen1(t, a.Cache, g)
	eventually(t, time.Second, "both nodes to agree", func() bool { return gen1(t, b.Cache, g) == final })
}

// Operations racing a Redis crash neither panic nor hang, and the cache recovers.
func TestOperationsDuringRedisCrash(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := startNode(t, testConfig([]string{r.Addr()}, time.Second), true, nil)
	var stop atomic.Bool
	var ops atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			ctx := context.Background()
			for i := 0; !stop.Load(); i++ {
				g := Gen{Kind: GenCustomer, DB: "app", Table: "t", N: int64(i % 50)}
				_, _ = a.Generations(ctx, []Gen{g}, nil)
				_ = a.BumpGens(ctx, "proxy", "g0", uint64(i), []Gen{g})
				k := keyOf(string(rune(w)) + string(rune(i%50)))
				a.Set(ctx, k, []byte("v"), time.Minute)
				a.Get(ctx, k)
				ops.Add(1)
			}
		})
	}
	eventually(t, 5*time.Second, "some operations", func() bool { return ops.Load() > 100 })
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "Redis marked down", func() bool { return !a.Usable() })
	n := ops.Load()
	eventually(t, 5*time.Second, "operations to go on while Redis is down", func() bool { return ops.Load() > n+100 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, a.Cache)
	stop.Store(true)
	wg.Wait()
	eventually(t, 5*time.Second, "the retry list to drain", func() bool {
		st := a.Stats()
		return st.Usable && st.PendingBumps == 0
	})
}

// Close while sessions still read and fill neither panics nor blocks them.
func TestCloseDuringUse(t *testing.T) {
	r := pgtest.NewRedis(t)
	for _, addrs := range [][]string{nil, {r.Addr()}} {
		c, err := New(Options{Config: testConfig(addrs, time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			c.Run(ctx)
		}()
		waitUsable := func() bool { return c.Usable() }
		eventually(t, 5*time.Second, "the cache to be usable", waitUsable)
		var ops atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					k := keyOf(string(rune(w*1000 + i%100)))
					c.Set(context.Background(), k, []byte("v"), time.Minute)
					c.Get(context.Background(), k)
					if ops.Add(1); c.isClosed() {
						return
					}
				}
			})
		}
		eventually(t, 5*time.Second, "some operations", func() bool { return ops.Load() > 200 })
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wg.Wait()
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after Close")
		}
		cancel()
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if c.Usable() || c.Set(context.Background(), keyOf("x"), []byte("v"), time.Minute) {
			t.Fatal("a closed cache still serves")
		}
		if _, _, ok := c.Get(context.Background(), keyOf("x")); ok {
			t.Fatal("a closed cache still hits")
		}
	}
}
