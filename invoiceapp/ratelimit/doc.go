// Package ratelimit enforces the invoice platform's per-customer rate limits
// by tier, cluster-wide through Redis, with a per-process fallback.
//
// # Semantics
//
// Every request of a customer must pass two limits, each a GCRA (generic
// cell rate algorithm, equivalent to a token bucket that refills
// continuously):
//
//   - The minute limit admits one request per 1m/PerMinute on average and up
//     to Burst at once: a bucket of Burst requests refilling at PerMinute
//     per minute. Free: 100 at once, then one per second.
//   - The hour limit admits one request per 1h/PerHour on average and up to
//     PerHour at once: a bucket of a full hour's quota refilling at PerHour
//     per hour. A customer idle for an hour can spend its whole hourly quota
//     at the minute limit's pace; after that it gets one request per
//     1h/PerHour (free: one per 3.6 s).
//
// A request is allowed only if both limits admit it, and only an allowed
// request is counted: a refused request (HTTP 429) consumes nothing, so a
// client hammering a closed limit does not push its reopening back.
//
// Bounds that follow: over any window of length W, a customer is admitted
// at most Burst + W×PerMinute/1m and at most PerHour + W×PerHour/1h
// requests. The long-run rate is the smaller of the two rates. A single
// clock hour can therefore see up to twice PerHour (a full bucket spent,
// plus an hour of refill), but never sustained; this is the price of a
// bucket instead of a per-request log, which a 500,000/h tier cannot afford.
//
// # Cluster-wide state
//
// Both limits of a customer live in one Redis hash (Options.Prefix + key,
// fields "m" and "h": theoretical arrival times in µs) updated by one Lua
// script, so concurrent requests on any number of instances are decided in
// a single order. The script takes the time from Redis TIME, not from the
// callers, so instances with skewed clocks agree. The key expires once both
// buckets are full again. Being one key, it works on Redis Cluster too.
//
// # Fallback
//
// When a Redis call fails or takes longer than Options.Timeout (50 ms), the
// request is decided by an in-process limiter with the same arithmetic
// (Decision.Local), and Redis is left alone for Options.Cooldown (1 s) before
// one request probes it again. During an outage each instance enforces the
// full limits on its own requests only, so N instances admit up to N times
// the budget; when Redis answers again its state is used as it is (empty if
// Redis restarted). Each outage is logged once, when it begins, and once
// when it ends.
//
// # Metrics
//
//   - invoiced_ratelimit_decisions_total{tier, result="allowed|limited", source="redis|local"}
//   - invoiced_ratelimit_redis_errors_total
package ratelimit
