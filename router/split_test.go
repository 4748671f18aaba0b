package router

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shardwire/shardwire/shardmap"
)

// TestInsertSplitPlan checks which INSERTs a plan offers to split, and that the single-group
// routing of all of them is what it was.
func TestInsertSplitPlan(t *testing.T) {
	m := copyTestMap()
	r := New(Config{})
	for _, tc := range []struct {
		sql       string
		sess      Session
		want      string // the plan's String
		rows      int    // Split.Rows, 0 for no Split
		returning bool
	}{
		{sql: "INSERT INTO invoices (customer_id, amount) VALUES (1, 10), (5, 11)", want: "Write Shards{1,5}", rows: 2},
		{sql: "INSERT INTO invoices (customer_id, amount) VALUES (1, 10), (17, 11)", want: "Write Shards{1}", rows: 2},
		{sql: "INSERT INTO invoices (customer_id, amount) VALUES (1, 10)", want: "Write Shards{1}"},
		{sql: "INSERT INTO invoices (customer_id) VALUES (1), (2), (3) RETURNING id, customer_id", want: "Write Shards{1,2,3}", rows: 3, returning: true},
		{sql: "insert into public.invoices as i (customer_id, amount) values (-1, 10), ('2', 11) on conflict do nothing",
			want: "Write Shards{2,15}", rows: 2},
		{sql: "INSERT INTO invoices (customer_id, id, amount) VALUES (5, 1, 10), (6, 2, 11) ON CONFLICT (customer_id, id) DO UPDATE SET amount = EXCLUDED.amount",
			want: "Write Shards{5,6}", rows: 2},
		{sql: "INSERT INTO customers (customer_id, name) VALUES (21, 'x'), (22, 'y') ON CONFLICT (name) DO UPDATE SET customer_id = EXCLUDED.customer_id",
			want: "Write Shards{5,6}", rows: 2},
		{sql: "INSERT INTO invoices (customer_id, id) OVERRIDING SYSTEM VALUE VALUES (1, 1), (2, 2)", want: "Write Shards{1,2}", rows: 2},
		{sql: "INSERT INTO invoices VALUES (1, 3, 'n'), (2, 4, 'm')", want: "Write Shards{3,4}", rows: 2}, // key second (copyTestMap)
		{sql: "WITH s AS (SELECT 'open' AS st) INSERT INTO invoices (customer_id, status) VALUES (1, (SELECT st FROM s)), (2, 'x')",
			want: "Write Shards{1,2}", rows: 2},
		// Not split.
		{sql: "/* shard_key=2 */ INSERT INTO invoices (customer_id) VALUES (1), (5)", want: "Write Shards{2}"},
		{sql: "INSERT INTO invoices (customer_id) VALUES (1), (5)", sess: Session{ShardKey: 9, HasShardKey: true}, want: "Write Shards{9}"},
		{sql: "INSERT INTO invoices (customer_id, amount) VALUES (1, 10), (5, (SELECT max(amount) FROM payments WHERE customer_id = 5))",
			want: "Write Shards{1,5}"},
		{sql: "WITH d AS (DELETE FROM settings_log RETURNING 1) INSERT INTO invoices (customer_id) VALUES (1), (5)",
			want: "Write Reject 0A000: joins between sharded and unsharded tables are not supported"},
		{sql: "WITH d AS (DELETE FROM payments WHERE customer_id = 1 RETURNING 1) INSERT INTO invoices (customer_id) VALUES (1), (5)",
			want: "Write Shards{1,5}"},
		{sql: "WITH d AS (UPDATE pg_catalog.pg_settings SET setting = 'on' WHERE name = 'x' RETURNING 1) INSERT INTO invoices (customer_id) VALUES (1), (5)",
			want: "Write Shards{1,5}"},
		{sql: "INSERT INTO customers (customer_id, name) VALUES (21, 'x'), (22, 'y') ON CONFLICT (name) DO UPDATE SET customer_id = 5",
			want: "Write Shards{5,6}"},
		{sql: "INSERT INTO invoices (customer_id) SELECT 1 UNION ALL SELECT 2", want: "Write Reject 0A000: INSERT into sharded table invoices needs the shard key customer_id"},
		{sql: "INSERT INTO invoices (customer_id) VALUES (1), (2) LIMIT 1", want: "Write Shards{1,2}"},
		{sql: "INSERT INTO invoices (customer_id) (VALUES (1), (2))", want: "Write Shards{1,2}"},
		{sql: "INSERT INTO invoices (customer_id) VALUES (1), (2); SELECT 1", want: "Write Shards{1,2}"},
		{sql: "EXPLAIN ANALYZE INSERT INTO invoices (customer_id) VALUES (1), (2)", want: "Write Shards{1,2}"},
	} {
		p := r.Route(tc.sql, tc.sess, m)
		if got := p.String(); got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.sql, got, tc.want)
		}
		switch {
		case tc.rows == 0 && p.Split != nil:
			t.Errorf("%s: split %+v, want none", tc.sql, *p.Split)
		case tc.rows > 0 && (p.Split == nil || p.Split.Rows != tc.rows || p.Split.Returning != tc.returning):
			t.Errorf("%s: split %+v, want %d rows, returning %v", tc.sql, p.Split, tc.rows, tc.returning)
		}
	}
}

