package proxy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// The invoice fixture's self-test: the fixture runs against plain Postgres, with no proxy,
// to show that it is deterministic, that its comparison fails when results differ, and that
// its placement check finds misplaced rows.

// selfTestCustomers is the data set size of the self-test (the acceptance tests use more).
const selfTestCustomers = 2000

// fixtureLoadConns is how many connections load one database.
const fixtureLoadConns = 3

// fixtureModes are the exec modes every case is compared in: simple protocol (text), extended
// with cached statements (binary where pgx knows the type) and extended without (text).
var fixtureModes = []pgx.QueryExecMode{
	pgx.QueryExecModeSimpleProtocol,
	pgx.QueryExecModeCacheStatement,
	pgx.QueryExecModeExec,
}

// fixtureGroupOwner is the owner of a customer in the self-test's four fake groups: shards
// 0-3 on g0, 4-7 on g1, 8-11 on g2, 12-15 on g3.
func fixtureGroupOwner(customerID int64) string { return fmt.Sprintf("g%d", customerID%16/4) }

func TestInvoiceFixture(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{})
	srv := cl.Groups[0].Writer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	super := connect(t, srv.SuperDSN("postgres"))

	// ref and copy: same seed, loaded through different protocols; other: another seed.
	refCounts := loadFixtureDB(t, ctx, super, srv, "fix_ref", 1, pgx.QueryExecModeCacheStatement)
	copyCounts := loadFixtureDB(t, ctx, super, srv, "fix_copy", 1, pgx.QueryExecModeSimpleProtocol)
	otherCounts := loadFixtureDB(t, ctx, super, srv, "fix_other", 2, pgx.QueryExecModeCacheStatement)
	// Four fake shard groups cloned from ref (no session may be open on ref meanwhile), each
	// keeping only the shards it owns.
	groups := make(map[string]*pgx.Conn)
	for g := range 4 {
		name := fmt.Sprintf("g%d", g)
		db := "fix_" + name
		if _, err := super.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE fix_ref OWNER %s", db, pgtest.User)); err != nil {
			t.Fatalf("create %s: %v", db, err)
		}
		conn := connect(t, srv.DSN(pgtest.User, pgtest.Password, db))
		for _, table := range invoiceTables {
			if _, err := conn.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE customer_id %% 16 / 4 <> %d", table, g)); err != nil {
				t.Fatalf("%s: %v", db, err)
			}
		}
		groups[name] = conn
	}
	ref := connect(t, srv.DSN(pgtest.User, pgtest.Password, "fix_ref"))
	cp := connect(t, srv.DSN(pgtest.User, pgtest.Password, "fix_copy"))
	other := connect(t, srv.DSN(pgtest.User, pgtest.Password, "fix_other"))

	t.Run("counts", func(t *testing.T) {
		if len(refCounts.ByCustomer) != selfTestCustomers {
			t.Errorf("loaded %d customers, want %d", len(refCounts.ByCustomer), selfTestCustomers)
		}
		if refCounts.Total != copyCounts.Total || !maps.Equal(refCounts.ByCustomer, copyCounts.ByCustomer) {
			t.Errorf("same seed, different data: %+v vs %+v", refCounts.Total, copyCounts.Total)
		}
		if maps.Equal(refCounts.ByCustomer, otherCounts.ByCustomer) {
			t.Error("seeds 1 and 2 generated the same customers")
		}
		for _, table := range invoiceTables {
			for db, c := range map[string]*pgx.Conn{"ref": ref, "copy": cp} {
				if got, want := mustQueryInt(t, c, "SELECT count(*) FROM "+table), refCounts.Total.of(table); got != want {
					t.Errorf("%s.%s: %d rows, loader reports %d", db, table, got, want)
				}
			}
		}
	})

	t.Run("data shape", func(t *testing.T) {
		// Each property the fixture promises, as a count that must lie in [lo, hi].
		checks := []struct {
			what   string
			sql    string
			lo, hi int64
		}{
			{"shards covered", `SELECT count(DISTINCT customer_id % 16) FROM customers`, 16, 16},
			{"non-positive ids", `SELECT count(*) FROM customers WHERE customer_id <= 0`, 0, 0},
			{"ids above 2^32", `SELECT count(*) FROM customers WHERE customer_id > 4294967296`, 1, selfTestCustomers},
			{"ids above 2^50", `SELECT count(*) FROM customers WHERE customer_id >= 1125899906842624`, 1, selfTestCustomers},
			{"invoice ids off the scheme", `SELECT count(*) FROM invoices WHERE invoice_id / 1000 <> customer_id OR invoice_id % 1000 NOT BETWEEN 1 AND 5`, 0, 0},
			{"customers without invoices", `SELECT count(*) FROM customers c WHERE NOT EXISTS (SELECT FROM invoices i WHERE i.customer_id = c.customer_id)`, 1, selfTestCustomers},
			{"customers with 5 invoices", `SELECT count(*) FROM (SELECT customer_id FROM invoices GROUP BY 1 HAVING count(*) = 5) s`, 1, selfTestCustomers},
			{"invoices without lines or with more than 4", `SELECT count(*) FROM invoices i WHERE (SELECT count(*) FROM invoice_lines l WHERE l.customer_id = i.customer_id AND l.invoice_id = i.invoice_id) NOT BETWEEN 1 AND 4`, 0, 0},
			{"invoices with 4 lines", `SELECT count(*) FROM (SELECT 1 FROM invoice_lines GROUP BY customer_id, invoice_id HAVING count(*) = 4) s`, 1, 1 << 30},
			{"NULL due_at", `SELECT count(*) FROM invoices WHERE due_at IS NULL`, 1, 1 << 30},
			{"NULL weight", `SELECT count(*) FROM invoices WHERE weight IS NULL`, 1, 1 << 30},
			{"NULL country", `SELECT count(*) FROM customers WHERE country IS NULL`, 1, 1 << 30},
			{"empty country", `SELECT count(*) FROM customers WHERE country = ''`, 1, 1 << 30},
			{"empty names", `SELECT count(*) FROM customers WHERE name = ''`, 1, 1 << 30},
			{"empty descriptions", `SELECT count(*) FROM invoice_lines WHERE description = ''`, 1, 1 << 30},
			{"non-ASCII names", `SELECT count(*) FROM customers WHERE octet_length(name) > char_length(name)`, 1, 1 << 30},
			{"names differing only in case", `SELECT count(*) FROM (SELECT lower(name) FROM customers GROUP BY 1 HAVING count(DISTINCT name) > 1) s`, 1, 1 << 30},
			{"tied total_minor values", `SELECT count(*) FROM (SELECT total_minor FROM invoices GROUP BY 1 HAVING count(*) > 1) s`, 1, 1 << 30},
			{"tied issued_on values", `SELECT count(*) FROM (SELECT issued_on FROM invoices GROUP BY 1 HAVING count(*) > 1) s`, 1, 1 << 30},
			{"tied created_at values", `SELECT count(*) FROM (SELECT created_at FROM customers GROUP BY 1 HAVING count(*) > 1) s`, 1, 1 << 30},
			{"tied names", `SELECT count(*) FROM (SELECT name FROM customers GROUP BY 1 HAVING count(*) > 1) s`, 1, 1 << 30},
			{"years of issued_on", `SELECT count(DISTINCT extract(year FROM issued_on)) FROM invoices`, 5, 7},
			{"years of created_at", `SELECT count(DISTINCT extract(year FROM created_at)) FROM customers`, 5, 7},
			{"paid_minor with cents", `SELECT count(*) FROM invoices WHERE paid_minor <> trunc(paid_minor)`, 1, 1 << 30},
			{"negative unit prices", `SELECT count(*) FROM invoice_lines WHERE unit_price_minor < 0`, 1, 1 << 30},
			{"weights not multiples of 0.25", `SELECT count(*) FROM invoices WHERE weight * 4 <> trunc(weight * 4) OR weight >= 10000`, 0, 0},
			{"statuses", `SELECT count(DISTINCT status) FROM invoices`, 4, 4},
			{"tiers", `SELECT count(DISTINCT tier) FROM customers`, 4, 4},
		}
		for _, c := range checks {
			if got := mustQueryInt(t, ref, c.sql); got < c.lo || got > c.hi {
				t.Errorf("%s: %d, want %d..%d", c.what, got, c.lo, c.hi)
			}
		}
	})

	routedIDs := fixtureRoutedCustomers(t, refCounts)

	t.Run("deterministic", func(t *testing.T) {
		binaryColumns := 0
		for _, mode := range fixtureModes {
			// Every case but the routed ones of customers without invoices returns rows unless
			// marked noRows.
			type checked struct {
				queryCase
				checkRows bool
			}
			var cases []checked
			for _, c := range scatterCases {
				cases = append(cases, checked{c, true})
			}
			for i, id := range routedIDs {
				for _, c := range routedCases(id) {
					c.name = fmt.Sprintf("routed_%s_customer%d", c.name, i)
					cases = append(cases, checked{c, i == 0})
				}
			}
			for _, c := range cases {
				name := modeName(mode) + "/" + c.name
				want, err := queryResult(ctx, ref, mode, c.queryCase)
				if err != nil {
					t.Errorf("%s on ref: %v", name, err)
					continue
				}
				got, err := queryResult(ctx, cp, mode, c.queryCase)
				if err != nil {
					t.Errorf("%s on copy: %v", name, err)
					continue
				}
				assertSameResult(t, name, want, got, c.ordered)
				if c.checkRows && (len(want.Rows) == 0) != c.noRows {
					t.Errorf("%s: %d rows, want none: %v", name, len(want.Rows), c.noRows)
				}
				for _, col := range want.Columns {
					if col.Format == pgx.BinaryFormatCode {
						if mode != pgx.QueryExecModeCacheStatement {
							t.Errorf("%s: binary column %q in a text mode", name, col.Name)
						}
						binaryColumns++
					}
				}
			}
		}
		if binaryColumns == 0 {
			t.Error("no binary column in extended mode: the binary path is not compared")
		}
	})

	t.Run("unmergeable cases run on Postgres", func(t *testing.T) {
		for _, mode := range fixtureModes {
			for _, c := range unmergeableCases {
				res, err := queryResult(ctx, ref, mode, c)
				if err != nil {
					t.Errorf("%s/%s: %v", modeName(mode), c.name, err)
				} else if len(res.Rows) == 0 {
					t.Errorf("%s/%s: no rows", modeName(mode), c.name)
				}
			}
		}
	})

	t.Run("other seed differs", func(t *testing.T) {
		for _, name := range []string{"count_star", "sum_bigint"} {
			c := fixtureCase(t, name)
			want, err := queryResult(ctx, ref, pgx.QueryExecModeCacheStatement, c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := queryResult(ctx, other, pgx.QueryExecModeCacheStatement, c)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffResults(want, got, c.ordered); d == "" {
				t.Errorf("%s: seeds 1 and 2 give the same result", name)
			} else {
				t.Logf("%s, seed 1 vs 2: %s", name, d)
			}
		}
	})

	t.Run("diff catches changes", func(t *testing.T) {
		testFixtureDiff(t, ctx, ref)
	})

	t.Run("rows where they belong", func(t *testing.T) {
		assertRowsWhereTheyBelong(t, ctx, groups, fixtureGroupOwner, refCounts)

		ids := refCounts.customerIDs()
		stray := ids[slices.IndexFunc(ids, func(id int64) bool { return fixtureGroupOwner(id) != "g1" })]
		if _, err := groups["g1"].Exec(ctx, `INSERT INTO customers VALUES ($1, 'stray', 'free', NULL, now())`, stray); err != nil {
			t.Fatal(err)
		}
		var lost int64
		if err := groups["g2"].QueryRow(ctx, `DELETE FROM invoice_lines WHERE (customer_id, invoice_id, line_no) =
	(SELECT customer_id, invoice_id, line_no FROM invoice_lines ORDER BY 1, 2, 3 LIMIT 1) RETURNING customer_id`).Scan(&lost); err != nil {
			t.Fatal(err)
		}
		problems, err := checkRowsWhereTheyBelong(ctx, groups, fixtureGroupOwner, refCounts)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(problems, "\n")
		for _, want := range []string{
			fmt.Sprintf("customers: 1 row(s) of customer %d (shard %d, owner %s) on g1", stray, stray%16, fixtureGroupOwner(stray)),
			fmt.Sprintf("customers: %d rows over all groups, want %d", refCounts.Total.Customers+1, refCounts.Total.Customers),
			fmt.Sprintf("invoice_lines: customer %d has %d row(s) on its owner g2, want %d", lost, refCounts.ByCustomer[lost].Lines-1, refCounts.ByCustomer[lost].Lines),
			fmt.Sprintf("invoice_lines: %d rows over all groups, want %d", refCounts.Total.Lines-1, refCounts.Total.Lines),
		} {
			if !strings.Contains(text, want) {
				t.Errorf("problems lack %q:\n%s", want, text)
			}
		}
		if len(problems) != 4 {
			t.Errorf("%d problems, want 4:\n%s", len(problems), text)
		}
	})
}

