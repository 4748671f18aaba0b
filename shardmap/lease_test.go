package shardmap

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestLeaseNil(t *testing.T) {
	var l *Lease
	if !l.Valid() {
		t.Error("a nil lease (standalone node) is not valid")
	}
	l.Renew(time.Now()) // must not panic
	if got, want := l.Status(), (LeaseStatus{Valid: true}); got != want {
		t.Errorf("nil lease status %+v, want %+v", got, want)
	}
	if l.TTL() != 0 {
		t.Errorf("nil lease TTL %v, want 0", l.TTL())
	}
}

func TestLeaseRenewals(t *testing.T) {
	const hour = time.Hour
	tests := []struct {
		name      string
		renewals  []time.Duration // offsets from the start of the case, in order
		valid     bool
		never     bool          // never renewed: RenewedAt is zero
		renewedAt time.Duration // expected RenewedAt, offset from the start
	}{
		{name: "never renewed", valid: false, never: true},
		{name: "renewed now", renewals: []time.Duration{0}, valid: true, renewedAt: 0},
		{name: "renewed just within the ttl", renewals: []time.Duration{-hour + time.Minute}, valid: true, renewedAt: -hour + time.Minute},
		{name: "renewed longer than the ttl ago", renewals: []time.Duration{-2 * hour}, valid: false, renewedAt: -2 * hour},
		{name: "never moves backwards", renewals: []time.Duration{-time.Minute, -30 * time.Minute}, valid: true, renewedAt: -time.Minute},
		{name: "moves forwards", renewals: []time.Duration{-2 * hour, -time.Minute}, valid: true, renewedAt: -time.Minute},
		{name: "an old renewal cannot undo a fresh one", renewals: []time.Duration{0, -2 * hour}, valid: true, renewedAt: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLease(hour)
			start := time.Now()
			for _, r := range tt.renewals {
				l.Renew(start.Add(r))
			}
			if got := l.Valid(); got != tt.valid {
				t.Errorf("Valid() = %v, want %v", got, tt.valid)
			}
			st := l.Status()
			if st.Valid != tt.valid || st.TTL != hour {
				t.Errorf("Status() = %+v, want Valid %v and TTL %v", st, tt.valid, hour)
			}
			if tt.never {
				if !st.RenewedAt.IsZero() {
					t.Errorf("RenewedAt = %v, want zero", st.RenewedAt)
				}
				if st.Age < 0 || st.Age > time.Since(start)+time.Second {
					t.Errorf("Age of a never-renewed lease = %v, want its age since NewLease", st.Age)
				}
				return
			}
			if want := start.Add(tt.renewedAt); !st.RenewedAt.Equal(want) {
				t.Errorf("RenewedAt = %v, want %v", st.RenewedAt, want)
			}
			if min, max := -tt.renewedAt, time.Since(start)-tt.renewedAt; st.Age < min || st.Age > max {
				t.Errorf("Age = %v, want within [%v, %v]", st.Age, min, max)
			}
		})
	}
}

func TestLeaseZeroTimeIgnored(t *testing.T) {
	l := NewLease(time.Hour)
	l.Renew(time.Time{})
	if l.Valid() || !l.Status().RenewedAt.IsZero() {
		t.Errorf("a zero renewal time renewed the lease: %+v", l.Status())
	}
}

func TestLeaseExpires(t *testing.T) {
	const ttl = 30 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l := NewLease(ttl)
	at := time.Now()
	l.Renew(at)
	if !l.Valid() && time.Since(at) < ttl {
		t.Fatal("lease not valid right after its renewal")
	}
	waitFor(ctx, t, "the lease to expire", func() bool { return !l.Valid() })
	if since := time.Since(at); since < ttl {
		t.Errorf("lease expired %v after its renewal, before its ttl %v", since, ttl)
	}
	if st := l.Status(); st.Valid || st.Age < ttl {
		t.Errorf("expired lease status %+v, want not valid with Age >= %v", st, ttl)
	}
	// A fresh renewal brings it back.
	l.Renew(time.Now())
	if st := l.Status(); !st.Valid && st.Age < ttl {
		t.Errorf("renewed lease status %+v, want valid", st)
	}
}

func TestLeaseFutureRenewalCountsAsNow(t *testing.T) {
	const ttl = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l := NewLease(ttl)
	before := time.Now()
	l.Renew(before.Add(time.Hour))
	if st := l.Status(); st.RenewedAt.After(time.Now()) {
		t.Errorf("RenewedAt %v is in the future", st.RenewedAt)
	}
	// Were the future time taken as given, the lease would last an hour.
	waitFor(ctx, t, "a lease renewed 'in the future' to expire after its ttl", func() bool { return !l.Valid() })
}

func TestNewLeaseRejectsNonPositiveTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewLease(%v) did not panic", ttl)
				}
			}()
			NewLease(ttl)
		}()
	}
}

func TestLeaseConcurrentUse(t *testing.T) {
	l := NewLease(time.Hour)
	var wg sync.WaitGroup
	latest := time.Now()
	for i := range 8 {
		wg.Add(2)
		at := latest.Add(-time.Duration(i) * time.Second)
		go func() {
			defer wg.Done()
			for range 200 {
				l.Renew(at)
			}
		}()
		go func() {
			defer wg.Done()
			for range 200 {
				_ = l.Valid()
				_ = l.Status()
			}
		}()
	}
	wg.Wait()
	if got := l.Status().RenewedAt; !got.Equal(latest) {
		t.Errorf("RenewedAt after concurrent renewals = %v, want the latest %v", got, latest)
	}
}

func TestLeaseValidAllocatesNothing(t *testing.T) {
	l := NewLease(time.Hour)
	l.Renew(time.Now())
	if n := testing.AllocsPerRun(1000, func() { _ = l.Valid() }); n != 0 {
		t.Errorf("Valid allocates %v times per call, want 0", n)
	}
}

func BenchmarkLeaseValid(b *testing.B) {
	l := NewLease(time.Hour)
	l.Renew(time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !l.Valid() {
				b.Fatal("lease not valid")
			}
		}
	})
}
