package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// errNotSent marks an open-loop request whose intended start passed but that could not be sent
// before the drain deadline (every in-flight slot stayed busy). It counts as an error, so a
// saturated target cannot hide requests by not answering.
var errNotSent = errors.New("not sent")

// Arrival is how an open loop spaces its requests.
type Arrival int

// Arrival processes.
const (
	// ArrivalPoisson spaces requests by independent exponential gaps with mean 1/rate, as
	// independent users would (the default).
	ArrivalPoisson Arrival = iota
	// ArrivalFixed sends exactly every 1/rate.
	ArrivalFixed
)

// String returns the flag spelling.
func (a Arrival) String() string {
	if a == ArrivalFixed {
		return "fixed"
	}
	return "poisson"
}

// Task is one request the workload drew: its route, its customer, the invoice it reads or
// pays (when it needs one) and a random word for any further choice the executor makes.
type Task struct {
	Route    Route
	Customer int64
	Invoice  string
	Rand     uint64
}

// Workload draws and executes requests.
type Workload interface {
	// Next draws the next request. The engine calls it from one goroutine per rng.
	Next(rng *rand.Rand) Task
	// Do sends the request and waits for its answer. It is called concurrently and must
	// return when ctx is done.
	Do(ctx context.Context, t Task) Outcome
}

// Load says how hard and how long to drive a workload.
type Load struct {
	// Rate > 0 runs an open loop: requests are started at this many per second whatever the
	// answers, spaced by Arrival. Workers > 0 runs a closed loop instead: each worker sends
	// its next request when the previous one is answered. Exactly one must be set.
	Rate    float64
	Arrival Arrival
	Workers int
	// Warmup runs the load unmeasured before the Duration that is measured.
	Warmup, Duration time.Duration
	// MaxInFlight bounds the open loop's outstanding requests (default 4096). When all are
	// busy, sending waits; a request's latency still counts from its intended start.
	MaxInFlight int
	// Drain is how long after the end of the measured window outstanding requests may still
	// finish (default 10 s); then they are cancelled and count as errors.
	Drain time.Duration
	// Seed makes the drawn sequence of requests reproducible.
	Seed uint64
}

// normalize checks l and fills defaults.
func (l *Load) normalize() error {
	switch {
	case l.Rate > 0 && l.Workers > 0:
		return errors.New("give --rate (open loop) or --workers (closed loop), not both")
	case l.Rate <= 0 && l.Workers <= 0:
		return errors.New("give --rate (open loop) or --workers (closed loop)")
	case l.Duration <= 0:
		return errors.New("duration must be positive")
	case l.Warmup < 0:
		return errors.New("warmup must not be negative")
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = 4096
	}
	if l.Drain <= 0 {
		l.Drain = 10 * time.Second
	}
	return nil
}

// Result is a finished run: the load and what was measured.
type Result struct {
	Load   Load
	Start  time.Time // when the warm-up began
	Routes [numRoutes]RouteStats
	// ErrorKinds counts errors by route and description.
	ErrorKinds map[string]int64
	// SendLag is, in an open loop, how late each measured request was sent after its intended
	// start: large values mean the target or this generator fell behind.
	SendLag Histogram
	// Interrupted is set when ctx ended the run early.
	Interrupted bool
}

// Total merges every route.
func (r *Result) Total() RouteStats {
	var t RouteStats
	for i := range r.Routes {
		t.merge(&r.Routes[i])
	}
	return t
}

// Run drives w with load l and returns what it measured. Only requests whose (intended) start
// falls in the measured window [Start+Warmup, Start+Warmup+Duration) are recorded; their
// latency runs from the intended start in an open loop (so a late send, behind a slow target,
// is charged to the target: no coordinated omission) and from the actual start in a closed
// loop. Run returns when every request has finished or the drain deadline has passed.
func Run(ctx context.Context, l Load, w Workload) (*Result, error) {
	if err := l.normalize(); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	rec := NewRecorder()
	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	end := measureFrom.Add(l.Duration)
	reqCtx, cancel := context.WithDeadline(ctx, end.Add(l.Drain))
	defer cancel()
	if l.Rate > 0 {
		runOpen(ctx, reqCtx, l, w, rec, start, measureFrom, end)
	} else {
		runClosed(ctx, reqCtx, l, w, rec, measureFrom, end)
	}
	res := &Result{Load: l, Start: start, Interrupted: ctx.Err() != nil}
	res.Routes, res.ErrorKinds, res.SendLag = rec.snapshot()
	return res, nil
}

// gap returns the time to the next open-loop request.
func gap(l Load, rng *rand.Rand) time.Duration {
	mean := float64(time.Second) / l.Rate
	if l.Arrival == ArrivalFixed {
		return time.Duration(mean)
	}
	return time.Duration(rng.ExpFloat64() * mean)
}

// newRand returns a generator for stream i of the seed.
func newRand(seed uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(i)+0x9e3779b97f4a7c15))
}

// runOpen is the open loop: one dispatcher computes intended start times and starts a
// goroutine per request, at most l.MaxInFlight at once.
func runOpen(ctx, reqCtx context.Context, l Load, w Workload, rec *Recorder, start, measureFrom, end time.Time) {
	rng := newRand(l.Seed, 0)
	slots := make(chan struct{}, l.MaxInFlight)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for at := start.Add(gap(l, rng)); at.Before(end); at = at.Add(gap(l, rng)) {
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				wg.Wait()
				return
			}
		}
		t := w.Next(rng)
		measured := !at.Before(measureFrom)
		sent := false
		if reqCtx.Err() == nil {
			select {
			case slots <- struct{}{}:
				sent = true
			case <-reqCtx.Done():
			}
		}
		if sent && reqCtx.Err() != nil { // a slot freed by the deadline itself
			<-slots
			sent = false
		}
		if !sent {
			// Past the drain deadline (or interrupted): what is left is never sent.
			if measured && ctx.Err() == nil {
				rec.Record(t.Route, Outcome{Err: errNotSent}, time.Since(at))
			}
			continue
		}
		if measured {
			rec.RecordLag(time.Since(at))
		}
		wg.Add(1)
		go func(at time.Time) {
			defer wg.Done()
			o := w.Do(reqCtx, t)
			lat := time.Since(at)
			<-slots
			if measured && ctx.Err() == nil {
				rec.Record(t.Route, o, lat)
			}
		}(at)
	}
	wg.Wait()
}

// runClosed is the closed loop: l.Workers goroutines, each sending its next request when the
// previous one is answered, until the end of the measured window. Requests cut off by the drain
// deadline count as errors; after an interruption (ctx done) nothing more is recorded.
func runClosed(ctx, reqCtx context.Context, l Load, w Workload, rec *Recorder, measureFrom, end time.Time) {
	var wg sync.WaitGroup
	for i := range l.Workers {
		wg.Go(func() {
			rng := newRand(l.Seed, i)
			for reqCtx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				t := w.Next(rng)
				o := w.Do(reqCtx, t)
				if !t0.Before(measureFrom) && ctx.Err() == nil {
					rec.Record(t.Route, o, time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
}
