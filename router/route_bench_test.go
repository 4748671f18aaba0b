package router

import (
	"testing"
)

// BenchmarkRoute plans the golden cases' strings, every shape seen before (the hot path).
// Strings the parser rejects are left out: they are never cached.
func BenchmarkRoute(b *testing.B) {
	all := loadRouteCases(b)
	m := routeTestMap()
	r := New(Config{})
	var cases []routeCase
	for _, c := range all {
		if p := r.Route(c.SQL, c.session(), m); p.Err == nil || p.Err.Code != CodeSyntaxError {
			cases = append(cases, c)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := &cases[i%len(cases)]
		r.Route(c.SQL, c.session(), m)
		i++
	}
}

// BenchmarkRoutePgbench plans pgbench's select with a literal, shape seen before.
func BenchmarkRoutePgbench(b *testing.B) {
	m := routeTestMap()
	r := New(Config{})
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = 123"
	r.Route(q, Session{}, m)
	b.ReportAllocs()
	for b.Loop() {
		r.Route(q, Session{}, m)
	}
}

// BenchmarkRouteInsert plans a seen multi-column INSERT with its key.
func BenchmarkRouteInsert(b *testing.B) {
	m := routeTestMap()
	r := New(Config{})
	const q = "INSERT INTO invoices (customer_id, amount, status, due_date) VALUES (42, 10.50, 'open', '2025-01-31')"
	r.Route(q, Session{}, m)
	b.ReportAllocs()
	for b.Loop() {
		r.Route(q, Session{}, m)
	}
}

// BenchmarkRouteParallel plans the golden cases (as BenchmarkRoute) from every P, sharing
// one router: cache lookups take no lock.
func BenchmarkRouteParallel(b *testing.B) {
	all := loadRouteCases(b)
	m := routeTestMap()
	r := New(Config{})
	var cases []routeCase
	for _, c := range all {
		if p := r.Route(c.SQL, c.session(), m); p.Err == nil || p.Err.Code != CodeSyntaxError {
			cases = append(cases, c)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c := &cases[i%len(cases)]
			r.Route(c.SQL, c.session(), m)
			i++
		}
	})
}

// BenchmarkPrepared plans a prepared statement at Bind with a text parameter.
func BenchmarkPrepared(b *testing.B) {
	m := routeTestMap()
	r := New(Config{})
	st := r.Prepare("SELECT abalance FROM pgbench_accounts WHERE aid = $1", m)
	params := textParams("123")
	b.ReportAllocs()
	for b.Loop() {
		st.Plan(params, Session{}, m)
	}
}

// BenchmarkPrepareCached looks a Parse's text up in the prepared-statement cache.
func BenchmarkPrepareCached(b *testing.B) {
	m := routeTestMap()
	r := New(Config{})
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	r.Prepare(q, m)
	b.ReportAllocs()
	for b.Loop() {
		r.Prepare(q, m)
	}
}

// BenchmarkFirstParse plans a shape never seen: parse, analysis, cache insertion.
func BenchmarkFirstParse(b *testing.B) {
	m := routeTestMap()
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = 123"
	b.ReportAllocs()
	for b.Loop() {
		New(Config{CacheSize: 1}).Route(q, Session{}, m)
	}
}
