package ratelimit

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// These tests use Redis TIME (no fake clock), as production does. The free
// tier refills one request per second, so a test that finishes its burst
// within a second must see exactly Burst allowed; each checks that it did.

// TestSharedBudget runs two limiters, each with its own client, against one
// Redis: they share one budget per key.
func TestSharedBudget(t *testing.T) {
	t.Parallel()
	r := pgtest.NewRedis(t)
	a := New(newClient(t, r), Options{Timeout: generous})
	b := New(newClient(t, r), Options{Timeout: generous})
	start := time.Now()
	allowed := 0
	for i := range 150 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if allow(t, l, "42", Free, false).Allowed {
			allowed++
		}
	}
	if elapsed := time.Since(start); elapsed >= time.Second {
		t.Fatalf("150 requests took %v, longer than the free tier's emission interval; counts are not exact", elapsed)
	}
	if allowed != 100 {
		t.Fatalf("two instances allowed %d of 150 requests, want exactly Burst = 100 in total", allowed)
	}
	if d := allow(t, a, "43", Free, false); !d.Allowed || d.Remaining != 99 {
		t.Fatalf("another customer: %+v, want a full bucket", d)
	}
	// The key expires once both buckets would be full: after the hour
	// limit's reset, at most 100 × 3.6 s here.
	pttl, err := newClient(t, r).PTTL(context.Background(), DefaultPrefix+"42").Result()
	if err != nil {
		t.Fatalf("PTTL: %v", err)
	}
	if pttl <= 0 || pttl > 360*time.Second+time.Millisecond {
		t.Fatalf("PTTL of the key = %v, want in (0, 360s]", pttl)
	}
}

