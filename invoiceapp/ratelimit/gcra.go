package ratelimit

import "time"

// All GCRA arithmetic is on int64 microseconds: times are microseconds since
// the Unix epoch, as Redis TIME reports them, and every plan's emission
// interval is a whole number of them. The Lua script in script.go repeats
// this file's arithmetic exactly; tests run the same cases through both.

// limit is one GCRA limit: requests are admitted at one per interval on
// average, and up to burst of them at once after an idle spell (a bucket of
// burst requests that refills one request per interval).
type limit struct {
	interval int64 // emission interval, µs
	burst    int64 // capacity, requests
}

// limits are the two limits every request must pass.
type limits struct {
	minute limit // interval 1m/PerMinute, burst Plan.Burst
	hour   limit // interval 1h/PerHour, burst Plan.PerHour
}

// limitsOf returns p's limits; intervals are rounded up, so rounding never
// admits more than the plan.
func limitsOf(p Plan) limits {
	return limits{
		minute: limit{interval: ceilDiv(time.Minute.Microseconds(), int64(p.PerMinute)), burst: int64(p.Burst)},
		hour:   limit{interval: ceilDiv(time.Hour.Microseconds(), int64(p.PerHour)), burst: int64(p.PerHour)},
	}
}

// ceilDiv returns a/b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// verdict is one limit's answer to one request at a given time.
type verdict struct {
	ok        bool
	remaining int64 // if ok: requests this limit would still admit at once after this one
	retry     int64 // if !ok: µs until this request would be admitted
	reset     int64 // µs until the bucket is full again (counting this request if ok)
	tat       int64 // if ok: the theoretical arrival time to store
}

// check decides one request at now against the stored theoretical arrival
// time tat (0 or any time not after now: the bucket is full). It does not
// store anything: the caller stores v.tat only if every limit admits the
// request.
func (l limit) check(tat, now int64) verdict {
	tat = max(tat, now)
	next := tat + l.interval
	capacity := l.interval * l.burst
	if over := next - now - capacity; over > 0 {
		return verdict{retry: over, reset: tat - now}
	}
	return verdict{
		ok:        true,
		remaining: (capacity - (next - now)) / l.interval,
		reset:     next - now,
		tat:       next,
	}
}

// decide combines the two verdicts on one request into a Decision. An
// admitted request reports the limit with fewer requests remaining (on a
// tie, the one that takes longer to refill); a refused one reports the
// refusing limit that takes longer to admit it, so that after RetryAfter
// both limits admit it (if nothing else was admitted meanwhile).
func decide(lim limits, m, h verdict, local bool) Decision {
	d := Decision{Allowed: m.ok && h.ok, Local: local}
	var bind verdict
	var capacity int64
	switch {
	case d.Allowed && (h.remaining < m.remaining || h.remaining == m.remaining && h.reset > m.reset):
		bind, capacity = h, lim.hour.burst
	case d.Allowed:
		bind, capacity = m, lim.minute.burst
	case !h.ok && (m.ok || h.retry > m.retry):
		bind, capacity = h, lim.hour.burst
	default:
		bind, capacity = m, lim.minute.burst
	}
	d.Limit = int(capacity)
	d.Remaining = int(bind.remaining)
	d.RetryAfter = micros(bind.retry)
	d.ResetAfter = micros(bind.reset)
	return d
}

// micros converts µs to a Duration.
func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
