package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestJoinHasOneLeader(t *testing.T) {
	c := startNode(t, testConfig(nil, time.Second), false, nil)
	key := keyOf("hot")
	const n = 32
	var leaders, joined, served atomic.Int32
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range n {
		wg.Go(func() {
			leader, done, wait := c.Join(key)
			if leader {
				leaders.Add(1)
				defer done()
				<-release // hold the flight until every other caller joined
				c.Set(context.Background(), key, []byte("result"), time.Minute)
				return
			}
			done() // a follower's done does nothing
			joined.Add(1)
			if err := wait(context.Background()); err != nil {
				t.Errorf("follower wait: %v", err)
				return
			}
			if v, _, ok := c.Get(context.Background(), key); ok && string(v) == "result" {
				served.Add(1)
			}
		})
	}
	eventually(t, 5*time.Second, "every follower to join", func() bool { return joined.Load() == n-1 })
	close(release)
	wg.Wait()
	if leaders.Load() != 1 {
		t.Fatalf("%d leaders, want 1", leaders.Load())
	}
	if served.Load() != n-1 {
		t.Fatalf("%d of %d followers found the leader's entry after wait", served.Load(), n-1)
	}
	// The flight is over: the next caller leads a new one, and done is idempotent.
	leader, done, wait := c.Join(key)
	if !leader {
		t.Fatal("Join after the flight ended did not lead")
	}
	if err := wait(context.Background()); err != nil {
		t.Fatalf("leader wait: %v", err)
	}
	follower, _, fwait := c.Join(key)
	if follower {
		t.Fatal("two leaders at once")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fwait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("follower wait on a cancelled context = %v", err)
	}
	done()
	done()
	if l, d, _ := c.Join(key); !l {
		t.Fatal("key still in flight after done")
	} else {
		d()
	}
	if other, d, _ := c.Join(keyOf("other")); !other {
		t.Fatal("another key is not independent")
	} else {
		d()
	}
}
