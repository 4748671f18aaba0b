package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// Header names written by Decision.WriteHeaders (the IETF httpapi
// RateLimit header fields, and RFC 9110's Retry-After).
const (
	HeaderLimit      = "RateLimit-Limit"
	HeaderRemaining  = "RateLimit-Remaining"
	HeaderReset      = "RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// Decision is the limiter's answer for one request.
//
// Limit, Remaining and ResetAfter describe the limit that binds: when the
// request is allowed, the one with fewer requests left; when it is refused,
// the one that refuses it for longer. Limit is that limit's capacity (the
// tier's Burst for the minute limit, PerHour for the hour limit).
type Decision struct {
	Allowed    bool
	Limit      int           // capacity of the binding limit, in requests
	Remaining  int           // requests the binding limit would admit right now (after this one if allowed)
	RetryAfter time.Duration // when refused: wait this long before the request would be admitted; 0 if allowed
	ResetAfter time.Duration // time until the binding limit is back to its full capacity
	Local      bool          // decided by this process's limiter because Redis was unavailable (or not configured)
}

// WriteHeaders sets RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
// (whole seconds, rounded up) on h, and Retry-After (whole seconds, rounded
// up, at least 1) when the request is refused. Call it before WriteHeader.
func (d Decision) WriteHeaders(h http.Header) {
	h.Set(HeaderLimit, strconv.Itoa(d.Limit))
	h.Set(HeaderRemaining, strconv.Itoa(max(d.Remaining, 0)))
	h.Set(HeaderReset, strconv.FormatInt(ceilSeconds(d.ResetAfter), 10))
	if !d.Allowed {
		h.Set(HeaderRetryAfter, strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10))
	}
}

// ceilSeconds returns d in whole seconds, rounded up; negative d gives 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
