package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Route is one kind of request in the mix.
type Route int

// The routes of the mix, in report order.
const (
	RouteList    Route = iota // GET /v1/customers/{id}/invoices
	RouteGet                  // GET /v1/customers/{id}/invoices/{invoice}
	RouteSummary              // GET /v1/customers/{id}/summary
	RouteCreate               // POST /v1/customers/{id}/invoices
	RoutePay                  // POST /v1/customers/{id}/invoices/{invoice}/payments
	numRoutes
)

var routeNames = [numRoutes]string{"list_invoices", "get_invoice", "summary", "create_invoice", "record_payment"}

// String returns the route's report name.
func (r Route) String() string {
	if r < 0 || r >= numRoutes {
		return "route(" + strconv.Itoa(int(r)) + ")"
	}
	return routeNames[r]
}

// parseRoute accepts a report name or its short form (list, get, summary, create, pay).
func parseRoute(s string) (Route, error) {
	short := map[string]Route{"list": RouteList, "get": RouteGet, "summary": RouteSummary, "create": RouteCreate, "pay": RoutePay, "payment": RoutePay}
	if r, ok := short[s]; ok {
		return r, nil
	}
	for r, n := range routeNames {
		if n == s {
			return Route(r), nil
		}
	}
	return 0, fmt.Errorf("unknown route %q (want list, get, summary, create or pay)", s)
}

// Mix holds the relative weight of each route. The zero Mix is invalid; see DefaultMix.
type Mix [numRoutes]int

// DefaultMix is the platform's request mix from issue 5, in percent.
func DefaultMix() Mix {
	var m Mix
	m[RouteList], m[RouteGet], m[RouteSummary], m[RouteCreate], m[RoutePay] = 40, 25, 10, 15, 10
	return m
}

// ParseMix parses "list=40,get=25,summary=10,create=15,pay=10"; routes left out weigh 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix: %q is not route=weight", part)
		}
		r, err := parseRoute(strings.TrimSpace(k))
		if err != nil {
			return Mix{}, fmt.Errorf("mix: %w", err)
		}
		w, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || w < 0 {
			return Mix{}, fmt.Errorf("mix: weight of %s: want an integer >= 0, got %q", r, v)
		}
		m[r] = w
	}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("mix: %q has no positive weight", s)
	}
	return m, nil
}

func (m Mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// Pick draws a route with probability weight/total.
func (m Mix) Pick(rng *rand.Rand) Route {
	x := rng.IntN(m.total())
	for r, w := range m {
		if x < w {
			return Route(r)
		}
		x -= w
	}
	return numRoutes - 1 // unreachable: x < total
}

// String formats the mix as ParseMix reads it.
func (m Mix) String() string {
	short := [numRoutes]string{"list", "get", "summary", "create", "pay"}
	parts := make([]string, 0, numRoutes)
	for r, w := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", short[r], w))
	}
	return strings.Join(parts, ",")
}
