package ratelimit

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultPrefix   = "ratelimit:"
	DefaultTimeout  = 50 * time.Millisecond
	DefaultCooldown = time.Second
)

// Options configures a Limiter. The zero value is valid.
type Options struct {
	// Prefix is prepended to every key in Redis; default DefaultPrefix.
	// Instances that must share budgets use the same prefix.
	Prefix string
	// Logger receives one warning when Redis becomes unavailable and one
	// line when it is back; default: no logs.
	Logger *zap.Logger
	// Registerer receives the limiter's metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Now replaces the clock, for tests only. When set, the Redis script is
	// given Now() instead of reading Redis TIME, so instances no longer
	// agree on time by construction. Production leaves it nil.
	Now func() time.Time
	// Timeout bounds one Redis call; default DefaultTimeout. A call that
	// takes longer is decided locally and counts as a Redis error.
	Timeout time.Duration
	// Cooldown is how long requests are decided locally after a Redis error
	// before one request probes Redis again; default DefaultCooldown.
	Cooldown time.Duration
}

// Limiter enforces the tiers' per-customer limits, cluster-wide through
// Redis, or per process while Redis is unavailable. Safe for concurrent use.
type Limiter struct {
	rdb     redis.UniversalClient // nil: local only
	script  *redis.Script
	prefix  string
	log     *zap.Logger
	now     func() time.Time // nil: Redis TIME, and time.Now locally
	timeout time.Duration
	breaker *breaker
	local   *localStore
	metrics *metrics
}

// New returns a Limiter over rdb, which it does not close. With rdb nil,
// every decision is local (Decision.Local is true).
//
// rdb should have ContextTimeoutEnabled set, so that calls the limiter gives
// up on also end in the client; the limiter's own latency is bounded by
// Options.Timeout either way.
func New(rdb redis.UniversalClient, opts Options) *Limiter {
	l := &Limiter{
		rdb:     rdb,
		script:  redis.NewScript(gcraScript),
		prefix:  opts.Prefix,
		log:     opts.Logger,
		now:     opts.Now,
		timeout: opts.Timeout,
		local:   newLocalStore(),
	}
	if l.prefix == "" {
		l.prefix = DefaultPrefix
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	if l.timeout <= 0 {
		l.timeout = DefaultTimeout
	}
	cooldown := opts.Cooldown
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	l.breaker = newBreaker(cooldown)
	l.metrics = newMetrics(opts.Registerer, l.log)
	return l
}

// Allow decides one request by the customer identified by key (e.g. its id
// in decimal) on tier, and counts it against the customer's budget if it is
// allowed; a refused request consumes nothing. An unknown tier is treated as
// Free. Allow never fails: when Redis errs, times out or is cooling down
// after an error, the request is decided by the in-process limiter.
func (l *Limiter) Allow(ctx context.Context, key string, tier Tier) Decision {
	tier = tier.orFree()
	lim := limitsOf(PlanOf(tier))
	d, ok := l.allowRedis(ctx, key, lim)
	if !ok {
		d = l.local.allow(key, lim, l.nowMicros())
	}
	l.metrics.observe(tier, d)
	return d
}

// allowRedis asks Redis; ok is false when the request must be decided
// locally.
func (l *Limiter) allowRedis(ctx context.Context, key string, lim limits) (Decision, bool) {
	if l.rdb == nil || !l.breaker.allow() {
		return Decision{}, false
	}
	var now int64 // 0: the script reads Redis TIME
	if l.now != nil {
		now = l.nowMicros()
	}
	m, h, err := l.callRedis(ctx, l.prefix+key, lim, now)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up; that says nothing about Redis.
			return Decision{}, false
		}
		l.metrics.redisErrors.Inc()
		if l.breaker.failure() {
			l.log.Warn("rate limiter: Redis unavailable, deciding locally until it answers",
				zap.Error(err))
		}
		return Decision{}, false
	}
	if recovered, outage := l.breaker.success(); recovered {
		l.log.Info("rate limiter: Redis answers again, limits are cluster-wide",
			zap.Duration("outage", outage))
	}
	return decide(lim, m, h, false), true
}

// redisReply is the outcome of one script call.
type redisReply struct {
	m, h verdict
	err  error
}

// errRedisTimeout reports a Redis call that took longer than
// Options.Timeout.
var errRedisTimeout = errors.New("redis call timed out")

// callRedis runs the script with a deadline of l.timeout. The call runs on
// its own goroutine so that the deadline holds even when the client ignores
// context deadlines (ContextTimeoutEnabled unset); an abandoned call ends
// when the client's own timeouts fire.
func (l *Limiter) callRedis(ctx context.Context, key string, lim limits, now int64) (verdict, verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	done := make(chan redisReply, 1)
	go func() {
		m, h, err := runScript(ctx, l.rdb, l.script, key, lim, now)
		done <- redisReply{m: m, h: h, err: err}
	}()
	select {
	case r := <-done:
		return r.m, r.h, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return verdict{}, verdict{}, errRedisTimeout
		}
		return verdict{}, verdict{}, ctx.Err()
	}
}

// nowMicros returns the limiter's clock in µs since the Unix epoch.
func (l *Limiter) nowMicros() int64 {
	if l.now != nil {
		return l.now().UnixMicro()
	}
	return time.Now().UnixMicro()
}
