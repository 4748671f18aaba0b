package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

const scatterCasesFile = "testdata/scatter_cases.json"

// scatterCase is one line of testdata/scatter_cases.json: a keyless read, the MergeSpec
// planScatter returns (or its error), and ScatterSQL's rewrite for a group owning {0,1,2,3}.
type scatterCase struct {
	Comment   string      `json:"comment"`
	SQL       string      `json:"sql"`
	Merge     *MergeSpec  `json:"merge,omitempty"`
	Error     *RouteError `json:"error,omitempty"`
	Rewritten string      `json:"rewritten,omitempty"`
}

// scatterTestMap shards invoices, invoice_lines, customers and payments by customer_id, and
// payments by tenant (a different key name).
func scatterTestMap() *shardmap.Map {
	return &shardmap.Map{
		Epoch:  1,
		Groups: []shardmap.Group{{Name: "g0", Writer: "a:1"}, {Name: "g1", Writer: "b:1"}},
		Tables: map[string]string{
			"invoices":      "customer_id",
			"invoice_lines": "customer_id",
			"customers":     "customer_id",
			"payments":      "tenant",
		},
	}
}

func loadScatterCases(tb testing.TB) []scatterCase {
	tb.Helper()
	data, err := os.ReadFile(scatterCasesFile)
	if err != nil {
		tb.Fatal(err)
	}
	var cases []scatterCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var c scatterCase
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			tb.Fatalf("%s:%d: %v", scatterCasesFile, line, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return cases
}

// runScatterCase computes a case's results from its SQL.
func runScatterCase(t *testing.T, sql string, m *shardmap.Map) scatterCase {
	t.Helper()
	got := scatterCase{SQL: sql}
	tree, err := pg.Parse(sql)
	if err != nil {
		t.Fatalf("parse %q: %v", sql, err)
	}
	stmt := tree.GetStmts()[0].GetStmt().GetSelectStmt()
	if stmt == nil {
		t.Fatalf("%q is not a SELECT", sql)
	}
	before := proto2JSON(t, tree)
	spec, rerr := planScatter(stmt, m)
	if after := proto2JSON(t, tree); after != before {
		t.Errorf("planScatter modified the statement %q", sql)
	}
	if rerr != nil {
		got.Error = rerr
	} else {
		got.Merge = spec
	}
	out, err := ScatterSQL(sql, shardmap.Of(0, 1, 2, 3), m)
	switch {
	case rerr != nil && err == nil:
		t.Errorf("%q: planScatter rejects (%v) but ScatterSQL rewrites to %q", sql, rerr, out)
	case rerr == nil && err != nil:
		t.Errorf("%q: ScatterSQL fails: %v", sql, err)
	case err == nil:
		got.Rewritten = out
		checkRewriteShape(t, out, spec)
	}
	return got
}

func proto2JSON(t *testing.T, tree *pg.ParseResult) string {
	t.Helper()
	s, err := pg.Deparse(tree)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkRewriteShape checks that the rewrite parses again and has the columns the spec says.
func checkRewriteShape(t *testing.T, sql string, spec *MergeSpec) {
	t.Helper()
	tree, err := pg.Parse(sql)
	if err != nil {
		t.Errorf("rewrite %q does not parse: %v", sql, err)
		return
	}
	stmt := tree.GetStmts()[0].GetStmt().GetSelectStmt()
	if stmt.GetLimitOffset() != nil {
		t.Errorf("rewrite %q keeps an OFFSET", sql)
	}
	if spec.Star {
		return
	}
	if n := len(stmt.GetTargetList()); n != spec.Columns+spec.Hidden {
		t.Errorf("rewrite %q has %d columns, spec says %d + %d hidden", sql, n, spec.Columns, spec.Hidden)
	}
	for i, n := range stmt.GetTargetList() {
		name := n.GetResTarget().GetName()
		if hidden := strings.HasPrefix(name, "_sw_h"); hidden != (i >= spec.Columns) {
			t.Errorf("rewrite %q: column %d named %q", sql, i+1, name)
		}
	}
}

func TestScatterCases(t *testing.T) {
	m := scatterTestMap()
	cases := loadScatterCases(t)
	if len(cases) < 30 {
		t.Fatalf("only %d scatter cases", len(cases))
	}
	var out bytes.Buffer
	for _, c := range cases {
		got := runScatterCase(t, c.SQL, m)
		got.Comment = c.Comment
		if *update {
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
			out.WriteByte('\n')
			continue
		}
		if !reflect.DeepEqual(got.Merge, c.Merge) || !reflect.DeepEqual(got.Error, c.Error) || got.Rewritten != c.Rewritten {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(c)
			t.Errorf("%s\n got: %s\nwant: %s", c.Comment, gj, wj)
		}
	}
	if *update {
		if err := os.WriteFile(scatterCasesFile, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScatterCache(t *testing.T) {
	m := scatterTestMap()
	c := NewScatterCache(4)
	sqls := []string{
		"SELECT id FROM invoices ORDER BY id LIMIT 5",
		"SELECT count(*) FROM invoices",
		"SELECT avg(amount) FROM invoices",
		"SELECT id FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id", // rejected
		"SELECT DISTINCT status FROM invoices",
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				sql := sqls[(g+i)%len(sqls)]
				owned := shardmap.Of(shardmap.Shard(i % 3))
				got, err := c.ScatterSQL(sql, owned, m)
				want, werr := ScatterSQL(sql, owned, m)
				if got != want || (err == nil) != (werr == nil) {
					t.Errorf("%q %v: cached %q %v, direct %q %v", sql, owned, got, err, want, werr)
					return
				}
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n > 4 {
		t.Errorf("cache holds %d entries, bound 4", n)
	}
}