// loadFixtureDB creates database db owned by the app role, creates the schema and loads seed's
// data through fixtureLoadConns connections in exec mode mode, and closes them.
func loadFixtureDB(t *testing.T, ctx context.Context, super *pgx.Conn, srv *pgtest.Server, db string, seed int64, mode pgx.QueryExecMode) rowCounts {
	t.Helper()
	if _, err := super.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, pgtest.User)); err != nil {
		t.Fatalf("create %s: %v", db, err)
	}
	cfg, err := pgx.ParseConfig(srv.DSN(pgtest.User, pgtest.Password, db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	conns := make([]*pgx.Conn, fixtureLoadConns)
	for i := range conns {
		if conns[i], err = pgx.ConnectConfig(ctx, cfg); err != nil {
			t.Fatalf("connect %s: %v", db, err)
		}
		defer conns[i].Close(context.Background())
	}
	if err := createInvoiceSchema(ctx, conns[0]); err != nil {
		t.Fatalf("%s: %v", db, err)
	}
	start := time.Now()
	counts, err := loadInvoices(ctx, conns, selfTestCustomers, seed)
	if err != nil {
		t.Fatalf("%s: %v", db, err)
	}
	t.Logf("%s: loaded %+v in %s (%s)", db, counts.Total, time.Since(start).Round(time.Millisecond), modeName(mode))
	return counts
}

// fixtureRoutedCustomers picks the customers the routed cases run for: the first with the
// most invoices, one without invoices, and the largest id.
func fixtureRoutedCustomers(t *testing.T, rc rowCounts) []int64 {
	t.Helper()
	ids := rc.customerIDs()
	rich, none := ids[0], int64(-1)
	for _, id := range ids {
		c := rc.ByCustomer[id]
		if c.Invoices > rc.ByCustomer[rich].Invoices || (c.Invoices == rc.ByCustomer[rich].Invoices && c.Lines > rc.ByCustomer[rich].Lines) {
			rich = id
		}
		if c.Invoices == 0 && none < 0 {
			none = id
		}
	}
	if rc.ByCustomer[rich].Invoices != fixtureMaxInvoices || none < 0 {
		t.Fatalf("no customer with %d invoices (%d) or none without (%d)", fixtureMaxInvoices, rich, none)
	}
	return []int64{rich, none, ids[len(ids)-1]}
}

// fixtureCase returns the scatter case called name.
func fixtureCase(t *testing.T, name string) queryCase {
	t.Helper()
	i := slices.IndexFunc(scatterCases, func(c queryCase) bool { return c.name == name })
	if i < 0 {
		t.Fatalf("no scatter case %q", name)
	}
	return scatterCases[i]
}

// fixtureRecorder is a testing.TB that records failures instead of failing the test.
type fixtureRecorder struct {
	testing.TB
	errors []string
}

func (r *fixtureRecorder) Helper() {}

func (r *fixtureRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// testFixtureDiff checks that diffResults and assertSameResult notice every kind of change.
func testFixtureDiff(t *testing.T, ctx context.Context, conn *pgx.Conn) {
	// An unordered case with NULLs and empty strings, and an ordered one, in binary.
	concat, err := queryResult(ctx, conn, pgx.QueryExecModeCacheStatement, fixtureCase(t, "concat_customers"))
	if err != nil {
		t.Fatal(err)
	}
	sorted, err := queryResult(ctx, conn, pgx.QueryExecModeCacheStatement, fixtureCase(t, "order_text"))
	if err != nil {
		t.Fatal(err)
	}
	clone := func(r result) result {
		c := result{Columns: slices.Clone(r.Columns), Tag: r.Tag}
		for _, row := range r.Rows {
			cr := make([][]byte, len(row))
			for i, v := range row {
				if v != nil {
					cr[i] = append([]byte{}, v...)
				}
			}
			c.Rows = append(c.Rows, cr)
		}
		return c
	}
	// country (column 3) of the first row whose country is '' / NULL.
	emptyAt := slices.IndexFunc(concat.Rows, func(r [][]byte) bool { return r[3] != nil && len(r[3]) == 0 })
	nullAt := slices.IndexFunc(concat.Rows, func(r [][]byte) bool { return r[3] == nil })
	if emptyAt < 0 || nullAt < 0 || len(sorted.Rows) < 2 {
		t.Fatalf("fixture lacks '' (%d) or NULL (%d) countries or sorted rows (%d)", emptyAt, nullAt, len(sorted.Rows))
	}
	cases := []struct {
		name                 string
		base                 result
		change               func(r *result)
		wantOrdered, wantAny bool // diff expected when compared ordered / unordered
	}{
		{"unchanged", concat, func(*result) {}, false, false},
		{"one byte of a value", sorted, func(r *result) { r.Rows[7][1] = append(r.Rows[7][1], 'x') }, true, true},
		{"last byte of an id", sorted, func(r *result) { r.Rows[3][0][len(r.Rows[3][0])-1]++ }, true, true},
		{"empty string to NULL", concat, func(r *result) { r.Rows[emptyAt][3] = nil }, true, true},
		{"NULL to empty string", concat, func(r *result) { r.Rows[nullAt][3] = []byte{} }, true, true},
		{"two rows swapped", sorted, func(r *result) { r.Rows[0], r.Rows[1] = r.Rows[1], r.Rows[0] }, true, false},
		{"row dropped", concat, func(r *result) { r.Rows = r.Rows[1:] }, true, true},
		{"row duplicated over another", concat, func(r *result) { r.Rows[1] = r.Rows[0] }, true, true},
		{"type changed", sorted, func(r *result) { r.Columns[0].TypeOID = 23 }, true, true},
		{"format changed", sorted, func(r *result) { r.Columns[1].Format = 1 - r.Columns[1].Format }, true, true},
		{"column renamed", sorted, func(r *result) { r.Columns[1].Name = "Name" }, true, true},
		{"tag changed", sorted, func(r *result) { r.Tag = "SELECT 49" }, true, true},
	}
	for _, c := range cases {
		got := clone(c.base)
		c.change(&got)
		for _, ordered := range []bool{true, false} {
			want := c.wantAny
			if ordered {
				want = c.wantOrdered
			}
			d := diffResults(c.base, got, ordered)
			if (d != "") != want {
				t.Errorf("%s, ordered %v: diff %q, want a diff: %v", c.name, ordered, d, want)
			}
			rec := &fixtureRecorder{TB: t}
			assertSameResult(rec, c.name, c.base, got, ordered)
			if (len(rec.errors) > 0) != want {
				t.Errorf("%s, ordered %v: assertSameResult reported %q, want a failure: %v", c.name, ordered, rec.errors, want)
			}
		}
	}
	// A diff names the changed row and shows both values readably.
	got := clone(sorted)
	got.Rows[4][1] = []byte("changed")
	d := diffResults(sorted, got, true)
	if !strings.Contains(d, "row 4:") || !strings.Contains(d, `"changed"`) || !strings.Contains(d, "1 of 50/50 rows differ") {
		t.Errorf("diff of one changed row:\n%s", d)
	}
	t.Logf("sample diff:\n%s", d)
}
