package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestHeldTransactionPrepares checks that a driver preparing statements inside BEGIN, before
// the transaction's first keyed statement (pgx's default, pgbench -M prepared), does not pin
// the transaction to the default group: the transaction runs where its first keyed statement
// goes, and its rows land there.
func TestHeldTransactionPrepares(t *testing.T) {
	ctx := context.Background()
	p := startShardedProxy(t, 2, 0, nil)
	admin := connect(t, p.dsn(""))
	execAll(t, admin, notesSchema)
	var cust int64 = 9 // shard 9: group g1, not the default group
	if p.groupOf(cust) != "g1" {
		t.Fatalf("test layout: customer %d in %s", cust, p.groupOf(cust))
	}
	modes := map[string]pgx.QueryExecMode{
		"named statements (cache)":      pgx.QueryExecModeCacheStatement,
		"unnamed statements (describe)": pgx.QueryExecModeDescribeExec,
	}
	id := int64(100)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, p.dsn(""))
			id++
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM notes WHERE customer_id = $1", mode, cust).Scan(&n); err != nil {
				t.Fatalf("read in the transaction: %v", err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO notes (customer_id, id, body) VALUES ($1, $2, 'held')", mode, cust, id); err != nil {
				t.Fatalf("write in the transaction: %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			w := p.writers(t)
			var body string
			if err := w["g1"].QueryRow(ctx, "SELECT body FROM notes WHERE customer_id = $1 AND id = $2", cust, id).Scan(&body); err != nil || body != "held" {
				t.Fatalf("row on g1's writer: %q, %v", body, err)
			}
			// A statement the session prepared before is reused in the next transaction.
			tx, err = c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM notes WHERE customer_id = $1", mode, cust).Scan(&n); err != nil || n == 0 {
				t.Fatalf("second transaction: count %d, %v", n, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
