package router

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/shardwire/shardwire/shardmap"
)

const routeCasesFile = "testdata/route_cases.json"

// routeCase is one line of testdata/route_cases.json.
type routeCase struct {
	Comment  string `json:"comment"`
	SQL      string `json:"sql"`
	ShardKey *int64 `json:"shard_key,omitempty"` // SET shardwire.shard_key in the session
	Plan     Plan   `json:"plan"`
}

func (c routeCase) session() Session {
	if c.ShardKey == nil {
		return Session{}
	}
	return Session{ShardKey: *c.ShardKey, HasShardKey: true}
}

// routeTestMap is the golden files' map: four groups owning shards 0-3, 4-7, 8-11 and 12-15;
// g0 holds the unsharded tables (pgbench_branches, pgbench_tellers, pgbench_history,
// settings).
func routeTestMap() *shardmap.Map {
	m := &shardmap.Map{
		Epoch: 1,
		Groups: []shardmap.Group{
			{Name: "g0", Writer: "127.0.0.1:5432"}, {Name: "g1", Writer: "127.0.0.1:5433"},
			{Name: "g2", Writer: "127.0.0.1:5434"}, {Name: "g3", Writer: "127.0.0.1:5435"},
		},
		DefaultGroup: 0,
		Rules: []shardmap.TableRule{
			{Column: "customer_id"},
			{Table: "pgbench_accounts", Column: "aid"},
		},
		Tables: map[string]string{
			"customers":        "customer_id",
			"invoices":         "customer_id",
			"invoice_lines":    "customer_id",
			"payments":         "customer_id",
			"pgbench_accounts": "aid",
		},
	}
	for s := range m.Owner {
		m.Owner[s] = s / 4
		m.State[s] = shardmap.StateActive
	}
	return m
}

