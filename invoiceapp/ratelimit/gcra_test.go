package ratelimit

import (
	"testing"
	"time"
)

func TestLimitCheck(t *testing.T) {
	l := limit{interval: 1_000_000, burst: 3} // 1/s, burst 3
	const now = 1_000_000_000_000
	tests := []struct {
		name string
		tat  int64
		want verdict
	}{
		{"empty", 0, verdict{ok: true, remaining: 2, reset: 1_000_000, tat: now + 1_000_000}},
		{"past tat is empty", now - 5_000_000, verdict{ok: true, remaining: 2, reset: 1_000_000, tat: now + 1_000_000}},
		{"one used", now + 1_000_000, verdict{ok: true, remaining: 1, reset: 2_000_000, tat: now + 2_000_000}},
		{"last one", now + 2_000_000, verdict{ok: true, remaining: 0, reset: 3_000_000, tat: now + 3_000_000}},
		{"full", now + 3_000_000, verdict{retry: 1_000_000, reset: 3_000_000}},
		{"half a request refilled", now + 2_500_000, verdict{retry: 500_000, reset: 2_500_000}},
		{"refill almost done", now + 3_000_001, verdict{retry: 1_000_001, reset: 3_000_001}},
		{"fraction left", now + 1_500_000, verdict{ok: true, remaining: 0, reset: 2_500_000, tat: now + 2_500_000}},
	}
	for _, tt := range tests {
		if got := l.check(tt.tat, now); got != tt.want {
			t.Errorf("%s: check(%d) = %+v, want %+v", tt.name, tt.tat-now, got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	lim := limitsOf(PlanOf(Free))
	tests := []struct {
		name string
		m, h verdict
		want Decision
	}{
		{
			name: "both admit, minute binds",
			m:    verdict{ok: true, remaining: 99, reset: 1_000_000},
			h:    verdict{ok: true, remaining: 999, reset: 3_600_000},
			want: Decision{Allowed: true, Limit: 100, Remaining: 99, ResetAfter: time.Second},
		},
		{
			name: "both admit, hour binds",
			m:    verdict{ok: true, remaining: 99, reset: 1_000_000},
			h:    verdict{ok: true, remaining: 3, reset: 3_000_000_000},
			want: Decision{Allowed: true, Limit: 1000, Remaining: 3, ResetAfter: 3000 * time.Second},
		},
		{
			name: "tie goes to the slower refill",
			m:    verdict{ok: true, remaining: 0, reset: 100_000_000},
			h:    verdict{ok: true, remaining: 0, reset: 3_600_000_000},
			want: Decision{Allowed: true, Limit: 1000, Remaining: 0, ResetAfter: time.Hour},
		},
		{
			name: "minute refuses",
			m:    verdict{retry: 400_000, reset: 100_000_000},
			h:    verdict{ok: true, remaining: 500, reset: 1_800_000_000},
			want: Decision{Limit: 100, RetryAfter: 400 * time.Millisecond, ResetAfter: 100 * time.Second},
		},
		{
			name: "hour refuses",
			m:    verdict{ok: true, remaining: 50, reset: 50_000_000},
			h:    verdict{retry: 2_000_000, reset: 3_598_000_000},
			want: Decision{Limit: 1000, RetryAfter: 2 * time.Second, ResetAfter: 3598 * time.Second},
		},
		{
			name: "both refuse, the longer wait wins",
			m:    verdict{retry: 900_000, reset: 100_000_000},
			h:    verdict{retry: 3_000_000, reset: 3_599_000_000},
			want: Decision{Limit: 1000, RetryAfter: 3 * time.Second, ResetAfter: 3599 * time.Second},
		},
		{
			name: "both refuse, minute longer",
			m:    verdict{retry: 900_000, reset: 100_000_000},
			h:    verdict{retry: 300_000, reset: 3_599_000_000},
			want: Decision{Limit: 100, RetryAfter: 900 * time.Millisecond, ResetAfter: 100 * time.Second},
		},
	}
	for _, tt := range tests {
		for _, local := range []bool{false, true} {
			want := tt.want
			want.Local = local
			if got := decide(lim, tt.m, tt.h, local); got != want {
				t.Errorf("%s (local %v): decide = %+v, want %+v", tt.name, local, got, want)
			}
		}
	}
}
