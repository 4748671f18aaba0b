package move

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// writeCase is one write against a fenced database and whether the fence must refuse it.
type writeCase struct {
	name    string
	sql     string
	refused bool
}

// fenceWrites are writes around shard 5 (keys 5, 21, 37, -11, -27 are in it).
var fenceWrites = []writeCase{
	{"insert in the shard", `INSERT INTO customers VALUES (5 + 16 * 100, 'new')`, true},
	{"insert with a negative key in the shard", `INSERT INTO customers VALUES (-11 - 16 * 100, 'new')`, true},
	{"insert in another shard", `INSERT INTO customers VALUES (6 + 16 * 100, 'new')`, false},
	{"update in the shard", `UPDATE customers SET name = 'x' WHERE customer_id = 21`, true},
	{"update in another shard", `UPDATE customers SET name = 'x' WHERE customer_id = 22`, false},
	{"update moving a row into the shard", `UPDATE pgbench_accounts SET aid = 5 + 16 * 100 WHERE aid = 6`, true},
	{"update moving a row out of the shard", `UPDATE pgbench_accounts SET aid = 6 + 16 * 100 WHERE aid = 5`, true},
	{"delete in the shard", `DELETE FROM events WHERE customer_id = -27`, true},
	{"delete in another shard", `DELETE FROM events WHERE customer_id = -26`, false},
	{"schema-qualified child", `INSERT INTO billing.invoices VALUES (37, 99, 1)`, true},
	{"other key column", `UPDATE pgbench_accounts SET abalance = 0 WHERE aid = 37`, true},
	{"other key column, other shard", `UPDATE pgbench_accounts SET abalance = 0 WHERE aid = 38`, false},
	{"partitioned parent", `INSERT INTO events VALUES (53, 9, 'x')`, true},
	{"partition written directly", `INSERT INTO events_p0 SELECT k, 9, 'x' FROM generate_series(5::bigint, 5 + 16 * 20, 16) k WHERE satisfies_hash_partition('events'::regclass, 2, 0, k)`, true},
	{"partition written directly, other shard", `INSERT INTO events_p0 SELECT k, 9, 'x' FROM generate_series(6::bigint, 6 + 16 * 20, 16) k WHERE satisfies_hash_partition('events'::regclass, 2, 0, k)`, false},
	{"truncate", `TRUNCATE customers CASCADE`, true},
	{"truncate of a partition", `TRUNCATE events_p1`, true},
}

// tryWrite runs sql in a transaction it rolls back and returns its error.
func tryWrite(t *testing.T, conn *pgx.Conn, sql string) error {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, sql)
	return err
}

