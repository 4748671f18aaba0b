package ratelimit

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The scenarios run on a fake clock against both backends and expect the
// same exact decisions from each.

func TestBurstThenRefill(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			l := b.new(t, clock.Now)
			for _, tier := range knownTiers() {
				plan := PlanOf(tier)
				key := "burst-" + string(tier)
				allowed := 0
				for i := range plan.Burst + 50 {
					d := allow(t, l, key, tier, b.local)
					if d.Allowed {
						allowed++
						if want := plan.Burst - 1 - i; d.Remaining != want || d.Limit != plan.Burst {
							t.Fatalf("%s request %d: Limit %d Remaining %d, want %d and %d", tier, i, d.Limit, d.Remaining, plan.Burst, want)
						}
					}
				}
				if allowed != plan.Burst {
					t.Fatalf("%s: %d of %d simultaneous requests allowed, want exactly Burst = %d", tier, allowed, plan.Burst+50, plan.Burst)
				}
				interval := time.Minute / time.Duration(plan.PerMinute)
				d := allow(t, l, key, tier, b.local)
				want := Decision{Limit: plan.Burst, RetryAfter: interval, ResetAfter: time.Duration(plan.Burst) * interval, Local: b.local}
				if d != want {
					t.Fatalf("%s: refused decision = %+v, want %+v", tier, d, want)
				}
			}

			// Refill: one free request per second after the burst.
			clock.Advance(time.Second - time.Microsecond)
			if d := allow(t, l, "burst-free", Free, b.local); d.Allowed || d.RetryAfter != time.Microsecond {
				t.Fatalf("1µs before the refill: %+v, want refused with RetryAfter 1µs", d)
			}
			clock.Advance(time.Microsecond)
			if d := allow(t, l, "burst-free", Free, b.local); !d.Allowed || d.Remaining != 0 {
				t.Fatalf("after one emission interval: %+v, want allowed with Remaining 0", d)
			}
			if d := allow(t, l, "burst-free", Free, b.local); d.Allowed || d.RetryAfter != time.Second {
				t.Fatalf("second request after one interval: %+v, want refused with RetryAfter 1s", d)
			}
			// Idle for the full reset: a whole burst again.
			clock.Advance(100 * time.Second)
			if d := allow(t, l, "burst-free", Free, b.local); !d.Allowed || d.Remaining != 99 {
				t.Fatalf("after ResetAfter: %+v, want allowed with Remaining 99", d)
			}
		})
	}
}

func TestRefusedRequestsConsumeNothing(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			l := b.new(t, clock.Now)
			for range 100 {
				allow(t, l, "k", Free, b.local)
			}
			clock.Advance(300 * time.Millisecond)
			for range 500 {
				if d := allow(t, l, "k", Free, b.local); d.Allowed || d.RetryAfter != 700*time.Millisecond {
					t.Fatalf("hammering a closed limit: %+v, want refused with RetryAfter 700ms every time", d)
				}
			}
			clock.Advance(700 * time.Millisecond)
			if d := allow(t, l, "k", Free, b.local); !d.Allowed {
				t.Fatalf("at the first RetryAfter: %+v, want allowed", d)
			}
			// Keys are independent.
			if d := allow(t, l, "other", Free, b.local); !d.Allowed || d.Remaining != 99 {
				t.Fatalf("another key: %+v, want a full bucket", d)
			}
		})
	}
}

// TestHourLimit paces free requests at one a second, the minute limit's
// rate, so that only the hour limit (3.6 s per request, a bucket of 1,000)
// can refuse. Request k is admitted while 3.6k − (k−1) ≤ 3,600 seconds,
// i.e. for k ≤ 1,384; request 1,385 is 2 s over.
func TestHourLimit(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			l := b.new(t, clock.Now)
			allowed := 0
			var d Decision
			for {
				d = allow(t, l, "hour", Free, b.local)
				if !d.Allowed {
					break
				}
				allowed++
				if allowed > 2000 {
					t.Fatal("hour limit never refused")
				}
				clock.Advance(time.Second)
			}
			if allowed != 1384 {
				t.Fatalf("allowed %d requests at 1/s before the hour limit, want 1384", allowed)
			}
			want := Decision{Limit: 1000, RetryAfter: 2 * time.Second, ResetAfter: 3598400 * time.Millisecond, Local: b.local}
			if d != want {
				t.Fatalf("refused by the hour limit: %+v, want %+v", d, want)
			}
			clock.Advance(2*time.Second - time.Microsecond)
			if d := allow(t, l, "hour", Free, b.local); d.Allowed {
				t.Fatalf("1µs before RetryAfter: %+v, want refused", d)
			}
			clock.Advance(time.Microsecond)
			if d := allow(t, l, "hour", Free, b.local); !d.Allowed || d.Limit != 1000 || d.Remaining != 0 {
				t.Fatalf("at RetryAfter: %+v, want allowed by the hour limit with nothing left", d)
			}
			// Then one request per 3.6 s: the hour limit's sustained rate.
			clock.Advance(3599 * time.Millisecond)
			if d := allow(t, l, "hour", Free, b.local); d.Allowed || d.RetryAfter != time.Millisecond {
				t.Fatalf("3.599 s later: %+v, want refused for 1ms more", d)
			}
			clock.Advance(time.Millisecond)
			if d := allow(t, l, "hour", Free, b.local); !d.Allowed {
				t.Fatalf("3.6 s later: %+v, want allowed", d)
			}
			// An idle hour refills the whole quota: a full burst is allowed and
			// the hour limit has PerHour minus the burst left.
			clock.Advance(time.Hour)
			for i := range 100 {
				if d := allow(t, l, "hour", Free, b.local); !d.Allowed {
					t.Fatalf("burst request %d after an idle hour refused: %+v", i, d)
				}
			}
			if d := allow(t, l, "hour", Free, b.local); d.Allowed || d.Limit != 100 {
				t.Fatalf("request 101 after an idle hour: %+v, want refused by the minute limit", d)
			}
		})
	}
}

// TestLocalMatchesRedis drives both backends with the same random workload
// on one fake clock and expects identical decisions: the Lua script and the
// Go code must be the same arithmetic.
func TestLocalMatchesRedis(t *testing.T) {
	t.Parallel()
	bs := backends()
	clock := newFakeClock()
	local, remote := bs[0].new(t, clock.Now), bs[1].new(t, clock.Now)
	rng := rand.New(rand.NewPCG(1, 2))
	tiers := knownTiers()
	allowed, refused := 0, 0
	for i := range 3000 {
		switch r := rng.IntN(1000); {
		case r < 700: // same instant
		case r < 998:
			clock.Advance(time.Duration(rng.Int64N(int64(20 * time.Millisecond))))
		default:
			clock.Advance(time.Duration(rng.Int64N(int64(30 * time.Minute))))
		}
		// Keys change tiers now and then, as customers change plans.
		key := fmt.Sprintf("c%d", rng.IntN(3))
		tier := tiers[rng.IntN(2)] // free and basic, whose limits a short run reaches
		dl := allow(t, local, key, tier, true)
		dr := allow(t, remote, key, tier, false)
		dr.Local = true
		if dl != dr {
			t.Fatalf("step %d (%s, %s): local %+v, redis %+v", i, key, tier, dl, dr)
		}
		if dl.Allowed {
			allowed++
		} else {
			refused++
		}
	}
	t.Logf("%d allowed, %d refused", allowed, refused)
	if allowed < 300 || refused < 300 {
		t.Fatalf("workload too one-sided to compare: %d allowed, %d refused", allowed, refused)
	}
}
