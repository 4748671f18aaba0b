package proxy

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// routingFixture is a 4-group cluster (writer + replica each) behind a proxy, loaded through
// the proxy with the invoice fixture, and a reference database holding the same rows in one
// Postgres.
type routingFixture struct {
	p      *testProxy
	ref    *pgx.Conn
	counts rowCounts
}

func newRoutingFixture(t *testing.T, customers int) *routingFixture {
	t.Helper()
	ctx := context.Background()
	p := startShardedProxy(t, 4, 1, nil)
	super := connect(t, p.cluster.Groups[0].Writer.SuperDSN("postgres"))
	if _, err := super.Exec(ctx, "CREATE DATABASE ref OWNER "+pgtest.User); err != nil {
		t.Fatal(err)
	}
	ref := connect(t, strings.Replace(p.cluster.Groups[0].Writer.AppDSN(), "/"+pgtest.Database+"?", "/ref?", 1))
	if err := createInvoiceSchema(ctx, ref); err != nil {
		t.Fatal(err)
	}
	viaProxy := connect(t, p.dsn(""))
	if err := createInvoiceSchema(ctx, viaProxy); err != nil {
		t.Fatalf("schema through the proxy: %v", err)
	}
	conns := make([]*pgx.Conn, 4)
	for i := range conns {
		conns[i] = connect(t, p.dsn(""))
	}
	const seed = 20261124
	counts, err := loadInvoices(ctx, conns, customers, seed)
	if err != nil {
		t.Fatalf("load through the proxy: %v", err)
	}
	if _, err := loadInvoices(ctx, []*pgx.Conn{ref}, customers, seed); err != nil {
		t.Fatalf("load the reference: %v", err)
	}
	p.waitReplicasCaughtUp(t)
	return &routingFixture{p: p, ref: ref, counts: counts}
}

