package cache

import (
	"context"
	"fmt"
	"sync"
)

// flightGroup tracks the keys whose miss is being filled on this node.
type flightGroup struct {
	mu sync.Mutex
	m  map[Key]*flight
}

// flight is one fill in progress; done closes when its leader finishes.
type flight struct {
	done chan struct{}
}

// Join enters the fill of key. The first caller (no fill of key in progress) is the leader:
// it runs the backend query, stores the result, then calls done (exactly once is enough;
// later calls do nothing); its wait returns at once. Every other caller gets leader=false
// and a no-op done; its wait returns nil once the leader called done (the caller then looks
// the key up again), or ctx's error if ctx ends first. A leader that never calls done
// leaves its followers waiting until their ctx ends and the key joinable by no one else, so
// it must defer done.
func (c *Cache) Join(key Key) (leader bool, done func(), wait func(ctx context.Context) error) {
	g := &c.flights
	g.mu.Lock()
	if f, ok := g.m[key]; ok {
		g.mu.Unlock()
		return false, func() {}, func(ctx context.Context) error {
			select {
			case <-f.done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("wait for the fill of a cache entry: %w", ctx.Err())
			}
		}
	}
	f := &flight{done: make(chan struct{})}
	if g.m == nil {
		g.m = make(map[Key]*flight)
	}
	g.m[key] = f
	g.mu.Unlock()
	var once sync.Once
	return true, func() {
			once.Do(func() {
				g.mu.Lock()
				if g.m[key] == f {
					delete(g.m, key)
				}
				g.mu.Unlock()
				close(f.done)
			})
		}, func(context.Context) error {
			return nil
		}
}
