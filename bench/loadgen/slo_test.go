package main

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func TestParseSLO(t *testing.T) {
	cases := []struct {
		in      string
		want    SLO
		wantErr bool
	}{
		{in: "p95=200ms,p99=500ms,errors=0.1%", want: SLO{
			{Name: "p95", Quantile: 0.95, Latency: 200 * time.Millisecond},
			{Name: "p99", Quantile: 0.99, Latency: 500 * time.Millisecond},
			{Name: "errors", Rate: 0.001},
		}},
		{in: "p99.9=1s, max=2s, limited=0.05", want: SLO{
			{Name: "p99.9", Quantile: 0.999, Latency: time.Second},
			{Name: "max", Quantile: 1, Latency: 2 * time.Second},
			{Name: "limited", Rate: 0.05},
		}},
		{in: "p95=200", wantErr: true},
		{in: "p0=1s", wantErr: true},
		{in: "p101=1s", wantErr: true},
		{in: "px=1s", wantErr: true},
		{in: "errors=101%", wantErr: true},
		{in: "errors=-1", wantErr: true},
		{in: "latency=1s", wantErr: true},
		{in: "p95", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range cases {
		got, err := ParseSLO(tc.in)
		for i := range got { // p99.9 / 100 is not exactly 0.999 in binary
			if i < len(tc.want) && math.Abs(got[i].Quantile-tc.want[i].Quantile) < 1e-12 {
				got[i].Quantile = tc.want[i].Quantile
			}
		}
		if (err != nil) != tc.wantErr || (err == nil && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("ParseSLO(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// stats builds a total with the given latencies (ms) and error/429 counts on top of them.
func stats(latMS []int, errors, limited int64) *RouteStats {
	s := &RouteStats{}
	for i, ms := range latMS {
		c := ClassOK
		switch {
		case int64(i) < errors:
			c = ClassError
		case int64(i) < errors+limited:
			c = ClassLimited
		}
		s.add(c, time.Duration(ms)*time.Millisecond)
	}
	return s
}

func TestSLOCheck(t *testing.T) {
	slo, err := ParseSLO("p95=200ms,p99=500ms,errors=0.1%")
	if err != nil {
		t.Fatal(err)
	}
	fast := make([]int, 1000)
	for i := range fast {
		fast[i] = 10 + i%50
	}
	slowTail := append([]int(nil), fast...)
	for i := 0; i < 20; i++ { // 2 % above 500 ms: p99 misses, p95 does not
		slowTail[i*50] = 800
	}
	cases := []struct {
		name string
		s    *RouteStats
		miss []string
	}{
		{"met", stats(fast, 1, 0), nil},
		{"errors exactly at the bound are met", stats(fast, 1, 0), nil},
		{"errors above", stats(fast, 2, 0), []string{"errors = 0.200% > 0.100% (2 of 1000)"}},
		{"429s are not errors", stats(fast, 0, 300), nil},
		{"p99 missed", stats(slowTail, 0, 0), []string{"p99 = 800.00ms > 500.00ms"}},
		{"nothing measured", &RouteStats{}, []string{"no request was measured"}},
	}
	for _, tc := range cases {
		if got := slo.Check(tc.s); !reflect.DeepEqual(got, tc.miss) {
			t.Errorf("%s: Check = %q, want %q", tc.name, got, tc.miss)
		}
	}
	lim, _ := ParseSLO("limited=1%")
	if got := lim.Check(stats(fast, 0, 11)); len(got) != 1 {
		t.Errorf("limited=1%% with 1.1%% 429s: Check = %q, want one miss", got)
	}
	if got := SLO(nil).Check(&RouteStats{}); got != nil {
		t.Errorf("empty SLO: Check = %q, want nothing", got)
	}
	if s := slo.String(); s != "p95=200ms,p99=500ms,errors=0.1%" {
		t.Errorf("String = %q", s)
	}
}