// TestRouting is the routing acceptance: rows land in the group owning customer_id % 16,
// routed and scattered reads equal the unsharded reference in simple and extended protocol,
// and statements that cannot run on one group fail with 0A000 leaving the session usable.
func TestRouting(t *testing.T) {
	fx := newRoutingFixture(t, envInt("SHARDWIRE_ROUTING_CUSTOMERS", 10000))
	ctx := context.Background()

	t.Run("rows where they belong", func(t *testing.T) {
		assertRowsWhereTheyBelong(t, ctx, fx.p.writers(t), fx.p.groupOf, fx.counts)
	})

	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"simple", pgx.QueryExecModeSimpleProtocol},
		{"extended", pgx.QueryExecModeCacheStatement},
		{"extended-text", pgx.QueryExecModeExec},
	}
	t.Run("scatter", func(t *testing.T) {
		conn := connect(t, fx.p.dsn(""))
		for _, c := range scatterCases {
			for _, m := range modes {
				want, err := queryResult(ctx, fx.ref, m.mode, c)
				if err != nil {
					t.Fatalf("%s on the reference: %v", c.name, err)
				}
				got, err := queryResult(ctx, conn, m.mode, c)
				if err != nil {
					t.Errorf("%s (%s) through the proxy: %v", c.name, m.name, err)
					continue
				}
				assertSameResult(t, c.name+"/"+m.name, want, got, c.ordered)
			}
		}
	})

	t.Run("routed", func(t *testing.T) {
		conn := connect(t, fx.p.dsn(""))
		ids := fx.counts.customerIDs()
		step := max(1, len(ids)/40)
		for i := 0; i < len(ids); i += step {
			for _, c := range routedCases(ids[i]) {
				for _, m := range modes {
					want, err := queryResult(ctx, fx.ref, m.mode, c)
					if err != nil {
						t.Fatalf("%s on the reference: %v", c.name, err)
					}
					got, err := queryResult(ctx, conn, m.mode, c)
					if err != nil {
						t.Errorf("%s (%s, customer %d) through the proxy: %v", c.name, m.name, ids[i], err)
						continue
					}
					assertSameResult(t, fmt.Sprintf("%s/%s/customer %d", c.name, m.name, ids[i]), want, got, c.ordered)
				}
			}
		}
	})

	t.Run("scatter in one pipeline", func(t *testing.T) {
		// Parse, Bind, Describe, Execute and Sync in one round trip (pgbench -M extended,
		// libpq's PQexecParams): the replies must come in protocol order.
		pipeline := func(sql string, execute bool, params ...[]byte) []string {
			t.Helper()
			pc, err := pgconn.Connect(ctx, fx.p.dsn(""))
			if err != nil {
				t.Fatal(err)
			}
			hc, err := pc.Hijack()
			if err != nil {
				t.Fatal(err)
			}
			defer hc.Conn.Close()
			fe := hc.Frontend
			fe.Send(&pgproto3.Parse{Query: sql})
			fe.Send(&pgproto3.Bind{Parameters: params})
			fe.Send(&pgproto3.Describe{ObjectType: 'P'})
			if execute {
				fe.Send(&pgproto3.Execute{})
			}
			fe.Send(&pgproto3.Sync{})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				msg, err := fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%T", msg)[len("*pgproto3."):])
				if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
					return got
				}
			}
		}
		expect := func(what string, got []string, want ...string) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Errorf("%s: replies %v, want %v", what, got, want)
			}
		}
		const count = "SELECT count(*) FROM invoices WHERE status = $1"
		expect("scatter", pipeline(count, true, []byte("paid")),
			"ParseComplete", "BindComplete", "RowDescription", "DataRow", "CommandComplete", "ReadyForQuery")
		expect("scatter described, not executed", pipeline(count, false, []byte("paid")),
			"ParseComplete", "BindComplete", "RowDescription", "ReadyForQuery")
		expect("DDL", pipeline("CREATE TABLE piped (customer_id bigint)", true),
			"ParseComplete", "BindComplete", "NoData", "CommandComplete", "ReadyForQuery")
		expect("DDL described, not executed", pipeline("CREATE TABLE piped_not (customer_id bigint)", false),
			"ParseComplete", "BindComplete", "NoData", "ReadyForQuery")
		for g, w := range fx.p.writers(t) {
			var n int
			if err := w.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname IN ('piped', 'piped_not')").Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: %d of the piped tables (want only the executed one), %v", g, n, err)
			}
		}
	})

	t.Run("unmergeable", func(t *testing.T) {
		conn := connect(t, fx.p.dsn(""))
		probe := fx.counts.customerIDs()[0]
		for _, c := range unmergeableCases {
			for _, m := range modes {
				_, err := queryResult(ctx, conn, m.mode, c)
				if pgCode(err) != "0A000" {
					t.Errorf("%s (%s): got %v, want SQLSTATE 0A000", c.name, m.name, err)
				}
				if n := mustQueryInt(t, conn, "SELECT count(*) FROM customers WHERE customer_id = $1", probe); n != 1 {
					t.Fatalf("session unusable after %s: count %d", c.name, n)
				}
			}
		}
	})

	t.Run("cross-group and keyless writes", func(t *testing.T) {
		testCrossGroup(t, fx)
	})

	t.Run("ddl on every group", func(t *testing.T) {
		testDDL(t, fx)
	})
}

