package main

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeWorkload draws list requests and runs do for each.
type fakeWorkload struct {
	do    func(ctx context.Context) Outcome
	calls atomic.Int64
	cur   atomic.Int64
	peak  atomic.Int64
}

func (f *fakeWorkload) Next(rng *rand.Rand) Task {
	return Task{Route: DefaultMix().Pick(rng), Customer: 1}
}

func (f *fakeWorkload) Do(ctx context.Context, _ Task) Outcome {
	f.calls.Add(1)
	n := f.cur.Add(1)
	defer f.cur.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return f.do(ctx)
}

// sleepFor answers 200 after d (or an error when ctx ends first).
func sleepFor(d time.Duration) func(ctx context.Context) Outcome {
	return func(ctx context.Context) Outcome {
		select {
		case <-time.After(d):
			return Outcome{Status: 200}
		case <-ctx.Done():
			return Outcome{Err: ctx.Err()}
		}
	}
}

func runLoad(t *testing.T, l Load, w Workload) *Result {
	t.Helper()
	res, err := Run(context.Background(), l, w)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A target that serves one request at a time, 10 ms each, offered 200 requests/s: the
// open loop must charge the queueing to the target (latency from the intended start), not
// report the 10 ms service time as a coordinated-omission loop would.
func TestOpenLoopChargesQueueingToTheTarget(t *testing.T) {
	w := &fakeWorkload{do: sleepFor(10 * time.Millisecond)}
	res := runLoad(t, Load{Rate: 200, Arrival: ArrivalFixed, Duration: 300 * time.Millisecond, MaxInFlight: 1}, w)
	total := res.Total()
	// Intended starts at 5, 10, ..., 295 ms: 59, all measured and all answered.
	if total.Count != 59 || total.OK != 59 || w.calls.Load() != 59 {
		t.Fatalf("count %d ok %d calls %d, want 59 each", total.Count, total.OK, w.calls.Load())
	}
	if w.peak.Load() != 1 {
		t.Fatalf("peak concurrency %d, want 1 (MaxInFlight)", w.peak.Load())
	}
	// The k-th request waits for k-1 others: it finishes near 10k ms + 5 ms, intended at 5k ms,
	// so latency grows by ~5 ms per request, to ~300 ms for the last.
	if max := total.Latency.Max(); max < 250*time.Millisecond {
		t.Errorf("max latency %v: queueing behind the slow target was not charged (want >= 250ms)", max)
	}
	if p50 := total.Latency.Quantile(0.5); p50 < 100*time.Millisecond {
		t.Errorf("p50 latency %v, want >= 100ms (half the requests queued for at least that)", p50)
	}
	if lag := res.SendLag.Max(); lag < 200*time.Millisecond {
		t.Errorf("send lag max %v, want >= 200ms: requests were sent late and that must show", lag)
	}
}

func TestOpenLoopWithoutBacklogMeasuresServiceTime(t *testing.T) {
	w := &fakeWorkload{do: sleepFor(10 * time.Millisecond)}
	res := runLoad(t, Load{Rate: 200, Arrival: ArrivalFixed, Duration: 300 * time.Millisecond}, w)
	total := res.Total()
	if total.Count != 59 {
		t.Fatalf("count %d, want 59", total.Count)
	}
	if p50 := total.Latency.Quantile(0.5); p50 < 10*time.Millisecond || p50 > 100*time.Millisecond {
		t.Errorf("p50 %v, want about the 10ms service time", p50)
	}
	if w.peak.Load() < 2 {
		t.Errorf("peak concurrency %d: requests were not overlapped", w.peak.Load())
	}
}

func TestWarmupIsNotMeasured(t *testing.T) {
	w := &fakeWorkload{do: sleepFor(0)}
	res := runLoad(t, Load{Rate: 100, Arrival: ArrivalFixed, Warmup: 200 * time.Millisecond, Duration: 300 * time.Millisecond}, w)
	// Intended at 10, 20, ..., 490 ms: 49 sent; those at 200 ms and later (30) measured.
	if w.calls.Load() != 49 {
		t.Errorf("calls %d, want 49", w.calls.Load())
	}
	total := res.Total()
	if total.Count != 30 {
		t.Errorf("measured %d, want 30", total.Count)
	}
	rep := NewReport(res, RunInfo{Mix: DefaultMix()}, nil)
	if got := rep.Total.Throughput; math.Abs(got-100) > 1e-9 {
		t.Errorf("throughput %g, want 30 / 0.3 s = 100", got)
	}
}

// A target that never answers: in-flight requests are cut at the drain deadline and the ones
// that could not be sent still count, so nothing disappears from the error rate.
func TestDrainDeadlineCountsEveryIntendedRequest(t *testing.T) {
	w := &fakeWorkload{do: func(ctx context.Context) Outcome { <-ctx.Done(); return Outcome{Err: ctx.Err()} }}
	start := time.Now()
	res := runLoad(t, Load{Rate: 100, Arrival: ArrivalFixed, Duration: 200 * time.Millisecond, MaxInFlight: 2, Drain: 100 * time.Millisecond}, w)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("run took %v, want about 0.3 s (the drain deadline)", el)
	}
	total := res.Total()
	if total.Count != 19 || total.Errors != 19 {
		t.Fatalf("count %d errors %d, want 19 and 19", total.Count, total.Errors)
	}
	var notSent, cut int64
	for k, n := range res.ErrorKinds {
		switch {
		case strings.Contains(k, "not sent"):
			notSent += n
		case strings.Contains(k, "no response"):
			cut += n
		}
	}
	if cut != 2 || notSent != 17 {
		t.Errorf("error kinds %v: want 2 cut at the deadline and 17 not sent", res.ErrorKinds)
	}
}

