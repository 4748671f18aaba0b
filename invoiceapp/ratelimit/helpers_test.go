package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newClient returns a client of r that the test closes.
func newClient(t testing.TB, r *pgtest.Redis) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// generous is a Redis timeout that a loaded test machine never reaches, for
// tests about decisions rather than about timeouts.
const generous = 10 * time.Second

// backend builds a Limiter on a clock; each test gets fresh state.
type backend struct {
	name  string
	local bool // decisions must come from the local limiter
	new   func(t *testing.T, now func() time.Time) *Limiter
}

// backends are the local limiter and the Redis script, which must decide
// identically.
func backends() []backend {
	return []backend{
		{name: "local", local: true, new: func(t *testing.T, now func() time.Time) *Limiter {
			return New(nil, Options{Now: now})
		}},
		{name: "redis", new: func(t *testing.T, now func() time.Time) *Limiter {
			return New(newClient(t, pgtest.NewRedis(t)), Options{Now: now, Timeout: generous})
		}},
	}
}

// allow calls l.Allow and checks where the decision came from.
func allow(t testing.TB, l *Limiter, key string, tier Tier, wantLocal bool) Decision {
	t.Helper()
	d := l.Allow(context.Background(), key, tier)
	if d.Local != wantLocal {
		t.Fatalf("Allow(%q, %s).Local = %v, want %v", key, tier, d.Local, wantLocal)
	}
	return d
}

// waitFor polls cond every 10 ms until it holds, failing the test after
// timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
