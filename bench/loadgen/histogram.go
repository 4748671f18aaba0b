package main

import (
	"math"
	"math/bits"
	"time"
)

// Histogram geometry. Values are whole microseconds. Below 2^(subBits+1) every value has its
// own bucket; above, each power-of-two range is split into 2^subBits equal buckets, so a
// bucket is at most 1/2^subBits (0.78 %) of the values it holds wide, and a reported
// percentile (a bucket's midpoint) is within half of that of the exact one.
const (
	subBits = 7
	// maxExp bounds the exponent: values of 2^(maxExp+subBits+1) µs (about 305 hours) and more
	// are clamped into the last bucket.
	maxExp     = 32
	numBuckets = (maxExp + 2) << subBits
	maxValue   = int64(1)<<(maxExp+subBits+1) - 1
)

// Histogram is a log-linear latency histogram in the manner of HdrHistogram: constant memory
// (about 35 kB), constant-time Record, bounded relative error. It is not safe for concurrent
// use; Recorder serialises access.
type Histogram struct {
	counts   [numBuckets]int64
	n        int64
	min, max int64 // µs, exact
	sum      float64
}

// bucketOf returns the bucket index of a value in µs (0 <= v <= maxValue).
func bucketOf(v int64) int {
	e := bits.Len64(uint64(v)) - (subBits + 1)
	if e < 0 {
		e = 0
	}
	return e<<subBits + int(v>>e)
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (low, width int64) {
	if i < 2<<subBits {
		return int64(i), 1
	}
	e := i>>subBits - 1
	m := int64(i - e<<subBits)
	return m << e, int64(1) << e
}

// Record adds one latency. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := d.Microseconds()
	if v < 0 {
		v = 0
	}
	if v > maxValue {
		v = maxValue
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() int64 { return h.n }

// Max returns the largest recorded value (exact, to the microsecond); 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean returns the mean of the recorded values; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/float64(h.n)) * time.Microsecond
}

// Quantile returns the value at quantile q in [0, 1]: the value of rank ceil(q*n) (1-based) in
// sorted order, estimated as the midpoint of its bucket and clamped to the exact minimum and
// maximum. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		low, width := bucketRange(i)
		v := low + (width-1)/2
		v = min(max(v, h.min), h.max)
		return time.Duration(v) * time.Microsecond
	}
	return h.Max()
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}