func TestClosedLoopKeepsWorkersBusy(t *testing.T) {
	w := &fakeWorkload{do: sleepFor(5 * time.Millisecond)}
	res := runLoad(t, Load{Workers: 4, Duration: 300 * time.Millisecond}, w)
	total := res.Total()
	if w.peak.Load() != 4 {
		t.Errorf("peak concurrency %d, want 4 workers", w.peak.Load())
	}
	// At most 4 × 300/5 = 240 requests; on a busy machine fewer, but not a handful.
	if total.Count < 40 || total.Count > 244 {
		t.Errorf("count %d, want 40..244", total.Count)
	}
	if p50 := total.Latency.Quantile(0.5); p50 < 5*time.Millisecond {
		t.Errorf("p50 %v, below the 5ms service time", p50)
	}
	if res.SendLag.Count() != 0 {
		t.Error("closed loop recorded a send lag")
	}
}

func TestInterruptStopsTheRun(t *testing.T) {
	w := &fakeWorkload{do: sleepFor(time.Millisecond)}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	go func() {
		for w.calls.Load() < 5 {
			time.Sleep(time.Millisecond)
		}
		once.Do(cancel)
	}()
	start := time.Now()
	res, err := Run(ctx, Load{Rate: 100, Duration: time.Minute}, w)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || time.Since(start) > 10*time.Second {
		t.Fatalf("interrupted = %v after %v, want a prompt interrupted result", res.Interrupted, time.Since(start))
	}
}

func TestPoissonGaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	l := Load{Rate: 500}
	const n = 100_000
	var sum, sumSq float64
	for range n {
		g := gap(l, rng).Seconds()
		sum += g
		sumSq += g * g
	}
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	if math.Abs(mean-0.002) > 0.00004 {
		t.Errorf("mean gap %gs, want 0.002 ± 2%%", mean)
	}
	// An exponential's standard deviation equals its mean.
	if math.Abs(sd/mean-1) > 0.03 {
		t.Errorf("coefficient of variation %g, want 1 ± 3%%", sd/mean)
	}
	if g := gap(Load{Rate: 500, Arrival: ArrivalFixed}, rng); g != 2*time.Millisecond {
		t.Errorf("fixed gap %v, want 2ms", g)
	}
}

func TestLoadValidation(t *testing.T) {
	for _, l := range []Load{
		{Duration: time.Second},
		{Rate: 1, Workers: 1, Duration: time.Second},
		{Rate: 1},
		{Rate: 1, Duration: time.Second, Warmup: -time.Second},
	} {
		if _, err := Run(context.Background(), l, &fakeWorkload{}); err == nil {
			t.Errorf("Run accepted %+v", l)
		}
	}
}
