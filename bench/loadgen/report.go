package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is a run's summary as loadgen prints it and writes it with --json.
type Report struct {
	Target      string        `json:"target"`
	Mode        string        `json:"mode"` // "open" or "closed"
	Rate        float64       `json:"rate,omitempty"`
	Arrival     string        `json:"arrival,omitempty"`
	Workers     int           `json:"workers,omitempty"`
	WarmupS     float64       `json:"warmup_s"`
	DurationS   float64       `json:"duration_s"`
	Customers   int64         `json:"customers"`
	ZipfS       float64       `json:"zipf_s"`
	Seed        uint64        `json:"seed"`
	Mix         string        `json:"mix"`
	Start       string        `json:"start"` // RFC 3339, UTC
	Routes      []RouteReport `json:"routes"`
	Total       RouteReport   `json:"total"`
	SendLag     *LatencyMS    `json:"send_lag_ms,omitempty"`
	ErrorKinds  []ErrorKind   `json:"error_kinds"`
	Interrupted bool          `json:"interrupted,omitempty"`
	SLO         *SLOReport    `json:"slo,omitempty"`
}

// RouteReport is one row of the report.
type RouteReport struct {
	Route string `json:"route"`
	Count int64  `json:"count"`
	// Throughput is answered requests per second of the measured window.
	Throughput float64   `json:"throughput"`
	OK         int64     `json:"ok"`
	Conflict   int64     `json:"conflict_409"`
	Limited    int64     `json:"limited_429"`
	Errors     int64     `json:"errors"`
	ErrorRate  float64   `json:"error_rate"` // errors / count, a fraction
	Latency    LatencyMS `json:"latency_ms"`
}

// LatencyMS holds latency figures in milliseconds.
type LatencyMS struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ErrorKind counts one kind of error.
type ErrorKind struct {
	Kind  string `json:"kind"`
	Count int64  `json:"count"`
}

// SLOReport is the verdict on --slo.
type SLOReport struct {
	Spec   string   `json:"spec"`
	Met    bool     `json:"met"`
	Missed []string `json:"missed"`
}

// RunInfo is what a report says about the run besides the measurements.
type RunInfo struct {
	Target    string
	Customers int64
	ZipfS     float64
	Mix       Mix
}

// NewReport summarises res; slo may be empty.
func NewReport(res *Result, info RunInfo, slo SLO) *Report {
	l := res.Load
	rep := &Report{Target: info.Target, Mode: "closed", Workers: l.Workers,
		WarmupS: l.Warmup.Seconds(), DurationS: l.Duration.Seconds(), Customers: info.Customers,
		ZipfS: info.ZipfS, Seed: l.Seed, Mix: info.Mix.String(),
		Start: res.Start.UTC().Format(time.RFC3339), Interrupted: res.Interrupted, ErrorKinds: []ErrorKind{}}
	if l.Rate > 0 {
		rep.Mode, rep.Rate, rep.Arrival = "open", l.Rate, l.Arrival.String()
		lag := latencyMS(&res.SendLag)
		rep.SendLag = &lag
	}
	for r := range res.Routes {
		rep.Routes = append(rep.Routes, routeReport(Route(r).String(), &res.Routes[r], l.Duration))
	}
	total := res.Total()
	rep.Total = routeReport("total", &total, l.Duration)
	for k, n := range res.ErrorKinds {
		rep.ErrorKinds = append(rep.ErrorKinds, ErrorKind{Kind: k, Count: n})
	}
	sort.Slice(rep.ErrorKinds, func(i, j int) bool {
		a, b := rep.ErrorKinds[i], rep.ErrorKinds[j]
		return a.Count > b.Count || a.Count == b.Count && a.Kind < b.Kind
	})
	if len(slo) > 0 {
		missed := slo.Check(&total)
		rep.SLO = &SLOReport{Spec: slo.String(), Met: len(missed) == 0, Missed: append([]string{}, missed...)}
	}
	return rep
}

func routeReport(name string, s *RouteStats, window time.Duration) RouteReport {
	rr := RouteReport{Route: name, Count: s.Count, OK: s.OK, Conflict: s.Conflict, Limited: s.Limited,
		Errors: s.Errors, Latency: latencyMS(&s.Latency)}
	if window > 0 {
		rr.Throughput = float64(s.Count) / window.Seconds()
	}
	if s.Count > 0 {
		rr.ErrorRate = float64(s.Errors) / float64(s.Count)
	}
	return rr
}

func latencyMS(h *Histogram) LatencyMS {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return LatencyMS{P50: ms(h.Quantile(0.50)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)),
		Max: ms(h.Max()), Mean: ms(h.Mean())}
}

// fmtMS formats a duration in milliseconds with two decimals, e.g. "12.34ms".
func fmtMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) + "ms"
}

// WriteTable prints the report as an aligned table, followed by the error kinds and the SLO
// verdict.
func (rep *Report) WriteTable(w io.Writer) error {
	load := fmt.Sprintf("closed loop, %d workers", rep.Workers)
	if rep.Mode == "open" {
		load = fmt.Sprintf("open loop, %g req/s (%s arrivals)", rep.Rate, rep.Arrival)
	}
	fmt.Fprintf(w, "%s: %s, warm-up %gs, measured %gs, %d customers (zipf s=%g), seed %d, mix %s\n",
		rep.Target, load, rep.WarmupS, rep.DurationS, rep.Customers, rep.ZipfS, rep.Seed, rep.Mix)
	rows := [][]string{{"route", "count", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "error %", "409", "429"}}
	row := func(r RouteReport) {
		rows = append(rows, []string{r.Route, strconv.FormatInt(r.Count, 10), fmt.Sprintf("%.1f", r.Throughput),
			fmt.Sprintf("%.2f", r.Latency.P50), fmt.Sprintf("%.2f", r.Latency.P95), fmt.Sprintf("%.2f", r.Latency.P99),
			fmt.Sprintf("%.2f", r.Latency.Max), strconv.FormatInt(r.Errors, 10), fmt.Sprintf("%.3f", 100*r.ErrorRate),
			strconv.FormatInt(r.Conflict, 10), strconv.FormatInt(r.Limited, 10)})
	}
	for _, r := range rep.Routes {
		row(r)
	}
	row(rep.Total)
	if _, err := io.WriteString(w, alignTable(rows)); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if rep.SendLag != nil {
		fmt.Fprintf(w, "send lag behind schedule: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", rep.SendLag.P50, rep.SendLag.P99, rep.SendLag.Max)
	}
	for _, k := range rep.ErrorKinds {
		fmt.Fprintf(w, "error: %d × %s\n", k.Count, k.Kind)
	}
	if rep.Interrupted {
		fmt.Fprintln(w, "interrupted: the figures cover part of the run")
	}
	if rep.SLO != nil {
		if rep.SLO.Met {
			fmt.Fprintf(w, "SLO %s: met\n", rep.SLO.Spec)
		} else {
			fmt.Fprintf(w, "SLO %s: MISSED: ", rep.SLO.Spec)
			for i, m := range rep.SLO.Missed {
				if i > 0 {
					fmt.Fprint(w, "; ")
				}
				fmt.Fprint(w, m)
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}

// alignTable lays rows out in columns two spaces apart: the first column left-aligned, the
// others (numbers) right-aligned.
func alignTable(rows [][]string) string {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len(c))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