// testDDL checks that DDL on a sharded table reaches every group in both protocols, and that a
// group failing it is named with the groups that applied it.
func testDDL(t *testing.T, fx *routingFixture) {
	ctx := context.Background()
	conn := connect(t, fx.p.dsn(""))
	writers := fx.p.writers(t)
	tableOn := func(name string) map[string]bool {
		out := map[string]bool{}
		for g, w := range writers {
			var n int
			if err := w.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = $1", name).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out[g] = n == 1
		}
		return out
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		name := fmt.Sprintf("ddl_%d", mode)
		if _, err := conn.Exec(ctx, "CREATE TABLE "+name+" (customer_id bigint NOT NULL, v int)", mode); err != nil {
			t.Fatalf("CREATE TABLE (%v): %v", mode, err)
		}
		for g, ok := range tableOn(name) {
			if !ok {
				t.Errorf("%s missing on %s after CREATE TABLE through the proxy", name, g)
			}
		}
		// The new table is sharded at once: a keyed insert lands in its owner.
		if _, err := conn.Exec(ctx, "INSERT INTO "+name+" (customer_id, v) VALUES ($1, 1)", mode, int64(13)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := writers[fx.p.groupOf(13)].QueryRow(ctx, "SELECT count(*) FROM "+name).Scan(&n); err != nil || n != 1 {
			t.Fatalf("row of customer 13 not on %s: %d, %v", fx.p.groupOf(13), n, err)
		}
	}
	// A table that exists on g2 already: the CREATE fails there, having run on g0 and g1.
	execAll(t, writers["g2"], "CREATE TABLE ddl_clash (customer_id bigint)")
	_, err := conn.Exec(ctx, "CREATE TABLE ddl_clash (customer_id bigint)")
	if pgCode(err) != "42P07" || !strings.Contains(err.Error(), "applied on: g0, g1") || !strings.Contains(err.Error(), "not run on: g3") {
		t.Fatalf("clashing CREATE TABLE: %v; want 42P07 naming the groups", err)
	}
	if on := tableOn("ddl_clash"); !on["g0"] || !on["g1"] || on["g3"] {
		t.Fatalf("ddl_clash on %v", on)
	}
	if n := mustQueryInt(t, conn, "SELECT count(*) FROM customers WHERE customer_id = $1", fx.counts.customerIDs()[0]); n != 1 {
		t.Fatal("session unusable after a failed DDL")
	}
}

// testCrossGroup checks the documented errors of statements that cannot run in one group, and
// that nothing of a failed transaction is kept.
func testCrossGroup(t *testing.T, fx *routingFixture) {
	ctx := context.Background()
	conn := connect(t, fx.p.dsn(""))
	var a, b int64 // loaded customers of groups g0 and g1
	for _, id := range fx.counts.customerIDs() {
		switch fx.p.groupOf(id) {
		case "g0":
			a = id
		case "g1":
			b = id
		}
	}
	expectCode := func(what string, err error, code string) {
		t.Helper()
		if pgCode(err) != code {
			t.Fatalf("%s: got %v, want SQLSTATE %s", what, err, code)
		}
	}
	usable := func() {
		t.Helper()
		if n := mustQueryInt(t, conn, "SELECT count(*) FROM customers WHERE customer_id = $1", a); n != 1 {
			t.Fatalf("session unusable: %d", n)
		}
	}

	// A transaction pinned to g0 that then touches g1 fails, and its first write is not kept.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE customers SET name = 'cross-group' WHERE customer_id = $1", mode, a); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, "UPDATE customers SET name = 'cross-group' WHERE customer_id = $1", mode, b)
		expectCode("second group in a transaction", err, "0A000")
		if !strings.Contains(err.Error(), "shard") {
			t.Errorf("error does not name the shards: %v", err)
		}
		if err := tx.Commit(ctx); err == nil {
			t.Errorf("COMMIT of a failed transaction succeeded")
		}
		usable()
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM customers WHERE customer_id = $1 AND name = 'cross-group'", a).Scan(&n); err != nil || n != 0 {
			t.Fatalf("write of the failed transaction kept: %d, %v", n, err)
		}
	}

	// Keyless writes on a sharded table.
	for _, sql := range []string{
		"UPDATE invoices SET status = 'void'",
		"DELETE FROM invoice_lines WHERE quantity > 1000",
		"INSERT INTO customers (name, tier, created_at) VALUES ('x', 'free', now())",
	} {
		_, err := conn.Exec(ctx, sql)
		expectCode(sql, err, "0A000")
		usable()
	}

	// A multi-row INSERT spanning groups is split by group outside a transaction; inside one
	// (without two_phase_commit) it stays refused.
	const spanning = `INSERT INTO customers (customer_id, name, tier, created_at) VALUES
		(100001, 'a', 'free', now()), (100005, 'b', 'free', now())`
	if _, err := conn.Exec(ctx, spanning); err != nil {
		t.Fatalf("multi-row INSERT across groups: %v", err)
	}
	for _, id := range []int64{100001, 100005} {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM customers WHERE customer_id = $1", id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("split INSERT: customer %d has %d rows, %v; want 1", id, n, err)
		}
	}
	txSplit, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = txSplit.Exec(ctx, strings.ReplaceAll(strings.ReplaceAll(spanning, "100001", "100101"), "100005", "100105"))
	expectCode("multi-row INSERT across groups in a transaction", err, "0A000")
	_ = txSplit.Rollback(ctx)
	usable()

	// A scatter inside a transaction.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT count(*) FROM invoices")
	expectCode("scatter in a transaction", err, "0A000")
	_ = tx.Rollback(ctx)
	usable()
}

// envInt reads a positive integer from the environment, else returns def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