// TestConcurrentSharedBudget fires requests from many goroutines on two
// limiters: the script's atomicity must keep the count exact.
func TestConcurrentSharedBudget(t *testing.T) {
	t.Parallel()
	r := pgtest.NewRedis(t)
	limiters := []*Limiter{
		New(newClient(t, r), Options{Timeout: generous, Prefix: "t:"}),
		New(newClient(t, r), Options{Timeout: generous, Prefix: "t:"}),
	}
	// Different prefixes are different budgets.
	other := New(newClient(t, r), Options{Timeout: generous, Prefix: "other:"})
	var allowed, local atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := range 16 {
		l := limiters[g%2]
		wg.Go(func() {
			for range 25 {
				d := l.Allow(context.Background(), "7", Free)
				if d.Allowed {
					allowed.Add(1)
				}
				if d.Local {
					local.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if elapsed := time.Since(start); elapsed >= time.Second {
		t.Fatalf("400 requests took %v, longer than the free tier's emission interval; counts are not exact", elapsed)
	}
	if local.Load() != 0 {
		t.Fatalf("%d decisions were local", local.Load())
	}
	if allowed.Load() != 100 {
		t.Fatalf("%d of 400 concurrent requests allowed, want exactly 100", allowed.Load())
	}
	if d := allow(t, other, "7", Free, false); !d.Allowed || d.Remaining != 99 {
		t.Fatalf("same key under another prefix: %+v, want a full bucket", d)
	}
}

// TestRedisKilledMidRun kills Redis under a running limiter: requests go on
// being decided, locally, with one error log and one probe per cooldown,
// and the limiter returns to Redis once it is restarted.
func TestRedisKilledMidRun(t *testing.T) {
	t.Parallel()
	r := pgtest.NewRedis(t)
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	const cooldown = 200 * time.Millisecond
	l := New(newClient(t, r), Options{
		Logger: zap.New(core), Registerer: reg, Timeout: 100 * time.Millisecond, Cooldown: cooldown,
	})
	for range 10 {
		allow(t, l, "1", Free, false)
	}

	if err := r.Kill(); err != nil {
		t.Fatalf("kill redis: %v", err)
	}
	start := time.Now()
	allowed := 0
	for i := range 150 {
		d := l.Allow(context.Background(), "2", Free)
		if !d.Local {
			t.Fatalf("request %d with Redis dead: Local = false", i)
		}
		if d.Allowed {
			allowed++
		}
	}
	elapsed := time.Since(start)
	if elapsed >= time.Second {
		t.Fatalf("150 requests with Redis dead took %v, want well under a second", elapsed)
	}
	// The local limiter enforces the same limits.
	if allowed != 100 {
		t.Fatalf("local fallback allowed %d of 150, want exactly 100", allowed)
	}
	// One failed call opens the breaker; at most one probe per cooldown after it.
	errs := testutil.ToFloat64(l.metrics.redisErrors)
	if maxErrs := 1 + float64(elapsed/cooldown) + 1; errs < 1 || errs > maxErrs {
		t.Fatalf("redis errors = %v after %v, want 1..%v", errs, elapsed, maxErrs)
	}
	if n := logs.FilterMessageSnippet("Redis unavailable").Len(); n != 1 {
		t.Fatalf("%d outage warnings for one outage, want 1", n)
	}
	// Probes go on while Redis stays dead, still without client errors.
	waitFor(t, 5*time.Second, "a failed probe", func() bool {
		l.Allow(context.Background(), "2", Free)
		return testutil.ToFloat64(l.metrics.redisErrors) >= errs+1
	})

	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	waitFor(t, 10*time.Second, "a decision from Redis", func() bool {
		return !l.Allow(context.Background(), "3", Free).Local
	})
	if d := allow(t, l, "3", Free, false); !d.Allowed || d.Remaining != 98 {
		t.Fatalf("second request after recovery: %+v, want allowed from Redis with 98 left", d)
	}
	if n := logs.FilterMessageSnippet("Redis unavailable").Len(); n != 1 {
		t.Fatalf("%d outage warnings for one outage, want 1", n)
	}
	if n := logs.FilterMessageSnippet("Redis answers again").Len(); n != 1 {
		t.Fatalf("%d recovery logs, want 1", n)
	}
	local := testutil.ToFloat64(l.metrics.decisions[0][0][1]) + testutil.ToFloat64(l.metrics.decisions[0][1][1])
	if local < 150 {
		t.Fatalf("local decisions counted = %v, want at least 150", local)
	}
}

// TestRedisUnresponsive points the limiter at a server that accepts
// connections and never answers: the first call waits for the timeout, the
// next ones do not touch Redis during the cooldown.
func TestRedisUnresponsive(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	var conns sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns.Go(func() {
				// Hold the connection without answering until the client drops it.
				_, _ = c.Read(make([]byte, 1<<16))
				_ = c.Close()
			})
		}
	}()
	// A client as it comes by default: it ignores context deadlines.
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: time.Second, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	const timeout = 50 * time.Millisecond
	l := New(rdb, Options{Timeout: timeout, Cooldown: time.Minute})

	start := time.Now()
	d := allow(t, l, "1", Free, true)
	if took := time.Since(start); took < timeout || took > timeout+500*time.Millisecond {
		t.Fatalf("first call took %v, want about the %v timeout", took, timeout)
	}
	if !d.Allowed || d.Remaining != 99 {
		t.Fatalf("first call: %+v, want allowed locally", d)
	}
	start = time.Now()
	for range 99 {
		allow(t, l, "1", Free, true)
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Fatalf("99 calls during the cooldown took %v, want no Redis wait", took)
	}
	if got := testutil.ToFloat64(l.metrics.redisErrors); got != 1 {
		t.Fatalf("redis errors = %v, want 1 (no calls during the cooldown)", got)
	}
	if d := allow(t, l, "1", Free, true); d.Allowed {
		t.Fatalf("request 101: %+v, want refused by the local limiter", d)
	}
}

// TestCallerCancel: a request whose context is already done is decided
// locally and is not held against Redis.
func TestCallerCancel(t *testing.T) {
	t.Parallel()
	r := pgtest.NewRedis(t)
	l := New(newClient(t, r), Options{Timeout: generous})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := l.Allow(ctx, "1", Free); !d.Local || !d.Allowed {
		t.Fatalf("canceled request: %+v, want allowed locally", d)
	}
	if got := testutil.ToFloat64(l.metrics.redisErrors); got != 0 {
		t.Fatalf("redis errors = %v after a caller's cancel, want 0", got)
	}
	if d := allow(t, l, "1", Free, false); !d.Allowed {
		t.Fatalf("next request: %+v, want allowed from Redis", d)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	r := pgtest.NewRedis(t)
	reg := prometheus.NewRegistry()
	// Two limiters on one registry share the collectors.
	a := New(newClient(t, r), Options{Registerer: reg, Timeout: generous})
	b := New(nil, Options{Registerer: reg})
	for range 110 {
		allow(t, a, "1", Premium, false)
	}
	for range 110 {
		allow(t, b, "1", Free, true)
	}
	allow(t, b, "2", "bogus", true) // counted as free
	const want = `
# HELP invoiced_ratelimit_decisions_total Rate limit decisions by customer tier, result (allowed, limited) and source (redis, local).
# TYPE invoiced_ratelimit_decisions_total counter
invoiced_ratelimit_decisions_total{result="allowed",source="local",tier="basic"} 0
invoiced_ratelimit_decisions_total{result="allowed",source="local",tier="enterprise"} 0
invoiced_ratelimit_decisions_total{result="allowed",source="local",tier="free"} 101
invoiced_ratelimit_decisions_total{result="allowed",source="local",tier="premium"} 0
invoiced_ratelimit_decisions_total{result="allowed",source="redis",tier="basic"} 0
invoiced_ratelimit_decisions_total{result="allowed",source="redis",tier="enterprise"} 0
invoiced_ratelimit_decisions_total{result="allowed",source="redis",tier="free"} 0
invoiced_ratelimit_decisions_total{result="allowed",source="redis",tier="premium"} 110
invoiced_ratelimit_decisions_total{result="limited",source="local",tier="basic"} 0
invoiced_ratelimit_decisions_total{result="limited",source="local",tier="enterprise"} 0
invoiced_ratelimit_decisions_total{result="limited",source="local",tier="free"} 10
invoiced_ratelimit_decisions_total{result="limited",source="local",tier="premium"} 0
invoiced_ratelimit_decisions_total{result="limited",source="redis",tier="basic"} 0
invoiced_ratelimit_decisions_total{result="limited",source="redis",tier="enterprise"} 0
invoiced_ratelimit_decisions_total{result="limited",source="redis",tier="free"} 0
invoiced_ratelimit_decisions_total{result="limited",source="redis",tier="premium"} 0
# HELP invoiced_ratelimit_redis_errors_total Rate limit calls to Redis that failed or timed out; those requests were decided locally.
# TYPE invoiced_ratelimit_redis_errors_total counter
invoiced_ratelimit_redis_errors_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// TestScriptReloadedAfterRestart: a restarted Redis has no cached script;
// EVALSHA's NOSCRIPT falls back to EVAL without an error.
func TestScriptReloadedAfterRestart(t *testing.T) {
	t.Parallel()
	r := pgtest.NewRedis(t)
	l := New(newClient(t, r), Options{Timeout: generous})
	allow(t, l, "1", Free, false)
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a decision from the restarted Redis", func() bool {
		return !l.Allow(context.Background(), "2", Free).Local
	})
	for i := range 5 {
		if d := allow(t, l, "x"+strconv.Itoa(i), Free, false); !d.Allowed {
			t.Fatalf("after restart: %+v", d)
		}
	}
}
