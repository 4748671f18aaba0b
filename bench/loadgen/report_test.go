package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fixedResult is a small result with known figures.
func fixedResult() *Result {
	rec := NewRecorder()
	for i := 0; i < 100; i++ {
		rec.Record(RouteList, Outcome{Status: 200}, time.Duration(i+1)*time.Millisecond)
	}
	rec.Record(RouteCreate, Outcome{Status: 201}, 20*time.Millisecond)
	rec.Record(RouteCreate, Outcome{Status: 500, Detail: "internal"}, 30*time.Millisecond)
	rec.Record(RoutePay, Outcome{Status: 409, Detail: "invoice_paid"}, 5*time.Millisecond)
	rec.Record(RoutePay, Outcome{Status: 429, Detail: "rate_limited"}, time.Millisecond)
	rec.RecordLag(2 * time.Millisecond)
	res := &Result{Load: Load{Rate: 52, Arrival: ArrivalPoisson, Duration: 2 * time.Second, Warmup: time.Second, Seed: 7},
		Start: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	res.Routes, res.ErrorKinds, res.SendLag = rec.snapshot()
	return res
}

// near reports whether got is within 1 % of want (the histogram's precision).
func near(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }

func TestReportFigures(t *testing.T) {
	slo, _ := ParseSLO("p95=200ms,errors=0.1%")
	rep := NewReport(fixedResult(), RunInfo{Target: "http://x", Customers: 100, ZipfS: 1.1, Mix: DefaultMix()}, slo)
	if rep.Mode != "open" || rep.Rate != 52 || rep.Arrival != "poisson" || rep.Start != "2026-11-24T12:00:00Z" {
		t.Errorf("header: %+v", rep)
	}
	if len(rep.Routes) != int(numRoutes) || rep.Routes[RouteList].Route != "list_invoices" {
		t.Fatalf("routes: %+v", rep.Routes)
	}
	list := rep.Routes[RouteList]
	if list.Count != 100 || list.Throughput != 50 || !near(list.Latency.P50, 50) || !near(list.Latency.P95, 95) ||
		!near(list.Latency.P99, 99) || list.Latency.Max != 100 {
		t.Errorf("list row: %+v", list)
	}
	tot := rep.Total
	if tot.Count != 104 || tot.OK != 101 || tot.Errors != 1 || tot.Conflict != 1 || tot.Limited != 1 || tot.Throughput != 52 {
		t.Errorf("total: %+v", tot)
	}
	if want := 1.0 / 104; tot.ErrorRate != want {
		t.Errorf("error rate %g, want %g (409 and 429 are not errors)", tot.ErrorRate, want)
	}
	if len(rep.ErrorKinds) != 1 || rep.ErrorKinds[0] != (ErrorKind{"create_invoice: " + http.StatusText(500) + ": internal", 1}) {
		t.Errorf("error kinds: %+v", rep.ErrorKinds)
	}
	if rep.SLO == nil || rep.SLO.Met || len(rep.SLO.Missed) != 1 || !strings.HasPrefix(rep.SLO.Missed[0], "errors = 0.962%") {
		t.Errorf("slo: %+v", rep.SLO)
	}
}

func TestReportTable(t *testing.T) {
	row := func(name string, n, errs, c409, c429 int64, rps, p50, p95, p99, mx float64) RouteReport {
		r := RouteReport{Route: name, Count: n, Throughput: rps, Errors: errs, Conflict: c409, Limited: c429,
			Latency: LatencyMS{P50: p50, P95: p95, P99: p99, Max: mx}}
		if n > 0 {
			r.ErrorRate = float64(errs) / float64(n)
		}
		return r
	}
	rep := &Report{Target: "http://x", Mode: "closed", Workers: 8, WarmupS: 1, DurationS: 2, Customers: 100, ZipfS: 1.1,
		Seed: 7, Mix: DefaultMix().String(),
		Routes: []RouteReport{
			row("list_invoices", 100, 0, 0, 0, 50, 50, 95, 99, 100),
			row("create_invoice", 2, 1, 0, 0, 1, 20, 30, 30, 30),
			row("record_payment", 2, 0, 1, 1, 1, 1, 5, 5, 5),
		},
		Total:      row("total", 104, 1, 1, 1, 52, 48, 95, 99.5, 100),
		ErrorKinds: []ErrorKind{{"create_invoice: Internal Server Error: internal", 1}},
		SLO:        &SLOReport{Spec: "p99=50ms", Missed: []string{"p99 = 99.50ms > 50.00ms"}},
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `http://x: closed loop, 8 workers, warm-up 1s, measured 2s, 100 customers (zipf s=1.1), seed 7, mix list=40,get=25,summary=10,create=15,pay=10
route           count  req/s  p50 ms  p95 ms  p99 ms  max ms  errors  error %  409  429
list_invoices     100   50.0   50.00   95.00   99.00  100.00       0    0.000    0    0
create_invoice      2    1.0   20.00   30.00   30.00   30.00       1   50.000    0    0
record_payment      2    1.0    1.00    5.00    5.00    5.00       0    0.000    1    1
total             104   52.0   48.00   95.00   99.50  100.00       1    0.962    1    1
error: 1 × create_invoice: Internal Server Error: internal
SLO p99=50ms: MISSED: p99 = 99.50ms > 50.00ms
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestReportJSON(t *testing.T) {
	slo, _ := ParseSLO("p99=500ms")
	rep := NewReport(fixedResult(), RunInfo{Target: "http://x", Customers: 100, ZipfS: 1.1, Mix: DefaultMix()}, slo)
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	total := back["total"].(map[string]any)
	lat := total["latency_ms"].(map[string]any)
	if total["count"].(float64) != 104 || total["limited_429"].(float64) != 1 || total["conflict_409"].(float64) != 1 ||
		!near(lat["p99"].(float64), 99) || lat["max"].(float64) != 100 {
		t.Errorf("total: %v", total)
	}
	if s := back["slo"].(map[string]any); s["met"] != true || s["spec"] != "p99=500ms" {
		t.Errorf("slo: %v", s)
	}
	if _, ok := back["send_lag_ms"]; !ok {
		t.Error("open-loop report lacks send_lag_ms")
	}
}
