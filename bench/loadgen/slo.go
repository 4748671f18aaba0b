package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Objective is one bound of an SLO, checked against the total of a run.
type Objective struct {
	// Name is how it was spelled: p50, p95, p99.9, max, errors or limited.
	Name string
	// Quantile is in (0, 1] for latency objectives (max is 1), 0 for rate objectives.
	Quantile float64
	// Latency is the bound for latency objectives.
	Latency time.Duration
	// Rate is the bound for errors (errors / requests) or limited (429s / requests), a fraction.
	Rate float64
}

// SLO is a list of objectives, e.g. from --slo p95=200ms,p99=500ms,errors=0.1%.
type SLO []Objective

// ParseSLO parses comma-separated name=bound pairs: pNN[.N]=duration and max=duration bound
// latency (p95=200ms), errors=rate bounds the error rate and limited=rate the share of 429
// answers, where rate is a percentage (0.1%) or a fraction (0.001). Bounds are inclusive.
func ParseSLO(s string) (SLO, error) {
	var slo SLO
	for part := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || val == "" {
			return nil, fmt.Errorf("slo: %q is not name=bound", part)
		}
		o := Objective{Name: name}
		switch {
		case name == "errors" || name == "limited":
			r, err := parseRate(val)
			if err != nil {
				return nil, fmt.Errorf("slo: %s: %w", name, err)
			}
			o.Rate = r
		case name == "max" || strings.HasPrefix(name, "p"):
			o.Quantile = 1
			if name != "max" {
				p, err := strconv.ParseFloat(name[1:], 64)
				if err != nil || p <= 0 || p > 100 {
					return nil, fmt.Errorf("slo: %q: want p followed by a percentile in (0, 100], e.g. p99.9", name)
				}
				o.Quantile = p / 100
			}
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("slo: %s: want a positive duration such as 200ms, got %q", name, val)
			}
			o.Latency = d
		default:
			return nil, fmt.Errorf("slo: unknown objective %q (want pNN, max, errors or limited)", name)
		}
		slo = append(slo, o)
	}
	return slo, nil
}

// parseRate reads "0.1%" or "0.001" as a fraction in [0, 1].
func parseRate(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, fmt.Errorf("want a rate such as 0.1%% or 0.001, got %q", s)
	}
	if pct {
		v /= 100
	}
	if v < 0 || v > 1 {
		return 0, fmt.Errorf("rate %q is outside 0..100%%", s)
	}
	return v, nil
}

// Check returns one line per objective the total misses; none means the SLO is met. A run
// that measured no request misses every SLO.
func (slo SLO) Check(total *RouteStats) []string {
	if len(slo) == 0 {
		return nil
	}
	if total.Count == 0 {
		return []string{"no request was measured"}
	}
	var miss []string
	for _, o := range slo {
		switch {
		case o.Quantile > 0:
			got := total.Latency.Quantile(o.Quantile)
			if o.Name == "max" {
				got = total.Latency.Max()
			}
			if got > o.Latency {
				miss = append(miss, fmt.Sprintf("%s = %s > %s", o.Name, fmtMS(got), fmtMS(o.Latency)))
			}
		default:
			n := total.Errors
			if o.Name == "limited" {
				n = total.Limited
			}
			if r := float64(n) / float64(total.Count); r > o.Rate {
				miss = append(miss, fmt.Sprintf("%s = %.3f%% > %.3f%% (%d of %d)", o.Name, 100*r, 100*o.Rate, n, total.Count))
			}
		}
	}
	sort.Strings(miss)
	return miss
}

// String formats the SLO as ParseSLO reads it.
func (slo SLO) String() string {
	parts := make([]string, len(slo))
	for i, o := range slo {
		if o.Quantile > 0 {
			parts[i] = o.Name + "=" + o.Latency.String()
		} else {
			parts[i] = o.Name + "=" + strconv.FormatFloat(100*o.Rate, 'f', -1, 64) + "%"
		}
	}
	return strings.Join(parts, ",")
}
