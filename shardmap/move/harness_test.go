package move

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// moveSchemaDDL is the sharded schema the move tests replicate: a parent and a child linked
// by a foreign key (the child schema-qualified), a table keyed by another column, and a
// partitioned table.
const moveSchemaDDL = `
CREATE TABLE customers (customer_id bigint PRIMARY KEY, name text NOT NULL);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (customer_id bigint NOT NULL REFERENCES customers, id int NOT NULL,
	amount numeric(12,2), PRIMARY KEY (customer_id, id));
CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int NOT NULL DEFAULT 0, filler text);
CREATE TABLE events (customer_id bigint NOT NULL, id bigint NOT NULL, body text, PRIMARY KEY (customer_id, id))
	PARTITION BY HASH (customer_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
`

var moveTables = []Table{
	{Name: "customers", KeyColumn: "customer_id"},
	{Name: "billing.invoices", KeyColumn: "customer_id"},
	{Name: "pgbench_accounts", KeyColumn: "aid"},
	{Name: "events", KeyColumn: "customer_id"},
}

// fillKeys inserts rows for every key lo..hi of every shard but skip (-1: none): one
// customer, three invoices, one account and two events per key.
func fillKeys(lo, hi int, skip int) string {
	where := "true"
	if skip >= 0 {
		where = fmt.Sprintf("%s <> %d", ShardExpr("k"), skip)
	}
	return fmt.Sprintf(`
INSERT INTO customers SELECT k, 'customer ' || k FROM generate_series(%[1]d, %[2]d) k WHERE %[3]s;
INSERT INTO billing.invoices SELECT k, i, k * 1.25 + i FROM generate_series(%[1]d, %[2]d) k, generate_series(1, 3) i WHERE %[3]s;
INSERT INTO pgbench_accounts SELECT k, k %% 7, k * 10, 'x' FROM generate_series(%[1]d, %[2]d) k WHERE %[3]s;
INSERT INTO events SELECT k, i, 'event ' || i FROM generate_series(%[1]d, %[2]d) k, generate_series(1, 2) i WHERE %[3]s;
`, lo, hi, where)
}

// movePair is a fresh database on group 0 (the source) and group 1 (the target), with
// superuser connections to both, as a move's orchestrator holds them.
type movePair struct {
	db             string
	source, target *pgx.Conn
	srcSrv, tgtSrv *pgtest.Server
}

// newMovePair creates the database on both groups with ddl, and drops every move object
// of the database again at the test's end.
func newMovePair(t *testing.T, ddl string) *movePair {
	t.Helper()
	p := newPair(t, ddl, ddl)
	mp := &movePair{srcSrv: cluster.Groups[0].Writer, tgtSrv: cluster.Groups[1].Writer}
	if err := p.source.QueryRow(context.Background(), "SELECT current_database()").Scan(&mp.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mp.cleanup(t))
	mp.source = pgtest.Connect(t, mp.srcSrv.SuperDSN(mp.db))
	mp.target = pgtest.Connect(t, mp.tgtSrv.SuperDSN(mp.db))
	return mp
}

// cleanup drops the replication of moves 1..9 both ways over fresh connections (a test may
// have killed a server) so that later tests start with no slot or worker in use.
func (p *movePair) cleanup(t *testing.T) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		src, err := pgx.Connect(ctx, p.srcSrv.SuperDSN(p.db))
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer src.Close(ctx)
		tgt, err := pgx.Connect(ctx, p.tgtSrv.SuperDSN(p.db))
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer tgt.Close(ctx)
		for move := int64(1); move < 10; move++ {
			fwd, rev := p.forward(move, 0, moveTables), p.reverse(move, 0, moveTables)
			if err := DropReplication(ctx, src, tgt, fwd); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			if err := DropReplication(ctx, tgt, src, rev); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
}

// forward is the spec of move's forward direction, copying.
func (p *movePair) forward(move int64, shard shardmap.Shard, tables []Table) Spec {
	name, _ := Names(move)
	return Spec{Move: move, Shard: shard, Tables: tables, Name: name, SourceConnInfo: p.srcSrv.SuperDSN(p.db),
		CopyData: true, SourceGroup: "g0", TargetGroup: "g1"}
}

// reverse is the spec of move's reverse direction, not copying.
func (p *movePair) reverse(move int64, shard shardmap.Shard, tables []Table) Spec {
	_, name := Names(move)
	return Spec{Move: move, Shard: shard, Tables: tables, Name: name, SourceConnInfo: p.tgtSrv.SuperDSN(p.db),
		SourceGroup: "g1", TargetGroup: "g0"}
}

// testCtx is a context for one step of a test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 20ms until it holds, failing the test after timeout with the
// last description cond gave.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %v: %s", what, timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shardRows returns the rows of shard of table t, as text, sorted.
func shardRows(t *testing.T, conn *pgx.Conn, tb Table, shard shardmap.Shard) []string {
	t.Helper()
	q := fmt.Sprintf("SELECT r::text FROM %s r WHERE %s ORDER BY 1", tb.Ident(), shardFilter("r."+tb.keyIdent(), shard))
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("rows of %s: %v", tb.Name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("rows of %s: %v", tb.Name, err)
	}
	return out
}

// sameShardRows compares the shard's rows of every table on both sides.
func sameShardRows(t *testing.T, source, target *pgx.Conn, tables []Table, shard shardmap.Shard) (bool, string) {
	t.Helper()
	for _, tb := range tables {
		s, d := shardRows(t, source, tb, shard), shardRows(t, target, tb, shard)
		if !slices.Equal(s, d) {
			return false, fmt.Sprintf("%s: source has %d rows, target %d", tb.Name, len(s), len(d))
		}
	}
	return true, ""
}

// countWhere counts the rows of table tb matching cond (an SQL condition on alias r).
func countWhere(t *testing.T, conn *pgx.Conn, tb Table, cond string) int64 {
	t.Helper()
	var n int64
	q := fmt.Sprintf("SELECT count(*) FROM %s r WHERE %s", tb.Ident(), cond)
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", tb.Name, err)
	}
	return n
}

// leftovers returns Leftovers(conn), failing the test on error.
func leftovers(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	l, err := Leftovers(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// containsAll reports whether every want is a substring of some element of got.
func containsAll(got []string, want ...string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			return false
		}
	}
	return true
}
