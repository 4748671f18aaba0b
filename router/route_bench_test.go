package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shardwire/shardwire/shardmap"
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

// BenchmarkRouteInsert100 plans a seen 100-row INSERT with literal keys: the multi-row fast
// path, which must not pay for the split data it carries.
func BenchmarkRouteInsert100(b *testing.B) {
	m := routeTestMap()
	r := New(Config{})
	q := insertRows(100)
	r.Route(q, Session{}, m)
	b.ReportAllocs()
	for b.Loop() {
		r.Route(q, Session{}, m)
	}
}

// BenchmarkRowShards100 reads the shard of each row of a 100-row INSERT from its literals.
func BenchmarkRowShards100(b *testing.B) {
	m := routeTestMap()
	q := insertRows(100)
	split := New(Config{}).Route(q, Session{}, m).Split
	dst := make([]shardmap.Shard, 0, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		dst, _ = split.RowShards(q, nil, dst[:0])
	}
}

// BenchmarkRender100 renders every other row of a 100-row INSERT (one group's part of two).
func BenchmarkRender100(b *testing.B) {
	m := routeTestMap()
	q := insertRows(100)
	split := New(Config{}).Route(q, Session{}, m).Split
	var rows []int
	for i := 0; i < 100; i += 2 {
		rows = append(rows, i)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		split.Render(q, rows)
	}
}

// BenchmarkRender100Params renders every other row of a prepared 100-row INSERT of
// parameters, renumbering them.
func BenchmarkRender100Params(b *testing.B) {
	m := routeTestMap()
	var sb strings.Builder
	sb.WriteString("INSERT INTO invoices (customer_id, id, amount) VALUES ")
	vals := make([]string, 0, 300)
	for i := 0; i < 100; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "($%d, $%d, $%d)", 3*i+1, 3*i+2, 3*i+3)
		vals = append(vals, fmt.Sprint(i), "1", "2")
	}
	q := sb.String()
	split := New(Config{}).Prepare(q, m).Plan(textParams(vals...), Session{}, m).Split
	var rows []int
	for i := 0; i < 100; i += 2 {
		rows = append(rows, i)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		split.Render(q, rows)
	}
}
