package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLocalConcurrent(t *testing.T) {
	clock := newFakeClock()
	l := New(nil, Options{Now: clock.Now})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 40 {
				if l.Allow(context.Background(), "k", Basic).Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 500 {
		t.Fatalf("%d of 640 concurrent basic requests allowed, want exactly Burst = 500", got)
	}
}

func TestLocalSweep(t *testing.T) {
	clock := newFakeClock()
	l := New(nil, Options{Now: clock.Now})
	for i := range 1000 {
		l.Allow(context.Background(), strconv.Itoa(i), Free)
	}
	if n := l.local.len(); n != 1000 {
		t.Fatalf("%d keys held, want 1000", n)
	}
	// Each first request sets the hour TAT 3.6 s ahead; a minute later every
	// bucket is full and the next request in each shard sweeps it.
	clock.Advance(localSweepEvery)
	for i := range 5000 {
		l.Allow(context.Background(), "new"+strconv.Itoa(i), Free)
	}
	if n := l.local.len(); n != 5000 {
		t.Fatalf("%d keys held after the sweep, want only the 5000 recent ones", n)
	}
	// A key whose bucket is not full survives a sweep.
	for range 100 {
		l.Allow(context.Background(), "busy", Free)
	}
	clock.Advance(localSweepEvery)
	for i := range 5000 {
		l.Allow(context.Background(), "newer"+strconv.Itoa(i), Free)
	}
	// Its minute bucket refilled 60 of 100 in that minute: 59 left after this
	// one, where a forgotten key would have 99.
	if d := l.Allow(context.Background(), "busy", Free); !d.Allowed || d.Remaining != 59 {
		t.Fatalf("busy key after a sweep: %+v, want its state kept (59 remaining)", d)
	}
}