// TestInsertSplitShared checks that strings of one shape share the template's InsertSplit
// and that it reads each string's own literals, whatever their length.
func TestInsertSplitShared(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	short := "INSERT INTO invoices (customer_id, note) VALUES (1, 'a'), (5, 'b'), (-9, 'c')"
	long := "INSERT INTO invoices (customer_id, note) VALUES (1000017, 'a long note, with (parens) and $1'), (5, ''), (-3, 'x')"
	ps, pl := r.Route(short, Session{}, m), r.Route(long, Session{}, m)
	if ps.Split == nil || ps.Split != pl.Split {
		t.Fatalf("plans %s and %s do not share one split", ps.JSON(), pl.JSON())
	}
	for _, tc := range []struct {
		sql    string
		shards []shardmap.Shard
		render string
	}{
		{short, []shardmap.Shard{1, 5, 7}, "INSERT INTO invoices (customer_id, note) VALUES (1, 'a'), (-9, 'c')"},
		{long, []shardmap.Shard{1, 5, 13}, "INSERT INTO invoices (customer_id, note) VALUES (1000017, 'a long note, with (parens) and $1'), (-3, 'x')"},
	} {
		got, err := ps.Split.RowShards(tc.sql, nil, nil)
		if err != nil || !reflect.DeepEqual(got, tc.shards) {
			t.Errorf("RowShards(%s) = %v, %v; want %v", tc.sql, got, err, tc.shards)
		}
		text, params := ps.Split.Render(tc.sql, []int{0, 2})
		if text != tc.render || len(params) != 0 {
			t.Errorf("Render(%s) = %q %v, want %q", tc.sql, text, params, tc.render)
		}
		checkRender(t, tc.sql, []int{0, 2}, text, params)
	}
}

