package ratelimit

import (
	"sync/atomic"
	"time"
)

// breaker keeps requests off Redis for a cooldown after a failure, so that a
// dead Redis costs one timeout per cooldown rather than one per request.
//
// Closed (openUntil == 0): every request asks Redis. Open (now < openUntil):
// requests are decided locally. When the cooldown has passed, the one
// request that wins a compare-and-swap probes Redis while the others stay
// local; success closes the breaker, failure opens it for another cooldown.
// All methods are safe for concurrent use.
type breaker struct {
	cooldown time.Duration
	origin   time.Time    // monotonic clock origin
	until    atomic.Int64 // ns since origin when a probe may go, 0 when closed
	since    atomic.Int64 // ns since origin when the current outage began
}

// newBreaker returns a closed breaker.
func newBreaker(cooldown time.Duration) *breaker {
	return &breaker{cooldown: cooldown, origin: time.Now()}
}

// now returns the monotonic time since origin, never 0.
func (b *breaker) now() int64 { return int64(time.Since(b.origin)) + 1 }

// allow reports whether this request may ask Redis.
func (b *breaker) allow() bool {
	until := b.until.Load()
	if until == 0 {
		return true
	}
	now := b.now()
	if now < until {
		return false
	}
	return b.until.CompareAndSwap(until, now+int64(b.cooldown))
}

// failure opens the breaker for a cooldown. It reports whether this failure
// began an outage (the breaker was closed).
func (b *breaker) failure() bool {
	now := b.now()
	began := b.until.Swap(now+int64(b.cooldown)) == 0
	if began {
		b.since.Store(now)
	}
	return began
}

// success closes the breaker. If it was open, it reports true and how long
// the outage lasted.
func (b *breaker) success() (bool, time.Duration) {
	if b.until.Load() == 0 || b.until.Swap(0) == 0 {
		return false, 0
	}
	return true, time.Duration(b.now() - b.since.Load())
}