// checkWrites runs every case on conn, expecting refusals to carry the fence's error with
// the given message parts.
func checkWrites(t *testing.T, conn *pgx.Conn, cases []writeCase, message ...string) {
	t.Helper()
	for _, c := range cases {
		err := tryWrite(t, conn, c.sql)
		if !c.refused {
			if err != nil {
				t.Errorf("%s: %v, want success", c.name, err)
			}
			continue
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != shardmap.CodeShardFenced {
			t.Errorf("%s: %v, want SQLSTATE %s", c.name, err, shardmap.CodeShardFenced)
			continue
		}
		for _, m := range message {
			if !strings.Contains(pe.Message, m) {
				t.Errorf("%s: message %q lacks %q", c.name, pe.Message, m)
			}
		}
		if pe.Hint != FenceHint {
			t.Errorf("%s: hint %q, want %q", c.name, pe.Hint, FenceHint)
		}
	}
}

func TestFence(t *testing.T) {
	p := newMovePair(t, moveSchemaDDL)
	exec(t, p.source, fillKeys(-40, 60, -1))
	ctx := testCtx(t, 30*time.Second)
	fenced := func(shard shardmap.Shard) bool {
		t.Helper()
		ok, err := Fenced(ctx, p.source, shard, moveTables)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if fenced(5) {
		t.Fatal("fenced before Fence")
	}
	free := make([]writeCase, len(fenceWrites))
	for i, c := range fenceWrites {
		free[i] = c
		free[i].refused = false
	}
	checkWrites(t, p.source, free) // every write works before the fence

	opts := FenceOptions{Shard: 5, Move: 7, Tables: moveTables, Reason: ReasonMovingTo("g1")}
	for range 2 {
		lsn, err := Fence(ctx, p.source, opts)
		if err != nil || lsn == "" {
			t.Fatalf("Fence = %q, %v", lsn, err)
		}
	}
	if !fenced(5) || fenced(6) {
		t.Fatalf("Fenced: shard 5 %v (want true), shard 6 %v (want false)", fenced(5), fenced(6))
	}
	checkWrites(t, p.source, fenceWrites, "shard 5", "move 7", "moving to group g1")

	// Replication's apply workers write as replica: the fence lets them through.
	replica := `SET LOCAL session_replication_role = replica; ` + fenceWrites[0].sql
	if err := tryWrite(t, p.source, replica); err != nil {
		t.Errorf("write as replica: %v, want success", err)
	}

	// A later fence of the shard replaces the reason; a permanent one allows TRUNCATE.
	opts = FenceOptions{Shard: 5, Move: 8, Tables: moveTables, Reason: ReasonMovedTo("g1"), Permanent: true}
	if _, err := Fence(ctx, p.source, opts); err != nil {
		t.Fatal(err)
	}
	permanent := make([]writeCase, len(fenceWrites))
	for i, c := range fenceWrites {
		permanent[i] = c
		permanent[i].refused = c.refused && !strings.HasPrefix(c.name, "truncate")
	}
	checkWrites(t, p.source, permanent, "shard 5", "move 8", "moved to group g1")
	opts.Permanent, opts.Reason = false, ReasonArrivingFrom("g2")
	if _, err := Fence(ctx, p.source, opts); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, p.source, fenceWrites, "move 8", "arriving from group g2, not owned yet")

	for range 2 {
		if err := Unfence(ctx, p.source, 5, moveTables); err != nil {
			t.Fatalf("Unfence: %v", err)
		}
	}
	if fenced(5) {
		t.Fatal("fenced after Unfence")
	}
	checkWrites(t, p.source, free)
	var triggers int
	if err := p.source.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'shardwire_fence_%'").Scan(&triggers); err != nil || triggers != 0 {
		t.Errorf("%d fence triggers left after Unfence (%v)", triggers, err)
	}

	if _, err := Fenced(ctx, p.source, 5, []Table{{Name: "nope", KeyColumn: "k"}}); err == nil {
		t.Error("Fenced of a missing table: no error")
	}
	if _, err := Fence(ctx, p.source, FenceOptions{Shard: 16, Move: 1, Tables: moveTables}); err == nil {
		t.Error("Fence of shard 16: no error")
	}
}

// TestFenceWaitsForWriters: a transaction holding a write lock makes the fence retry until
// it commits (the fence drains it), and a deadline that passes first fails clearly without
// fencing anything.
func TestFenceWaitsForWriters(t *testing.T) {
	p := newMovePair(t, moveSchemaDDL)
	holder := pgtest.Connect(t, p.srcSrv.SuperDSN(p.db))
	ctx := testCtx(t, 30*time.Second)

	hold := func(key int) pgx.Tx {
		tx, err := holder.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pgbench_accounts VALUES ($1, 1, 1, 'in flight')`, key); err != nil {
			t.Fatal(err)
		}
		return tx
	}

	tx := hold(6)
	var retries atomic.Int32
	done := make(chan error, 1)
	go func() {
		_, err := Fence(ctx, p.source, FenceOptions{Shard: 5, Move: 1, Tables: moveTables, Reason: "test",
			LockTimeout: 20 * time.Millisecond, Deadline: time.Now().Add(20 * time.Second),
			OnRetry: func(int, error) { retries.Add(1) }})
		done <- err
	}()
	waitFor(t, 10*time.Second, "the fence to retry", func() (bool, string, error) {
		return retries.Load() >= 2, "", nil
	})
	select {
	case err := <-done:
		t.Fatalf("Fence returned %v while a writer held the table", err)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Fence after the writer committed: %v", err)
	}
	if ok, err := Fenced(ctx, p.source, 5, moveTables); !ok || err != nil {
		t.Fatalf("Fenced = %v, %v after Fence", ok, err)
	}

	tx = hold(7)
	defer func() { _ = tx.Rollback(ctx) }()
	start := time.Now()
	_, err := Fence(ctx, p.source, FenceOptions{Shard: 9, Move: 2, Tables: moveTables, Reason: "test",
		LockTimeout: 20 * time.Millisecond, Deadline: time.Now().Add(300 * time.Millisecond)})
	if !errors.Is(err, ErrFenceLocks) || pgtest.SQLState(err) != codeLockNotAvailable || !strings.Contains(err.Error(), "could not take its locks") {
		t.Fatalf("Fence past its deadline: %v, want ErrFenceLocks wrapping 55P03", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Fence past its deadline took %v", elapsed)
	}
	if ok, err := Fenced(ctx, p.source, 9, moveTables); ok || err != nil {
		t.Errorf("Fenced = %v, %v after a failed Fence, want false", ok, err)
	}
}