// TestRender renders parts of multi-row INSERTs and checks the text, the parameter map, and
// that the text parses to the original statement restricted to the rows.
func TestRender(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	for _, tc := range []struct {
		name   string
		sql    string
		rows   []int
		want   string
		params []int
	}{
		{"literals", "INSERT INTO invoices (customer_id, amount) VALUES (1, 10), (5, 11), (9, 12)", []int{1},
			"INSERT INTO invoices (customer_id, amount) VALUES (5, 11)", nil},
		{"literals, all rows", "INSERT INTO invoices (customer_id, amount) VALUES (1, 10),(5, 11),(9, 12)", []int{0, 1, 2},
			"INSERT INTO invoices (customer_id, amount) VALUES (1, 10), (5, 11), (9, 12)", nil},
		{"params", "INSERT INTO invoices (customer_id, amount) VALUES ($1, $2), ($3, $4), ($5, $6)", []int{0, 2},
			"INSERT INTO invoices (customer_id, amount) VALUES ($1, $2), ($3, $4)", []int{1, 2, 5, 6}},
		{"params out of order and reused", "INSERT INTO invoices (customer_id, amount, note) VALUES ($4, $2, $1), ($3, $2, $1)", []int{1},
			"INSERT INTO invoices (customer_id, amount, note) VALUES ($1, $2, $3)", []int{3, 2, 1}},
		{"RETURNING with params", "INSERT INTO invoices (customer_id, amount) VALUES ($1, $2), ($3, $4) RETURNING id, amount * $5 AS scaled",
			[]int{1}, "INSERT INTO invoices (customer_id, amount) VALUES ($1, $2) RETURNING id, amount * $3 AS scaled", []int{3, 4, 5}},
		{"ON CONFLICT DO UPDATE with params",
			"INSERT INTO invoices (customer_id, id, amount) VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT (customer_id, id) DO UPDATE SET amount = invoices.amount + $7 WHERE invoices.status <> $8 RETURNING $9::text",
			[]int{1},
			"INSERT INTO invoices (customer_id, id, amount) VALUES ($1, $2, $3) ON CONFLICT (customer_id, id) DO UPDATE SET amount = invoices.amount + $4 WHERE invoices.status <> $5 RETURNING $6::text",
			[]int{4, 5, 6, 7, 8, 9}},
		{"CTE with params", "WITH d AS (SELECT $7::text AS status) INSERT INTO invoices (customer_id, amount, status) VALUES ($1, $2, (SELECT status FROM d)), ($3, $4, $8), ($5, $6, 'x')",
			[]int{1, 2},
			"WITH d AS (SELECT $1::text AS status) INSERT INTO invoices (customer_id, amount, status) VALUES ($2, $3, $4), ($5, $6, 'x')",
			[]int{7, 3, 4, 8, 5, 6}},
		{"comments with $1 and ),(", "/* $1 ),( */ INSERT INTO invoices (customer_id, amount) -- $2 ),(\nVALUES /* ),( $3 */ ($1, 'a'), /* $9 */ ($2, 'b') -- $4\n;",
			[]int{1},
			"/* $1 ),( */ INSERT INTO invoices (customer_id, amount) -- $2 ),(\nVALUES /* ),( $3 */ ($1, 'b') -- $4\n;", []int{2}},
		{"strings with $1 and ),(", "INSERT INTO invoices (customer_id, note) VALUES ($2, '$1 ),( ''$3'''), ($1, E'\\'),(\\'$2'), ($3, $$),($1$$), ($4, $q$ $2 $q$)",
			[]int{1, 3},
			"INSERT INTO invoices (customer_id, note) VALUES ($1, E'\\'),(\\'$2'), ($2, $q$ $2 $q$)", []int{1, 4}},
		{"casts and nested parens", "INSERT INTO invoices (customer_id, amount) VALUES ($1::bigint, (($2))), (CAST($3 AS int8), coalesce(($4), (0)))",
			[]int{1}, "INSERT INTO invoices (customer_id, amount) VALUES (CAST($1 AS int8), coalesce(($2), (0)))", []int{3, 4}},
		{"quoted names and schema", `INSERT INTO public."invoices" AS "i" ("customer_id", "Amount") VALUES (1, 2), (3, 4) RETURNING "i"."Amount"`,
			[]int{0}, `INSERT INTO public."invoices" AS "i" ("customer_id", "Amount") VALUES (1, 2) RETURNING "i"."Amount"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := r.Prepare(tc.sql, m).Plan(nil, Session{}, m)
			if p.Split == nil {
				// Parameters unbound: route the text with its parameters as text values.
				n := strings.Count(tc.sql, "$")
				vals := make([]string, n)
				for i := range vals {
					vals[i] = fmt.Sprint(i + 1)
				}
				p = r.Prepare(tc.sql, m).Plan(textParams(vals...), Session{}, m)
			}
			if p.Split == nil {
				t.Fatalf("no split: %s", p.JSON())
			}
			text, params := p.Split.Render(tc.sql, tc.rows)
			if text != tc.want || !reflect.DeepEqual(params, tc.params) {
				t.Errorf("Render(%v):\n got  %q %v\n want %q %v", tc.rows, text, params, tc.want, tc.params)
			}
			checkRender(t, tc.sql, tc.rows, text, params)
		})
	}
}

// TestRenderBadInput: rows that are not ascending, out of range or empty, and a text of
// another shape render nothing.
func TestRenderBadInput(t *testing.T) {
	m := routeTestMap()
	const sql = "INSERT INTO invoices (customer_id) VALUES (1), (2), (3)"
	p := New(Config{}).Route(sql, Session{}, m)
	if p.Split == nil {
		t.Fatal(p.JSON())
	}
	for _, rows := range [][]int{nil, {}, {1, 0}, {1, 1}, {-1}, {3}, {0, 5}} {
		if text, params := p.Split.Render(sql, rows); text != "" || params != nil {
			t.Errorf("rows %v: %q %v", rows, text, params)
		}
	}
	for _, other := range []string{"INSERT INTO invoices (customer_id) VALUES (1)", "SELECT 1", ""} {
		if text, _ := p.Split.Render(other, []int{0, 2}); text != "" {
			t.Errorf("text %q: rendered %q", other, text)
		}
		if _, err := p.Split.RowShards(other, nil, nil); err == nil {
			t.Errorf("text %q: RowShards without an error", other)
		}
	}
}

// TestRowShards reads each row's shard from literals and from bound parameters in text and
// binary form, and fails like routing on NULL and non-integer keys.
func TestRowShards(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	const (
		literals = "INSERT INTO invoices (customer_id, amount) VALUES (1, 10), (-1, 11), ('18', 12), (0x10::bigint, 13), (E'35', 14)"
		params   = "INSERT INTO invoices (customer_id, amount) VALUES ($1, 10), ($2, 11), ($3, 12)"
		mixed    = "INSERT INTO invoices (customer_id, amount) VALUES ($2, $1), (7, $1), ($3::int8, 0)"
	)
	bin := func(vals ...[]byte) *testParams {
		p := &testParams{vals: vals}
		for range vals {
			p.binary = append(p.binary, true)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		sql    string
		params Params
		want   []shardmap.Shard
		err    string // the RouteError's message
	}{
		{"literals", literals, nil, []shardmap.Shard{1, 15, 2, 0, 3}, ""},
		{"text params", params, textParams("1", " -2 ", "+35"), []shardmap.Shard{1, 14, 3}, ""},
		{"binary int2 int4 int8", params, bin([]byte{0, 5}, []byte{0, 0, 0, 22}, int8Bytes(-17)), []shardmap.Shard{5, 6, 15}, ""},
		{"mixed text and binary with literals", mixed, &testParams{vals: [][]byte{[]byte("x"), []byte("33"), int8Bytes(4)}, binary: []bool{false, false, true}},
			[]shardmap.Shard{1, 7, 4}, ""},
		{"NULL param", params, &testParams{vals: [][]byte{[]byte("1"), nil, []byte("3")}}, nil, "shard key customer_id must be an integer, not NULL"},
		{"text not an integer", params, textParams("1", "2.5", "3"), nil, "shard key customer_id must be an integer"},
		{"binary of another width", params, bin([]byte{0, 5}, []byte{1, 2, 3}, int8Bytes(1)), nil, "shard key customer_id must be an integer"},
		{"missing param", params, textParams("1", "2"), nil, "a parameter holding the shard key customer_id is not bound"},
		{"no params", params, nil, nil, "a parameter holding the shard key customer_id is not bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := r.Route(tc.sql, Session{}, m)
			if tc.params != nil || p.Split == nil {
				p = r.Prepare(tc.sql, m).Plan(textParams("1", "2", "3"), Session{}, m)
			}
			if p.Split == nil {
				t.Fatalf("no split: %s", p.JSON())
			}
			dst := []shardmap.Shard{9} // appended to
			got, err := p.Split.RowShards(tc.sql, tc.params, dst)
			if tc.err != "" {
				var re *RouteError
				if !errors.As(err, &re) || re.Code != CodeInvalidParameter || re.Message != tc.err {
					t.Errorf("error %v, want 22023 %q", err, tc.err)
				}
				if len(got) != 1 {
					t.Errorf("on error, dst grew to %v", got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, append([]shardmap.Shard{9}, tc.want...)) {
				t.Errorf("got %v, %v; want %v", got[1:], err, tc.want)
			}
		})
	}
}

// TestInsertSplitConcurrent uses one shared InsertSplit from many goroutines (run with -race).
func TestInsertSplitConcurrent(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	sql := insertRows(40)
	p := r.Route(sql, Session{}, m)
	if p.Split == nil {
		t.Fatal(p.JSON())
	}
	wantText, _ := p.Split.Render(sql, []int{1, 3, 39})
	wantShards, _ := p.Split.RowShards(sql, nil, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				q := r.Route(sql, Session{}, m)
				text, _ := q.Split.Render(sql, []int{1, 3, 39})
				shards, err := q.Split.RowShards(sql, nil, nil)
				if text != wantText || err != nil || !reflect.DeepEqual(shards, wantShards) {
					t.Errorf("concurrent render %q %v %v", text, shards, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// insertRows returns an INSERT of n rows with literal keys 0..n-1 and a few more columns.
func insertRows(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO invoices (customer_id, id, amount, status, note) VALUES ")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, %d, %d.50, 'open', 'invoice number %d')", i*7, 1000+i, i, i)
	}
	return b.String()
}

// checkRender checks that text, rendered from the INSERT sql for rows with parameter map
// params, parses to sql's statement with only those VALUES rows: the trees are equal once
// each $k of text is mapped back to params[k-1] and locations are cleared.
func checkRender(t *testing.T, sql string, rows []int, text string, params []int) {
	t.Helper()
	if err := sameRendering(sql, rows, text, params); err != nil {
		t.Error(err)
	}
}

func sameRendering(sql string, rows []int, text string, params []int) error {
	orig, err := pg.Parse(sql)
	if err != nil {
		return err
	}
	got, err := pg.Parse(text)
	if err != nil {
		return fmt.Errorf("rendered %q does not parse: %w", text, err)
	}
	if len(orig.Stmts) != 1 || len(got.Stmts) != 1 {
		return fmt.Errorf("%q: %d statements, rendered %d", sql, len(orig.Stmts), len(got.Stmts))
	}
	sel := orig.Stmts[0].Stmt.GetInsertStmt().GetSelectStmt().GetSelectStmt()
	var kept []*pg.Node
	for _, r := range rows {
		kept = append(kept, sel.ValuesLists[r])
	}
	sel.ValuesLists = kept
	var bad error
	normalize(got.ProtoReflect(), func(pr *pg.ParamRef) {
		if int(pr.Number) < 1 || int(pr.Number) > len(params) {
			bad = fmt.Errorf("rendered %q: $%d has no original (params %v)", text, pr.Number, params)
			return
		}
		pr.Number = int32(params[pr.Number-1])
	})
	normalize(orig.ProtoReflect(), nil)
	if bad != nil {
		return bad
	}
	if !proto.Equal(orig, got) {
		return fmt.Errorf("rendered %q (params %v) is not %q restricted to rows %v", text, params, sql, rows)
	}
	return nil
}

// normalize clears every location (and statement length) in the tree and calls param, when
// set, on each ParamRef.
func normalize(m protoreflect.Message, param func(*pg.ParamRef)) {
	if pr, ok := m.Interface().(*pg.ParamRef); ok && param != nil {
		param(pr)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.Int32Kind && !fd.IsList() &&
			(strings.HasSuffix(string(fd.Name()), "location") || fd.Name() == "stmt_len"):
			m.Clear(fd)
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				normalize(v.List().Get(i).Message(), param)
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			normalize(v.Message(), param)
		}
		return true
	})
}

// FuzzInsertSplit routes any text; when the plan offers a split, rendering any one row and
// the first and last rows gives a statement that parses to the original restricted to them.
func FuzzInsertSplit(f *testing.F) {
	for _, s := range []string{
		"INSERT INTO invoices (customer_id, amount) VALUES (1, 10), (5, 11)",
		"INSERT INTO invoices (customer_id, amount) VALUES ($1, $2), ($3, $2) RETURNING $4",
		"/* ),( */ INSERT INTO invoices (customer_id, note) VALUES (1, '),($1'), (2, $$ ) $$) -- x",
		"WITH d AS (SELECT $9 AS x) INSERT INTO invoices (customer_id, n) VALUES ($1, (SELECT x FROM d)), (3, (4))",
		"INSERT INTO invoices (customer_id, id) VALUES (5, 1), (6, 2) ON CONFLICT (customer_id, id) DO UPDATE SET id = $1",
	} {
		f.Add(s)
	}
	m := routeTestMap()
	r := New(Config{CacheSize: 64})
	f.Fuzz(func(t *testing.T, sql string) {
		p := r.Prepare(sql, m).Plan(textParams("1", "2", "3", "4", "5", "6", "7", "8", "9"), Session{}, m)
		if p.Split == nil {
			if q := r.Route(sql, Session{}, m); q.Split != nil {
				p = q
			} else {
				return
			}
		}
		last := p.Split.Rows - 1
		for _, rows := range [][]int{{0}, {last}, {0, last}} {
			text, params := p.Split.Render(sql, rows)
			if err := sameRendering(sql, rows, text, params); err != nil {
				t.Fatal(err)
			}
		}
	})
}
