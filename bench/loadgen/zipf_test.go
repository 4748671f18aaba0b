package main

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestZipfBoundsAndPermutation(t *testing.T) {
	for _, n := range []int64{1, 2, 3, 10, 16, 97, 1000, 100_000} {
		z, err := NewZipf(n, 1.1)
		if err != nil {
			t.Fatal(err)
		}
		// rankToID is a bijection of [1, n].
		if n <= 1000 {
			seen := make(map[int64]bool, n)
			for r := int64(1); r <= n; r++ {
				id := z.rankToID(r)
				if id < 1 || id > n || seen[id] {
					t.Fatalf("n=%d: rank %d -> id %d (out of range or repeated)", n, r, id)
				}
				seen[id] = true
			}
		}
		rng := rand.New(rand.NewPCG(uint64(n), 7))
		for range 20_000 {
			if r := z.Rank(rng); r < 1 || r > n {
				t.Fatalf("n=%d: rank %d out of [1, %d]", n, r, n)
			}
			if c := z.Customer(rng); c < 1 || c > n {
				t.Fatalf("n=%d: customer %d out of [1, %d]", n, c, n)
			}
		}
	}
}

func TestZipfSkew(t *testing.T) {
	const n, draws = 100_000, 400_000
	for _, s := range []float64{0, 0.8, 1.1, 1.5} {
		z, err := NewZipf(n, s)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(42, uint64(s*10)))
		counts := map[int64]int{}
		for range draws {
			counts[z.Rank(rng)]++
		}
		// Exact expectation: P(k) = k^-s / H(n, s).
		h := 0.0
		for k := 1; k <= n; k++ {
			h += math.Pow(float64(k), -s)
		}
		for _, k := range []int64{1, 2, 10} {
			p := math.Pow(float64(k), -s) / h
			if math.Abs(z.Prob(k)-p) > 1e-9 {
				t.Errorf("s=%g: Prob(%d) = %g, want %g", s, k, z.Prob(k), p)
			}
			want := p * draws
			sd := math.Sqrt(draws * p * (1 - p))
			if got := float64(counts[k]); math.Abs(got-want) > 5*sd+1 {
				t.Errorf("s=%g: rank %d drawn %v times, want %.0f ± %.0f", s, k, got, want, 5*sd)
			}
		}
		// The top 1 % of ranks: share as expected.
		top, pTop := 0, 0.0
		for k := int64(1); k <= n/100; k++ {
			top += counts[k]
			pTop += math.Pow(float64(k), -s) / h
		}
		sd := math.Sqrt(draws * pTop * (1 - pTop))
		if math.Abs(float64(top)-pTop*draws) > 5*sd+1 {
			t.Errorf("s=%g: top 1%% drawn %d times, want %.0f ± %.0f", s, top, pTop*draws, 5*sd)
		}
		if s == 1.1 && (pTop < 0.5 || z.Prob(1)/z.Prob(2) < 2.1 || z.Prob(1)/z.Prob(2) > 2.2) {
			t.Errorf("s=1.1: top 1%% share %.3f, P(1)/P(2) = %.3f: not the expected skew (>0.5, 2^1.1 = 2.14)", pTop, z.Prob(1)/z.Prob(2))
		}
	}
}

func TestZipfRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		n int64
		s float64
	}{{0, 1}, {-5, 1}, {maxCustomers + 1, 1}, {10, -0.1}, {10, math.NaN()}, {10, math.Inf(1)}} {
		if _, err := NewZipf(tc.n, tc.s); err == nil {
			t.Errorf("NewZipf(%d, %g) accepted", tc.n, tc.s)
		}
	}
}
