package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// maxCustomers bounds --customers: the sampler keeps one float64 per customer.
const maxCustomers = 10_000_000

// Zipf draws customer ids in [1, n] with P(rank k) proportional to 1/k^s. Ranks map to ids
// through a fixed permutation (see rankToID), so the hottest customers are spread over the
// logical shards instead of being customers 1, 2, 3, ... The permutation depends only on n, so
// the same customers are hot in every run. A Zipf is immutable and safe for concurrent use;
// each goroutine brings its own *rand.Rand.
type Zipf struct {
	n      int64
	s      float64
	cdf    []float64 // cdf[k-1] = P(rank <= k); cdf[n-1] == 1
	stride int64     // rank-to-id permutation multiplier, coprime with n
}

// NewZipf builds the sampler for n customers and exponent s (s >= 0; 0 is uniform).
func NewZipf(n int64, s float64) (*Zipf, error) {
	if n < 1 || n > maxCustomers {
		return nil, fmt.Errorf("zipf: customers = %d, want 1..%d", n, maxCustomers)
	}
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, errors.New("zipf: exponent s must be a finite number >= 0")
	}
	cdf := make([]float64, n)
	var sum float64
	for k := int64(1); k <= n; k++ {
		sum += math.Pow(float64(k), -s)
		cdf[k-1] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	cdf[n-1] = 1
	return &Zipf{n: n, s: s, cdf: cdf, stride: coprimeStride(n)}, nil
}

// coprimeStride returns a multiplier near n times the golden ratio's fractional part that is
// coprime with n, so that k -> k*stride mod n is a bijection that scatters neighbours.
func coprimeStride(n int64) int64 {
	if n <= 2 {
		return 1
	}
	st := int64(float64(n)*0.6180339887) | 1
	for gcd(st, n) != 1 {
		st += 2
	}
	return st % n
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Rank draws a popularity rank in [1, n]: 1 is the most popular.
func (z *Zipf) Rank(rng *rand.Rand) int64 {
	u := rng.Float64()
	i := sort.SearchFloat64s(z.cdf, u)
	// SearchFloat64s finds the first cdf >= u; u < 1 so i < n, but guard rounding anyway.
	if i >= len(z.cdf) {
		i = len(z.cdf) - 1
	}
	// A u exactly equal to cdf[i] belongs to rank i+1's interval [cdf[i-1], cdf[i]).
	if z.cdf[i] == u && i+1 < len(z.cdf) {
		i++
	}
	return int64(i) + 1
}

// Customer draws a customer id in [1, n].
func (z *Zipf) Customer(rng *rand.Rand) int64 { return z.rankToID(z.Rank(rng)) }

// rankToID maps a popularity rank to a customer id: a bijection of [1, n].
func (z *Zipf) rankToID(rank int64) int64 {
	return (rank-1)*z.stride%z.n + 1
}

// Prob returns the probability of rank k.
func (z *Zipf) Prob(k int64) float64 {
	if k < 1 || k > z.n {
		return 0
	}
	if k == 1 {
		return z.cdf[0]
	}
	return z.cdf[k-1] - z.cdf[k-2]
}