func loadRouteCases(tb testing.TB) []routeCase {
	tb.Helper()
	data, err := os.ReadFile(routeCasesFile)
	if err != nil {
		tb.Fatal(err)
	}
	var cases []routeCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var c routeCase
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			tb.Fatalf("%s:%d: %v", routeCasesFile, line, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return cases
}

// jsonPlan round-trips a plan through its JSON form, as the golden file holds it.
func jsonPlan(tb testing.TB, p Plan) Plan {
	tb.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	var out Plan
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestRouteGolden(t *testing.T) {
	cases := loadRouteCases(t)
	if len(cases) < 80 {
		t.Fatalf("only %d golden cases", len(cases))
	}
	m := routeTestMap()
	warm := New(Config{})
	kinds := map[Kind]bool{}
	targets := map[Target]bool{}
	var out bytes.Buffer
	for i, c := range cases {
		cold := New(Config{}).Route(c.SQL, c.session(), m)
		warm.Route(c.SQL, c.session(), m)
		hit := warm.Route(c.SQL, c.session(), m)
		if !reflect.DeepEqual(cold, hit) {
			t.Errorf("case %d %q: cached plan %s differs from the first %s", i, c.Comment, hit.JSON(), cold.JSON())
		}
		got := jsonPlan(t, cold)
		kinds[got.Kind] = true
		targets[got.Target] = true
		if *update {
			c.Plan = got
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
			out.WriteByte('\n')
			continue
		}
		if !reflect.DeepEqual(got, c.Plan) {
			want, _ := json.Marshal(c.Plan)
			have, _ := json.Marshal(got)
			t.Errorf("case %d %q\nsql:  %s\nwant: %s\ngot:  %s", i, c.Comment, c.SQL, want, have)
		}
	}
	for k := KindRead; k <= KindOther; k++ {
		if !kinds[k] {
			t.Errorf("no golden case of kind %s", k)
		}
	}
	for tg := TargetAny; tg <= TargetSplit; tg++ {
		if !targets[tg] {
			t.Errorf("no golden case of target %s", tg)
		}
	}
	if *update {
		if err := os.WriteFile(routeCasesFile, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRouteLiteralsChange routes strings of one shape with other literals and checks that the
// cached template reads each string's own values.
func TestRouteLiteralsChange(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	for _, tc := range []struct {
		sql  string
		want string
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 123", "Read Shards{11}"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 124", "Read Shards{12}"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = -124", "Read Shards{4}"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 'x'", "Read Reject 22023: shard key aid must be an integer"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 1.0", "Read Reject 22023: shard key aid must be an integer"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 12", "Read Shards{12}"},
		{"SELECT * FROM invoices WHERE customer_id = ANY('{1,2}')", "Read Shards{1,2}"},
		{"SELECT * FROM invoices WHERE customer_id = ANY('{3, 19, \"4\"}')", "Read Shards{3,4}"},
		{"SELECT * FROM invoices WHERE customer_id = ANY('{3,NULL}')", "Read Reject 22023: shard key customer_id must be an integer, not NULL"},
		{"SELECT * FROM invoices WHERE customer_id = ANY('{}')", "Read Scatter"},
		{"INSERT INTO invoices (customer_id, amount) VALUES (5, 10), (9, 11)", "Write Shards{5,9}"},
		{"INSERT INTO invoices (customer_id, amount) VALUES (6, 10), (6, 11)", "Write Shards{6}"},
		{"UPDATE invoices SET customer_id = 21 WHERE customer_id = 5", "Write Shards{5}"},
		{"UPDATE invoices SET customer_id = 22 WHERE customer_id = 5", "Write Reject 0A000: setting customer_id to a value in another shard than the rows' is not supported"},
		{"SELECT * FROM invoices WHERE customer_id = 3 /* shard_key=4 */", "Read Shards{4}"},
		{"SELECT * FROM invoices WHERE customer_id = 3", "Read Shards{3}"},
		{"SELECT * FROM invoices WHERE customer_id = 3 /* shard_key=x */", "Read Reject 22023: the shard_key hint must be an integer"},
	} {
		if got := r.Route(tc.sql, Session{}, m).String(); got != tc.want {
			t.Errorf("%s\n got  %s\n want %s", tc.sql, got, tc.want)
		}
	}
	// Literals a scatter's merge depends on are part of the shape.
	p10 := r.Route("SELECT id FROM invoices ORDER BY 1 LIMIT 10", Session{}, m)
	p20 := r.Route("SELECT id, amount FROM invoices ORDER BY 2 LIMIT 20", Session{}, m)
	p10b := r.Route("SELECT id FROM invoices ORDER BY 1 LIMIT 20", Session{}, m)
	p20b := r.Route("SELECT id, amount FROM invoices ORDER BY 1 LIMIT 20", Session{}, m)
	if p10.Merge == nil || p20.Merge == nil || p10b.Merge == nil || p20b.Merge == nil {
		t.Fatalf("want scatters, got %s %s %s %s", p10, p20, p10b, p20b)
	}
	if p10.Merge.Limit.Const != 10 || p10b.Merge.Limit.Const != 20 {
		t.Errorf("limits %d, %d; want 10, 20", p10.Merge.Limit.Const, p10b.Merge.Limit.Const)
	}
	if p20.Merge.OrderBy[0].Column != 1 || p20b.Merge.OrderBy[0].Column != 0 {
		t.Errorf("order by columns %d, %d; want 1, 0", p20.Merge.OrderBy[0].Column, p20b.Merge.OrderBy[0].Column)
	}
	// WHERE literals of a scatter are not: one template serves every status.
	before := r.shapes.len()
	r.Route("SELECT id FROM invoices WHERE status = 'open'", Session{}, m)
	r.Route("SELECT id FROM invoices WHERE status = 'paid'", Session{}, m)
	if n := r.shapes.len(); n != before+1 {
		t.Errorf("cache grew by %d shapes for one WHERE shape, want 1", n-before)
	}
}

// TestRouteMapChange checks that a new epoch with the same tables keeps the templates and a
// map with other tables rebuilds them.
func TestRouteMapChange(t *testing.T) {
	m1 := routeTestMap()
	r := New(Config{})
	const q = "SELECT * FROM settings WHERE name = 'x'"
	if p := r.Route(q, Session{}, m1); p.Target != TargetDefault {
		t.Fatalf("m1: %s", p)
	}
	m2 := routeTestMap()
	m2.Epoch = 2
	m2.Owner[3] = 1
	st := r.Prepare("SELECT * FROM invoices WHERE customer_id = $1", m1)
	if n := r.shapes.len(); n != 2 {
		t.Fatalf("%d shapes cached, want 2", n)
	}
	r.Route(q, Session{}, m2)
	if n := r.shapes.len(); n != 2 {
		t.Errorf("a new epoch with the same tables added templates: %d shapes", n)
	}
	m3 := routeTestMap()
	m3.Tables["settings"] = "customer_id"
	if p := r.Route(q, Session{}, m3); p.Target != TargetScatter {
		t.Errorf("settings sharded in m3: %s, want a scatter", p)
	}
	params := textParams("7")
	if p := st.Plan(params, Session{}, m3); p.String() != "Read Shards{7}" {
		t.Errorf("prepared under m3: %s", p)
	}
	m4 := routeTestMap()
	delete(m4.Tables, "invoices")
	if p := st.Plan(params, Session{}, m4); p.String() != "Read Default" {
		t.Errorf("prepared under m4 (invoices unsharded): %s", p)
	}
}

// testParams is a Params over Go values: nil is NULL.
type testParams struct {
	vals   [][]byte
	binary []bool
}

func (p *testParams) Len() int { return len(p.vals) }
func (p *testParams) Value(i int) ([]byte, bool, bool) {
	return p.vals[i], p.binary != nil && p.binary[i], p.vals[i] == nil
}

func textParams(vals ...string) *testParams {
	p := &testParams{}
	for _, v := range vals {
		p.vals = append(p.vals, []byte(v))
	}
	return p
}

func binParam(v []byte) *testParams { return &testParams{vals: [][]byte{v}, binary: []bool{true}} }

func int8Bytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// binArray encodes a one-dimensional int8 array in binary form (nil elements are NULL).
func binArray(vals ...*int64) []byte {
	b := binary.BigEndian.AppendUint32(nil, 1) // ndim
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 20) // int8
	b = binary.BigEndian.AppendUint32(b, uint32(len(vals)))
	b = binary.BigEndian.AppendUint32(b, 1)
	for _, v := range vals {
		if v == nil {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, 8)
		b = append(b, int8Bytes(*v)...)
	}
	return b
}

func i64(v int64) *int64 { return &v }

func TestStatementPlan(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	const (
		pgbench  = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
		anyKeys  = "SELECT * FROM invoices WHERE customer_id = ANY($1)"
		insert2  = "INSERT INTO invoices (customer_id, amount) VALUES ($1, $2), ($3, $4)"
		moveKey  = "UPDATE invoices SET customer_id = $1 WHERE customer_id = $2"
		mixed    = "INSERT INTO payments (customer_id, amount) VALUES (5, $1)"
		hinted   = "/* shard_key=9 */ UPDATE invoices SET status = $1 WHERE id = $2"
		keyless  = "UPDATE invoices SET status = $1 WHERE id = $2"
		castArr  = "DELETE FROM payments WHERE customer_id = ANY($1::bigint[]) AND id = $2"
		castKey  = "SELECT * FROM invoices WHERE customer_id = $1::bigint AND id = $2"
		badParse = "SELEC $1"
	)
	for _, tc := range []struct {
		name   string
		sql    string
		params Params
		sess   Session
		want   string
	}{
		{"text param", pgbench, textParams("123"), Session{}, "Read Shards{11}"},
		{"text param with sign and spaces", pgbench, textParams(" -1 "), Session{}, "Read Shards{15}"},
		{"binary int2", pgbench, binParam([]byte{0, 5}), Session{}, "Read Shards{5}"},
		{"binary int4", pgbench, binParam([]byte{0, 0, 1, 2}), Session{}, "Read Shards{2}"},
		{"binary int8", pgbench, binParam(int8Bytes(-17)), Session{}, "Read Shards{15}"},
		{"binary of another width", pgbench, binParam([]byte{1, 2, 3}), Session{}, "Read Reject 22023: shard key aid must be an integer"},
		{"text not an integer", pgbench, textParams("12a"), Session{}, "Read Reject 22023: shard key aid must be an integer"},
		{"text hex is not base 10", pgbench, textParams("0x10"), Session{}, "Read Reject 22023: shard key aid must be an integer"},
		{"text out of range", pgbench, textParams("9223372036854775808"), Session{}, "Read Reject 22023: shard key aid must be an integer"},
		{"text min int64", pgbench, textParams("-9223372036854775808"), Session{}, "Read Shards{0}"},
		{"NULL", pgbench, &testParams{vals: [][]byte{nil}}, Session{}, "Read Reject 22023: shard key aid must be an integer, not NULL"},
		{"missing parameter: keyless", pgbench, textParams(), Session{}, "Read Scatter"},
		{"nil params: keyless", pgbench, nil, Session{}, "Read Scatter"},
		{"session key beats a keyless read", pgbench, nil, Session{ShardKey: 3, HasShardKey: true}, "Read Shards{3}"},
		{"array text", anyKeys, textParams("{1,2,17}"), Session{}, "Read Shards{1,2}"},
		{"array text nested", anyKeys, textParams("{{1,2},{3,4}}"), Session{}, "Read Shards{1,2,3,4}"},
		{"array text with NULL", anyKeys, textParams("{1,NULL}"), Session{}, "Read Reject 22023: shard key customer_id must be an integer, not NULL"},
		{"array text malformed", anyKeys, textParams("{1,2"), Session{}, "Read Reject 22023: shard key customer_id must be an integer"},
		{"empty array: keyless", anyKeys, textParams("{}"), Session{}, "Read Scatter"},
		{"array binary", anyKeys, binParam(binArray(i64(4), i64(21))), Session{}, "Read Shards{4,5}"},
		{"array binary with NULL", anyKeys, binParam(binArray(i64(4), nil)), Session{}, "Read Reject 22023: shard key customer_id must be an integer, not NULL"},
		{"array binary truncated", anyKeys, binParam(binArray(i64(4))[:20]), Session{}, "Read Reject 22023: shard key customer_id must be an integer"},
		{"multi-row insert", insert2, textParams("1", "10", "2", "20"), Session{}, "Write Shards{1,2}"},
		{"multi-row insert with a NULL key", insert2, &testParams{vals: [][]byte{[]byte("1"), nil, nil, nil}}, Session{}, "Write Reject 22023: shard key customer_id must be an integer, not NULL"},
		{"multi-row insert missing a key: keyless", insert2, textParams("1", "10"), Session{}, "Write Reject 0A000: INSERT into sharded table invoices needs the shard key customer_id"},
		{"update key in the same shard", moveKey, textParams("37", "5"), Session{}, "Write Shards{5}"},
		{"update key to another shard", moveKey, textParams("6", "5"), Session{}, "Write Reject 0A000: setting customer_id to a value in another shard than the rows' is not supported"},
		{"literal key in a prepared text", mixed, textParams("1.5"), Session{}, "Write Shards{5}"},
		{"hint in a prepared text", hinted, textParams("paid", "3"), Session{}, "Write Shards{9}"},
		{"keyless write", keyless, textParams("paid", "3"), Session{}, "Write Reject 0A000: UPDATE of sharded table invoices needs the shard key customer_id"},
		{"keyless write with the session key", keyless, textParams("paid", "3"), Session{ShardKey: 4, HasShardKey: true}, "Write Shards{4}"},
		{"cast array param", castArr, textParams("{8,9}", "1"), Session{}, "Write Shards{8,9}"},
		{"cast scalar param", castKey, textParams("14", "1"), Session{}, "Read Shards{14}"},
		{"parse error", badParse, textParams("1"), Session{}, "Other Reject 42601: syntax error at or near \"SELEC\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := r.Prepare(tc.sql, m)
			p := st.Plan(tc.params, tc.sess, m)
			if got := p.String(); got != tc.want {
				t.Errorf("%s\n got  %s\n want %s", tc.sql, got, tc.want)
			}
			if p.Kind != st.Kind() {
				t.Errorf("plan kind %s, statement kind %s", p.Kind, st.Kind())
			}
			if p.Statements != 1 {
				t.Errorf("Statements = %d", p.Statements)
			}
		})
	}
	if a, b := r.Prepare(pgbench, m), r.Prepare(pgbench, m); a != b {
		t.Error("Prepare of the same text returned two statements")
	}
	if p := r.Prepare(anyKeys, m).Plan(textParams("{}"), Session{}, m); p.Merge == nil || !reflect.DeepEqual(p.Tables, []string{"invoices"}) {
		t.Errorf("plan %s: tables %v, merge %v", p, p.Tables, p.Merge)
	}
}

// TestRouteAllocs asserts that planning a shape seen before allocates nothing.
func TestRouteAllocs(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	for _, sql := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 123",
		"INSERT INTO invoices (customer_id, amount, status) VALUES (42, 10.5, 'open')",
		"UPDATE pgbench_accounts SET abalance = abalance + -5 WHERE aid = 77",
		"SELECT * FROM invoices WHERE customer_id IN (1, 17) /* shard_key=3 */",
		"BEGIN; SELECT * FROM invoices WHERE customer_id = ANY('{1,2}'); COMMIT",
		"BEGIN; SET x = 1; SELECT 1; UPDATE invoices SET a = 1 WHERE customer_id = 3; SELECT 2; COMMIT",
	} {
		want := r.Route(sql, Session{}, m)
		if want.Target == TargetReject {
			t.Fatalf("%s: %s", sql, want)
		}
		var got Plan
		if n := testing.AllocsPerRun(200, func() { got = r.Route(sql, Session{}, m) }); n != 0 {
			t.Errorf("Route(%q): %v allocs/op, want 0", sql, n)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Route(%q) = %s, want %s", sql, got, want)
		}
	}
	st := r.Prepare("SELECT abalance FROM pgbench_accounts WHERE aid = $1", m)
	params := textParams("123")
	var got Plan
	if n := testing.AllocsPerRun(200, func() { got = st.Plan(params, Session{}, m) }); n != 0 {
		t.Errorf("Statement.Plan: %v allocs/op, want 0", n)
	}
	if got.String() != "Read Shards{11}" {
		t.Errorf("Statement.Plan = %s", got)
	}
	ins := r.Prepare("INSERT INTO invoices (customer_id, amount) VALUES ($1, $2)", m)
	insParams := &testParams{vals: [][]byte{int8Bytes(42), []byte("1")}, binary: []bool{true, false}}
	if n := testing.AllocsPerRun(200, func() { got = ins.Plan(insParams, Session{}, m) }); n != 0 {
		t.Errorf("Statement.Plan of an INSERT: %v allocs/op, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() { r.Prepare("SELECT abalance FROM pgbench_accounts WHERE aid = $1", m) }); n != 0 {
		t.Errorf("Prepare of a cached text: %v allocs/op, want 0", n)
	}
}

// TestRouteCacheBounded fills a small cache with many shapes and checks its size and that
// evicted shapes still plan right.
func TestRouteCacheBounded(t *testing.T) {
	m := routeTestMap()
	r := New(Config{CacheSize: 16})
	for i := 0; i < 500; i++ {
		sql := fmt.Sprintf("SELECT c%d FROM invoices WHERE customer_id = %d", i, i)
		if got, want := r.Route(sql, Session{}, m).String(), fmt.Sprintf("Read Shards{%d}", i%16); got != want {
			t.Fatalf("%s: %s, want %s", sql, got, want)
		}
		r.Prepare(sql, m)
	}
	if n := r.shapes.len(); n > 16 {
		t.Errorf("%d shapes cached, CacheSize 16", n)
	}
	if n := r.prepared.len(); n > 16 {
		t.Errorf("%d prepared statements cached, CacheSize 16", n)
	}
	if got := r.Route("SELECT c0 FROM invoices WHERE customer_id = 3", Session{}, m).String(); got != "Read Shards{3}" {
		t.Errorf("after eviction: %s", got)
	}
}

// TestRouteConcurrent plans the golden cases from many goroutines on one router (run with
// -race) and checks every plan.
func TestRouteConcurrent(t *testing.T) {
	cases := loadRouteCases(t)
	m := routeTestMap()
	r := New(Config{CacheSize: 64}) // small, so that goroutines also evict each other
	want := make([]Plan, len(cases))
	for i, c := range cases {
		want[i] = New(Config{}).Route(c.SQL, c.session(), m)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; n < 3; n++ {
				for i := range cases {
					c := cases[(i+g*17)%len(cases)]
					if got := r.Route(c.SQL, c.session(), m); !reflect.DeepEqual(got, want[(i+g*17)%len(cases)]) {
						select {
						case errs <- fmt.Sprintf("%q: %s, want %s", c.SQL, got, want[(i+g*17)%len(cases)]):
						default:
						}
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestHintIn covers the hint comment syntax.
func TestHintIn(t *testing.T) {
	for _, tc := range []struct {
		gap  string
		want hint
	}{
		{" /* shard_key=42 */ ", hint{set: true, key: 42}},
		{"/* shard_key = -3 */", hint{set: true, key: -3}},
		{"-- shard_key: 7\n", hint{set: true, key: 7}},
		{"/* shard_key=4x */", hint{set: true, bad: true}},
		{"/* shard_key= */", hint{set: true, bad: true}},
		{"/* my_shard_key=4 */", hint{}},
		{"/* shard_keys=4 */", hint{}},
		{"/* about shard_key and more */", hint{}},
		{"/* app=x shard_key=12 */", hint{set: true, key: 12}},
	} {
		if got := hintIn(tc.gap); got != tc.want {
			t.Errorf("hintIn(%q) = %+v, want %+v", tc.gap, got, tc.want)
		}
	}
}

// FuzzRoute checks that no input panics, and that a plan from a warm cache (where a string
// of the same shape may have been planned before) equals the plan of a cold router.
func FuzzRoute(f *testing.F) {
	for _, c := range loadRouteCases(f) {
		f.Add(c.SQL, int64(0), "1")
	}
	m := routeTestMap()
	warm := New(Config{CacheSize: 256})
	f.Fuzz(func(t *testing.T, sql string, key int64, param string) {
		sess := Session{ShardKey: key, HasShardKey: key%3 == 0}
		got := warm.Route(sql, sess, m)
		want := New(Config{CacheSize: 8}).Route(sql, sess, m)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: warm %s, cold %s", sql, got.JSON(), want.JSON())
		}
		if got.Target < TargetAny || got.Target > TargetSplit || got.Kind < KindRead || got.Kind > KindOther {
			t.Fatalf("%q: invalid plan %s", sql, got.JSON())
		}
		if (got.Target == TargetReject) != (got.Err != nil) {
			t.Fatalf("%q: reject without error or error without reject: %s", sql, got.JSON())
		}
		st := warm.Prepare(sql, m)
		params := &testParams{vals: [][]byte{[]byte(param), []byte(param), nil}, binary: []bool{false, true, false}}
		p := st.Plan(params, sess, m)
		if p.Kind != st.Kind() || (p.Target == TargetReject) != (p.Err != nil) {
			t.Fatalf("%q: prepared plan %s, kind %s", sql, p.JSON(), st.Kind())
		}
		if strings.Count(sql, ";") == 0 && p.Statements > 1 {
			t.Fatalf("%q: %d statements without a ';'", sql, p.Statements)
		}
	})
}

// TestRouteNilMap plans without a map: every table is unsharded.
func TestRouteNilMap(t *testing.T) {
	r := New(Config{})
	if got := r.Route("SELECT * FROM invoices WHERE customer_id = 1", Session{}, nil).String(); got != "Read Default" {
		t.Errorf("nil map: %s", got)
	}
	if got := r.Prepare("UPDATE invoices SET a = $1", nil).Plan(textParams("1"), Session{}, nil).String(); got != "Write Default" {
		t.Errorf("nil map, prepared: %s", got)
	}
}

// TestRouteShapeBoundaries routes, on one router, pairs of strings whose tokens look alike but
// which the server reads differently; the second must not be planned with the first's
// template.
func TestRouteShapeBoundaries(t *testing.T) {
	m := routeTestMap()
	for _, tc := range []struct{ first, second, want string }{
		{"SELECT * FROM invoices WHERE customer_id = 10", "SELECT * FROM invoices WHERE customer_id = 0A",
			`Other Reject 42601: trailing junk after numeric literal at or near "0A"`},
		{"SELECT 1", "SELECT 1 /* open", "Other Reject 42601: unterminated /* comment at or near \"/* open\""},
		{"", "--\rDELETE FROM invoices", "Write Reject 0A000: DELETE from sharded table invoices needs the shard key customer_id"},
		{"SELECT 'a'\n'b'", "SELECT 'a' 'b'", `Other Reject 42601: syntax error at or near "'b'"`},
		{"SELECT x::varchar(10)", "SELECT x::varchar(2147483648)", `Other Reject 42601: syntax error at or near "2147483648"`},
		{"SELECT * FROM invoices WHERE customer_id = '5'", "SELECT * FROM invoices WHERE customer_id = '\x80'",
			"Other Reject 42601: string field contains invalid UTF-8"},
		{"SELECT * FROM invoices WHERE customer_id = E'5'", `SELECT * FROM invoices WHERE customer_id = E'\u00'`,
			"Other Reject 42601: invalid Unicode escape"},
		{"SELECT 'x'", "SELECT '\x00'", "Other Reject 42601: the statement contains a NUL byte"},
		{"SELECT 1 <= 2", "SELECT 1 < = 2", `Other Reject 42601: syntax error at or near "="`},
	} {
		r := New(Config{})
		r.Route(tc.first, Session{}, m)
		if got := r.Route(tc.second, Session{}, m).String(); got != tc.want {
			t.Errorf("after %q, %q:\n got  %s\n want %s", tc.first, tc.second, got, tc.want)
		}
	}
}

func TestNumberClass(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want byte
	}{
		{"0", 'i'}, {"123", 'i'}, {"1_000", 'i'}, {"0x1F", 'i'}, {"0X_ff", 'i'}, {"0o17", 'i'}, {"0b101", 'i'},
		{"2147483647", 'i'}, {"2147483648", 'I'}, {"99999999999999999999", 'I'},
		{"1.5", 'f'}, {".5", 'f'}, {"5.", 'f'}, {"1e10", 'f'}, {"1.5E3", 'f'}, {"1_0.0_1", 'f'},
		{"0A", 0}, {"1e", 0}, {"0x__1", 0}, {"1.2.3", 0}, {"1__0", 0}, {"1_", 0}, {"0x", 0}, {"0b102", 0}, {"12abc", 0},
	} {
		if got := numberClass(tc.s); got != tc.want {
			t.Errorf("numberClass(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
