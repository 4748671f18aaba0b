package router

import (
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// copyTestMap is the golden files' map, knowing the column order of customers (key first)
// and invoices (key second).
func copyTestMap() *shardmap.Map {
	m := routeTestMap()
	m.KeyIndex = map[string]int{"customers": 0, "invoices": 1}
	return m
}

// copyPlan routes sql on a fresh router and on a warm one (the shape cached), checks that
// both plan alike, and returns the plan.
func copyPlan(t *testing.T, r *Router, sql string, m *shardmap.Map) Plan {
	t.Helper()
	cold := New(Config{}).Route(sql, Session{}, m)
	warm := r.Route(sql, Session{}, m)
	if cold.String() != warm.String() || (cold.Copy == nil) != (warm.Copy == nil) ||
		cold.Copy != nil && !sameCopySpec(*cold.Copy, *warm.Copy) {
		t.Fatalf("%s: cold plan %s differs from the cached one %s", sql, cold.JSON(), warm.JSON())
	}
	return warm
}

func sameCopySpec(a, b CopySpec) bool { return a == b }

// TestCopyOptions parses the options of every format, in the WITH (...) list and in the
// legacy syntax, with Postgres' defaults.
func TestCopyOptions(t *testing.T) {
	m := copyTestMap()
	r := New(Config{})
	text := CopySpec{Format: CopyText, Delimiter: '\t', Null: `\N`}
	csv := CopySpec{Format: CopyCSV, Delimiter: ',', Quote: '"', Escape: '"'}
	binary := CopySpec{Format: CopyBinary}
	with := func(s CopySpec, f func(*CopySpec)) CopySpec { f(&s); return s }
	for _, tc := range []struct {
		sql  string
		want CopySpec
	}{
		{"COPY invoices (customer_id) FROM STDIN", text},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT text)", text},
		{"COPY invoices (customer_id) FROM STDIN (FORMAT csv)", csv},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT binary)", binary},
		{"copy invoices (customer_id) from stdin with (format CSV)", csv}, // an unquoted name is lower-cased
		// The legacy syntax.
		{"COPY invoices (customer_id) FROM STDIN CSV", csv},
		{"COPY invoices (customer_id) FROM STDIN WITH CSV HEADER", with(csv, func(s *CopySpec) { s.Header = true })},
		{"COPY BINARY invoices (customer_id) FROM STDIN", binary},
		{"COPY invoices (customer_id) FROM STDIN WITH BINARY", binary},
		{"COPY invoices (customer_id) FROM STDIN DELIMITER '|' NULL AS 'nil'",
			with(text, func(s *CopySpec) { s.Delimiter, s.Null = '|', "nil" })},
		{"COPY invoices (customer_id) FROM STDIN WITH DELIMITER ';' NULL '' CSV HEADER QUOTE AS '''' ESCAPE AS '\\' FORCE NOT NULL customer_id",
			CopySpec{Format: CopyCSV, Header: true, Delimiter: ';', Quote: '\'', Escape: '\\'}},
		{"COPY invoices (customer_id) FROM STDIN CSV QUOTE '`'", with(csv, func(s *CopySpec) { s.Quote, s.Escape = '`', '`' })},
		// The option list.
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, HEADER match, DELIMITER ';', NULL 'x', QUOTE '''', ESCAPE E'\\\\')",
			CopySpec{Format: CopyCSV, Header: true, Delimiter: ';', Quote: '\'', Escape: '\\', Null: "x"}},
		{"COPY invoices (customer_id) FROM STDIN WITH (HEADER)", with(text, func(s *CopySpec) { s.Header = true })},
		{"COPY invoices (customer_id) FROM STDIN WITH (HEADER 1)", with(text, func(s *CopySpec) { s.Header = true })},
		{"COPY invoices (customer_id) FROM STDIN WITH (HEADER off)", text},
		{"COPY invoices (customer_id) FROM STDIN WITH (HEADER false, FORMAT csv)", csv},
		{"COPY invoices (customer_id) FROM STDIN WITH (HEADER 'ON')", with(text, func(s *CopySpec) { s.Header = true })},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER ',', FORMAT text, NULL '')",
			with(text, func(s *CopySpec) { s.Delimiter, s.Null = ',', "" })},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, ESCAPE '\\')", with(csv, func(s *CopySpec) { s.Escape = '\\' })},
		{"COPY invoices (customer_id) FROM STDIN WITH (ENCODING 'LATIN1', FREEZE, ON_ERROR ignore, LOG_VERBOSITY verbose)",
			with(text, func(s *CopySpec) { s.Encoding = "LATIN1" })},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, FORCE_NULL (customer_id), FORCE_NOT_NULL *, DEFAULT 'dflt')", csv},
		{"COPY invoices (customer_id) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *, HEADER)", with(csv, func(s *CopySpec) { s.Header = true })},
		{"COPY invoices (customer_id) TO STDOUT WITH (FORMAT binary, FREEZE false)", binary},
	} {
		p := copyPlan(t, r, tc.sql, m)
		if p.Target != TargetSplit || p.Copy == nil {
			t.Errorf("%s: %s, want a split", tc.sql, p.JSON())
			continue
		}
		got := *p.Copy
		got.Table, got.KeyColumn, got.KeyIndex, got.Columns, got.outHead, got.outTail = "", "", 0, 0, "", ""
		if got != tc.want {
			t.Errorf("%s:\n got  %+v\n want %+v", tc.sql, got, tc.want)
		}
	}
}

// TestCopyRejects covers what the router refuses, with Postgres' SQLSTATE for bad options.
func TestCopyRejects(t *testing.T) {
	m := copyTestMap()
	r := New(Config{})
	for _, tc := range []struct {
		sql, code, msg string
	}{
		{"COPY invoices (customer_id) FROM '/tmp/x'", CodeFeatureNotSupported, "with a file or program on the server"},
		{"COPY invoices (customer_id) FROM PROGRAM 'cat /tmp/x'", CodeFeatureNotSupported, "with a file or program on the server"},
		{"COPY invoices TO '/tmp/x'", CodeFeatureNotSupported, "with a file or program on the server"},
		{"COPY invoices TO PROGRAM 'gzip > /tmp/x'", CodeFeatureNotSupported, "with a file or program on the server"},
		{"COPY invoices (customer_id) TO STDOUT WHERE customer_id > 1", CodeSyntaxError, "WHERE clause not allowed with COPY TO"}, // the parser's
		{"COPY invoices (amount) FROM STDIN", CodeFeatureNotSupported, "needs its key column customer_id in the column list"},
		{"COPY payments FROM STDIN", CodeFeatureNotSupported, "without a column list needs the position of customer_id"},
		{"COPY invoices TO STDOUT; COPY invoices TO STDOUT", CodeFeatureNotSupported, "must be sent alone"},
		{"BEGIN; COPY invoices (customer_id) FROM STDIN", CodeFeatureNotSupported, "must be sent alone"},
		// Options, as ProcessCopyOptions rejects them.
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT 'CSV')", CodeInvalidParameter, `COPY format "CSV" not recognized`},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT parquet)", CodeInvalidParameter, `COPY format "parquet" not recognized`},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, FORMAT csv)", CodeSyntaxError, "conflicting or redundant options"},
		{"COPY invoices (customer_id) FROM STDIN CSV DELIMITER ',' DELIMITER ';'", CodeSyntaxError, "conflicting or redundant options"},
		{"COPY invoices (customer_id) FROM STDIN WITH (SPEED fast)", CodeSyntaxError, `option "speed" not recognized`},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER)", CodeSyntaxError, "delimiter requires a parameter"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER 'é')", CodeFeatureNotSupported, "single one-byte character"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER ';;')", CodeFeatureNotSupported, "single one-byte character"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER '')", CodeFeatureNotSupported, "single one-byte character"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER E'\\n')", CodeInvalidParameter, "cannot be newline or carriage return"},
		{"COPY invoices (customer_id) FROM STDIN WITH (NULL E'x\\r')", CodeInvalidParameter, "null representation cannot use newline"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER 'a')", CodeInvalidParameter, `COPY delimiter cannot be "a"`},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER '\\')", CodeInvalidParameter, `COPY delimiter cannot be "\"`},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT binary, DELIMITER ',')", CodeSyntaxError, "cannot specify DELIMITER in BINARY mode"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT binary, NULL 'x')", CodeSyntaxError, "cannot specify NULL in BINARY mode"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT binary, HEADER)", CodeFeatureNotSupported, "cannot specify HEADER in BINARY mode"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT binary, ON_ERROR ignore)", CodeSyntaxError, "only ON_ERROR STOP"},
		{"COPY invoices (customer_id) FROM STDIN WITH (QUOTE '\"')", CodeFeatureNotSupported, "COPY QUOTE requires CSV mode"},
		{"COPY invoices (customer_id) FROM STDIN WITH (ESCAPE '\\')", CodeFeatureNotSupported, "COPY ESCAPE requires CSV mode"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, QUOTE 'ab')", CodeFeatureNotSupported, "quote must be a single one-byte character"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, ESCAPE '')", CodeFeatureNotSupported, "escape must be a single one-byte character"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, DELIMITER '\"')", CodeInvalidParameter, "delimiter and quote must be different"},
		{"COPY invoices (customer_id) FROM STDIN WITH (NULL 'a\tb')", CodeInvalidParameter, "must not appear in the NULL specification"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, NULL '\"')", CodeInvalidParameter, "CSV quote character must not appear"},
		{"COPY invoices (customer_id) FROM STDIN WITH (HEADER 2)", CodeSyntaxError, `requires a Boolean value or "match"`},
		{"COPY invoices (customer_id) FROM STDIN WITH (FREEZE maybe)", CodeSyntaxError, "freeze requires a Boolean value"},
		{"COPY invoices (customer_id) TO STDOUT WITH (HEADER match)", CodeFeatureNotSupported, `cannot use "match" with HEADER in COPY TO`},
		{"COPY invoices (customer_id) TO STDOUT WITH (FREEZE)", CodeInvalidParameter, "FREEZE cannot be used with COPY TO"},
		{"COPY invoices (customer_id) TO STDOUT WITH (ON_ERROR stop)", CodeInvalidParameter, "ON_ERROR cannot be used with COPY TO"},
		{"COPY invoices (customer_id) FROM STDIN WITH (ON_ERROR skip)", CodeInvalidParameter, `COPY ON_ERROR "skip" not recognized`},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, FORCE_QUOTE *)", CodeFeatureNotSupported, "FORCE_QUOTE cannot be used with COPY FROM"},
		{"COPY invoices (customer_id) TO STDOUT WITH (FORMAT csv, FORCE_NOT_NULL *)", CodeInvalidParameter, "FORCE_NOT_NULL cannot be used with COPY TO"},
		{"COPY invoices (customer_id) TO STDOUT WITH (FORMAT csv, FORCE_NULL (customer_id))", CodeInvalidParameter, "FORCE_NULL cannot be used with COPY TO"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORCE_NOT_NULL *)", CodeFeatureNotSupported, "FORCE_NOT_NULL requires CSV mode"},
		{"COPY invoices (customer_id) FROM STDIN WITH (FORMAT csv, FORCE_NULL 'x')", CodeInvalidParameter, "must be a list of column names"},
		{"COPY invoices (customer_id) TO STDOUT WITH (DEFAULT 'x')", CodeFeatureNotSupported, "DEFAULT cannot be used with COPY TO"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DEFAULT '\\N')", CodeFeatureNotSupported, "NULL specification and DEFAULT specification cannot be the same"},
	} {
		p := copyPlan(t, r, tc.sql, m)
		if p.Target != TargetReject || p.Err == nil || p.Err.Code != tc.code || !strings.Contains(p.Err.Message, tc.msg) {
			t.Errorf("%s:\n got  %s\n want Reject %s: ...%s...", tc.sql, p, tc.code, tc.msg)
		}
		if p.Copy != nil {
			t.Errorf("%s: a reject with a CopySpec", tc.sql)
		}
	}
}

// TestCopyKeyIndex finds the key among a data row's fields: by the column list, else by the
// table's column order the map knows (as an INSERT without a column list).
func TestCopyKeyIndex(t *testing.T) {
	r := New(Config{})
	for _, tc := range []struct {
		m       *shardmap.Map
		sql     string
		index   int
		columns int
		kind    Kind
	}{
		{copyTestMap(), "COPY invoices (customer_id, amount) FROM STDIN", 0, 2, KindWrite},
		{copyTestMap(), "COPY invoices (id, amount, customer_id) FROM STDIN CSV", 2, 3, KindWrite},
		{copyTestMap(), `COPY public.invoices ("id", "customer_id") FROM STDIN`, 1, 2, KindWrite},
		{copyTestMap(), "COPY invoices FROM STDIN", 1, 0, KindWrite},
		{copyTestMap(), "COPY customers FROM STDIN WITH (FORMAT binary)", 0, 0, KindWrite},
		{copyTestMap(), "COPY invoices TO STDOUT", 1, 0, KindRead},
		{copyTestMap(), "COPY invoices (amount, customer_id) TO STDOUT", 1, 2, KindRead},
		{copyTestMap(), "COPY invoices (amount) TO STDOUT", -1, 1, KindRead},
		{routeTestMap(), "COPY invoices TO STDOUT", -1, 0, KindRead},
		{routeTestMap(), "COPY pgbench_accounts (aid, bid, abalance) FROM STDIN", 0, 3, KindWrite},
	} {
		p := copyPlan(t, r, tc.sql, tc.m)
		if p.Target != TargetSplit || p.Copy == nil {
			t.Errorf("%s: %s, want a split", tc.sql, p.JSON())
			continue
		}
		key := "customer_id"
		table := strings.Fields(strings.TrimPrefix(strings.Fields(tc.sql)[1], "public."))[0]
		if table == "pgbench_accounts" {
			key = "aid"
		}
		if c := p.Copy; c.KeyIndex != tc.index || c.Columns != tc.columns || c.KeyColumn != key || c.Table != table || p.Kind != tc.kind {
			t.Errorf("%s: %s %+v, want %s key %s at %d of %d columns in %s", tc.sql, p, *c, tc.kind, key, tc.index, tc.columns, table)
		}
	}
	// A map that learns the column order later makes a COPY without a column list possible.
	sql := "COPY invoices FROM STDIN"
	if p := r.Route(sql, Session{}, routeTestMap()); p.Target != TargetReject {
		t.Errorf("without column order: %s", p)
	}
	if p := r.Route(sql, Session{}, copyTestMap()); p.Copy == nil || p.Copy.KeyIndex != 1 {
		t.Errorf("with column order: %s", p.JSON())
	}
}

// TestCopyShapes checks that COPY statements differing only in their option literals are
// planned each with its own options (the literals are part of the shape), also when prepared.
func TestCopyShapes(t *testing.T) {
	m := copyTestMap()
	r := New(Config{})
	for _, tc := range []struct {
		sql   string
		delim byte
		null  string
	}{
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER ',', NULL 'x')", ',', "x"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER ';', NULL 'x')", ';', "x"},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER ';', NULL '')", ';', ""},
		{"COPY invoices (customer_id) FROM STDIN WITH (DELIMITER ',', NULL 'x')", ',', "x"},
	} {
		for _, p := range []Plan{r.Route(tc.sql, Session{}, m), r.Prepare(tc.sql, m).Plan(nil, Session{}, m)} {
			if p.Copy == nil || p.Copy.Delimiter != tc.delim || p.Copy.Null != tc.null {
				t.Errorf("%s: %s", tc.sql, p.JSON())
			}
		}
	}
}

// TestCopyOutSQL checks the per-group statement of COPY TO: it parses, copies the client's
// columns and options, and restricts the rows with ScatterSQL's own restriction.
func TestCopyOutSQL(t *testing.T) {
	m := copyTestMap()
	r := New(Config{})
	owned := shardmap.Of(0, 3, 15)
	// ScatterSQL's restriction of invoices to owned, as the scatter of a keyless read spells it.
	scatter, err := ScatterSQL("SELECT * FROM invoices", owned, m)
	if err != nil {
		t.Fatal(err)
	}
	restriction := scatter[strings.Index(scatter, "WHERE ")+len("WHERE "):]
	for _, tc := range []struct {
		sql, want string
	}{
		{"COPY invoices TO STDOUT",
			"COPY (SELECT * FROM invoices WHERE " + restriction + ") TO STDOUT"},
		{"COPY invoices (id, customer_id) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';', FORCE_QUOTE (id))",
			"COPY (SELECT id, customer_id FROM invoices WHERE " + restriction + ") TO STDOUT WITH (FORMAT CSV, HEADER, DELIMITER ';', FORCE_QUOTE (id))"},
		{"COPY invoices (id) TO STDOUT CSV HEADER",
			"COPY (SELECT id FROM invoices WHERE " + restriction + ") TO STDOUT CSV HEADER"},
		{"COPY BINARY public.invoices TO STDOUT",
			"COPY (SELECT * FROM public.invoices WHERE " + restriction + ") TO STDOUT WITH (FORMAT BINARY)"},
		{`COPY "invoices" ("Amount", customer_id) TO STDOUT WITH (NULL 'nil', ENCODING 'UTF8')`,
			`COPY (SELECT "Amount", customer_id FROM invoices WHERE ` + restriction + `) TO STDOUT WITH (NULL 'nil', ENCODING 'UTF8')`},
	} {
		p := copyPlan(t, r, tc.sql, m)
		if p.Copy == nil {
			t.Errorf("%s: %s", tc.sql, p.JSON())
			continue
		}
		got := p.Copy.OutSQL(owned)
		if got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.sql, got, tc.want)
		}
		tree, err := pg.Parse(got)
		if err != nil {
			t.Errorf("%s: %v", got, err)
			continue
		}
		c := tree.GetStmts()[0].GetStmt().GetCopyStmt()
		orig, _ := pg.Parse(tc.sql)
		oc := orig.GetStmts()[0].GetStmt().GetCopyStmt()
		if c.GetQuery().GetSelectStmt() == nil || c.IsFrom || c.Filename != "" || len(c.Options) != len(oc.Options) {
			t.Errorf("%s: not a COPY (SELECT) TO STDOUT with the client's %d options", got, len(oc.Options))
		}
		// Another shard set changes the array literal only.
		other := p.Copy.OutSQL(shardmap.Of(7))
		if strings.Replace(other, "'{7}'", "'"+owned.String()+"'", 1) != got {
			t.Errorf("OutSQL({7}) = %s", other)
		}
	}
	if p := r.Route("COPY invoices (customer_id) FROM STDIN", Session{}, m); p.Copy == nil || p.Copy.OutSQL(owned) != "" {
		t.Errorf("COPY FROM: %s, OutSQL %q", p.JSON(), p.Copy.OutSQL(owned))
	}
}

// TestCopyPlanOthers keeps what did not change: COPY of a query, of unsharded tables.
func TestCopyPlanOthers(t *testing.T) {
	m := copyTestMap()
	r := New(Config{})
	for sql, want := range map[string]string{
		"COPY (SELECT * FROM invoices WHERE customer_id = 3) TO STDOUT": "Read Shards{3}",
		"COPY settings FROM STDIN WITH (FORMAT csv)":                    "Write Default",
		"COPY settings TO '/tmp/settings'":                              "Read Default",
	} {
		if p := r.Route(sql, Session{}, m); p.String() != want || p.Copy != nil {
			t.Errorf("%s: %s, want %s without a CopySpec", sql, p.JSON(), want)
		}
	}
}

func TestCopyFormatText(t *testing.T) {
	for _, f := range []CopyFormat{CopyText, CopyCSV, CopyBinary} {
		b, _ := f.MarshalText()
		var back CopyFormat
		if err := back.UnmarshalText(b); err != nil || back != f {
			t.Errorf("%s: round trip %v, %v", f, back, err)
		}
	}
	var f CopyFormat
	if err := f.UnmarshalText([]byte("json")); err == nil {
		t.Error("json: no error")
	}
}
