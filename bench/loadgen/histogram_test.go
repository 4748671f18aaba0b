package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// refQuantile is the exact quantile Histogram.Quantile estimates: the value of rank ceil(q*n).
func refQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestHistogramQuantilesMatchSortedReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name string
		draw func() int64 // µs
	}{
		{"small exact values", func() int64 { return rng.Int64N(200) }},
		{"uniform to 1s", func() int64 { return rng.Int64N(1_000_000) }},
		{"lognormal around 5ms", func() int64 { return int64(5000 * math.Exp(rng.NormFloat64())) }},
		{"bimodal 1ms and 2s", func() int64 {
			if rng.IntN(100) < 97 {
				return 1000 + rng.Int64N(100)
			}
			return 2_000_000 + rng.Int64N(500_000)
		}},
		{"constant", func() int64 { return 12345 }},
	}
	qs := []float64{0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, 50_000)
			for i := range vals {
				vals[i] = tc.draw()
				h.Record(time.Duration(vals[i]) * time.Microsecond)
			}
			slices.Sort(vals)
			if h.Count() != int64(len(vals)) {
				t.Fatalf("count = %d, want %d", h.Count(), len(vals))
			}
			if got, want := h.Max(), time.Duration(vals[len(vals)-1])*time.Microsecond; got != want {
				t.Errorf("max = %v, want %v (exact)", got, want)
			}
			for _, q := range qs {
				want := refQuantile(vals, q)
				got := h.Quantile(q).Microseconds()
				// Half a bucket: at most 2^-(subBits+1) of the value, or exact below 256 µs.
				tol := int64(float64(want) / float64(int(2)<<subBits))
				if diff := got - want; diff < -tol || diff > tol {
					t.Errorf("q%.3f = %d µs, want %d ± %d", q, got, want, tol)
				}
			}
		})
	}
}

func TestHistogramBucketsRoundTrip(t *testing.T) {
	prevLow := int64(-1)
	for i := range numBuckets {
		low, width := bucketRange(i)
		if low <= prevLow {
			t.Fatalf("bucket %d starts at %d, not after %d", i, low, prevLow)
		}
		for _, v := range []int64{low, low + width - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d (bucket [%d, +%d))", v, got, i, low, width)
			}
		}
		if i+1 < numBuckets {
			next, _ := bucketRange(i + 1)
			if next != low+width {
				t.Fatalf("gap between bucket %d [%d,+%d) and %d at %d", i, low, width, i+1, next)
			}
		}
		prevLow = low
	}
	if got := bucketOf(maxValue); got != numBuckets-1 {
		t.Fatalf("bucketOf(maxValue) = %d, want the last bucket %d", got, numBuckets-1)
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-time.Second)    // clamped to 0
	h.Record(400 * time.Hour) // clamped to maxValue
	h.Record(3 * time.Millisecond)
	if h.Count() != 3 {
		t.Fatalf("count = %d", h.Count())
	}
	if got := h.Quantile(0); got != 0 {
		t.Errorf("min = %v, want 0", got)
	}
	if got := h.Max(); got != time.Duration(maxValue)*time.Microsecond {
		t.Errorf("max = %v, want clamp %v", got, time.Duration(maxValue)*time.Microsecond)
	}

	var a, b, both Histogram
	for i := range 1000 {
		d := time.Duration(i*37%5000) * time.Microsecond
		both.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if a != both {
		t.Fatal("merging two halves differs from recording everything in one histogram")
	}
}
