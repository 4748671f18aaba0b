package health

import (
	"testing"
	"time"
)

func TestBanDuration(t *testing.T) {
	base, maxBan := 100*time.Millisecond, time.Second
	tests := []struct {
		n    int
		want time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{60, time.Second},
		{1000, time.Second},
	}
	for _, tt := range tests {
		if got := banDuration(tt.n, base, maxBan); got != tt.want {
			t.Errorf("banDuration(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestEndpointBanBackoff(t *testing.T) {
	const base, maxBan = 10 * time.Millisecond, 35 * time.Millisecond
	ep := &endpoint{}
	now := int64(1000)
	step := func(want time.Duration) {
		t.Helper()
		d, ok := ep.ban(now, base, maxBan)
		if !ok || d != want {
			t.Fatalf("ban at %d = %v, %v; want %v, true", now, d, ok, want)
		}
		if !ep.banned(now) || !ep.banned(now+int64(want)-1) || ep.banned(now+int64(want)) {
			t.Fatalf("ban of %v at %d: banned window wrong (until %d)", want, now, ep.bannedUntil.Load())
		}
		// A ban while banned changes nothing.
		if _, ok := ep.ban(now+1, base, maxBan); ok {
			t.Fatal("a ban while banned counted")
		}
		now += int64(want) // expire
	}
	step(10 * time.Millisecond)
	step(20 * time.Millisecond)
	step(35 * time.Millisecond)
	step(35 * time.Millisecond)
	// A successful check while still banned keeps the backoff.
	if _, ok := ep.ban(now, base, maxBan); !ok {
		t.Fatal("ban after expiry refused")
	}
	ep.clearBackoff(now + 1)
	now += int64(maxBan)
	step(35 * time.Millisecond)
	// A successful check after the ban expired resets it.
	ep.clearBackoff(now)
	step(10 * time.Millisecond)
}
