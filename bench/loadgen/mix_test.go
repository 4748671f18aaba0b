package main

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDefaultMixProportions(t *testing.T) {
	const draws = 100_000
	m := DefaultMix()
	want := map[Route]float64{RouteList: 0.40, RouteGet: 0.25, RouteSummary: 0.10, RouteCreate: 0.15, RoutePay: 0.10}
	rng := rand.New(rand.NewPCG(3, 4))
	var counts [numRoutes]int
	for range draws {
		counts[m.Pick(rng)]++
	}
	for r, p := range want {
		got := float64(counts[r]) / draws
		// 5 standard deviations of a binomial share: about ±0.8 points at 40 %.
		tol := 5 * math.Sqrt(p*(1-p)/draws)
		if math.Abs(got-p) > tol {
			t.Errorf("%s: %.4f of draws, want %.2f ± %.4f", r, got, p, tol)
		}
	}
}

func TestParseMix(t *testing.T) {
	cases := []struct {
		in      string
		want    Mix
		wantErr bool
	}{
		{in: "list=40,get=25,summary=10,create=15,pay=10", want: DefaultMix()},
		{in: "list_invoices=1, record_payment=3", want: Mix{RouteList: 1, RoutePay: 3}},
		{in: "create=1", want: Mix{RouteCreate: 1}},
		{in: "list=0", wantErr: true},
		{in: "list=-1", wantErr: true},
		{in: "lists=1", wantErr: true},
		{in: "list", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range cases {
		got, err := ParseMix(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("ParseMix(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if got, err := ParseMix(DefaultMix().String()); err != nil || got != DefaultMix() {
		t.Errorf("String does not round-trip: %q -> %v, %v", DefaultMix().String(), got, err)
	}
}

func TestMixNeverPicksZeroWeight(t *testing.T) {
	m := Mix{RouteGet: 1, RoutePay: 1}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 10_000 {
		if r := m.Pick(rng); r != RouteGet && r != RoutePay {
			t.Fatalf("picked %v with weight 0", r)
		}
	}
}
