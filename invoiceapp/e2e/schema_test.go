package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/migrations"
)

func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// TestMain applied everything: a second run, even several at once, applies nothing.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	applied := make([][]int, 3)
	for i := range errs {
		wg.Go(func() { applied[i], errs[i] = migrations.Apply(ctx, env.pool, nil) })
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil || len(applied[i]) != 0 {
			t.Fatalf("run %d: applied %v, err %v", i, applied[i], errs[i])
		}
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	// schema_migrations is unsharded: it lives on the default group (g0) only.
	for g, w := range env.writers {
		var versions []int
		var exists bool
		if err := w.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			rows, _ := w.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
			for rows.Next() {
				var v int
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				versions = append(versions, v)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if g == 0 && len(versions) != len(all) {
			t.Errorf("default group records versions %v, want %d", versions, len(all))
		}
		if g != 0 && exists {
			t.Errorf("group %d has schema_migrations", g)
		}
		// The sharded tables exist on every group.
		for _, table := range []string{"customers", "invoices", "invoice_lines", "payments", "idempotency_keys"} {
			var ok bool
			if err := w.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
				t.Errorf("group %d lacks table %s (%v)", g, table, err)
			}
		}
	}
}

// partitions lists the invoices partitions on a writer with their bounds.
func partitions(t *testing.T, g int) map[string]string {
	t.Helper()
	rows, err := env.writers[g].Query(context.Background(), `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'invoices'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, bound string
		if err := rows.Scan(&name, &bound); err != nil {
			t.Fatal(err)
		}
		out[name] = bound
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPartitionMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Far enough ahead that no other test makes these months' partitions.
	base := time.Now().UTC().AddDate(5, 0, 0)
	for range 2 {
		if err := invoiceapp.MaintainPartitions(ctx, env.pool, base, 3); err != nil {
			t.Fatal(err)
		}
	}
	// And concurrently, as several invoiced instances at start.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = invoiceapp.MaintainPartitions(ctx, env.pool, base.AddDate(0, 1, 0), 3) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	month := invoiceapp.DateOf(base).MonthStart()
	now := invoiceapp.DateOf(time.Now()).MonthStart()
	var want []string
	for i := range 5 { // base's month and 3 ahead, then one more from the concurrent run
		want = append(want, invoiceapp.PartitionName(month.AddMonths(i)))
	}
	for g := range env.writers {
		got := partitions(t, g)
		for i, name := range want {
			from, to := month.AddMonths(i), month.AddMonths(i+1)
			wantBound := fmt.Sprintf("FOR VALUES FROM ('%s') TO ('%s')", from, to)
			if got[name] != wantBound {
				t.Errorf("group %d: partition %s bound %q, want %q", g, name, got[name], wantBound)
			}
		}
		if _, ok := got[invoiceapp.PartitionName(month.AddMonths(5))]; ok {
			t.Errorf("group %d: a partition beyond the window was made", g)
		}
		// TestMain's run made the current month and three ahead.
		for i := range 4 {
			if name := invoiceapp.PartitionName(now.AddMonths(i)); got[name] == "" {
				t.Errorf("group %d lacks %s; has %v", g, name, slices.Sorted(maps.Keys(got)))
			}
		}
	}
}

func TestInvoiceInOldMonthMakesPartition(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	issue := invoiceapp.DateOf(today().AddDate(-9, -2, 0))
	inv := newInvoice(t, id, "EUR", 500, issue.String(), "")
	if inv.IssueDate != issue.String() {
		t.Fatalf("issue date %s, want %s", inv.IssueDate, issue)
	}
	name := invoiceapp.PartitionName(issue)
	for g := range env.writers {
		if partitions(t, g)[name] == "" {
			t.Errorf("group %d lacks %s", g, name)
		}
	}
	getEventually(t, fmt.Sprintf("/v1/customers/%d/invoices/%s", id, inv.ID), 200)
}

// Rows of a customer, in every table, land in the group owning customer_id % 16 and nowhere
// else.
func TestRowsLandInOwningGroup(t *testing.T) {
	t.Parallel()
	const base = 7_000_000 // ids base..base+15 cover the 16 shards
	for shard := range int64(16) {
		id := base + shard
		do(t, "POST", "/v1/customers", map[string]any{"id": id, "name": "placement"},
			"Idempotency-Key", fmt.Sprint("place-c-", id)).want(t, 201)
		var inv invoice
		do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices", id), invoiceReq{Currency: "EUR",
			Lines: []line{{"a", 1, 100}, {"b", 2, 50}}}, "Idempotency-Key", "place-i").want(t, 201).decode(t, &inv)
		pay(t, id, inv.ID, 60, "Idempotency-Key", "place-p").want(t, 201)
		want := map[string]int{"customers": 1, "invoices": 1, "invoice_lines": 2, "payments": 1, "idempotency_keys": 3}
		for g := range env.writers {
			for table, n := range want {
				if g != ownerGroup(id) {
					n = 0
				}
				if got := writerCount(t, g, table, id); got != n {
					t.Errorf("customer %d (shard %d): group %d has %d rows in %s, want %d", id, shard, g, got, table, n)
				}
			}
		}
	}
}

func TestPruneIdempotencyKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	id := newCustomer(t, "free")
	newInvoiceKeyed := func(key string) {
		do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices", id), invoiceReq{Currency: "EUR", Lines: []line{{"a", 1, 1}}},
			"Idempotency-Key", key).want(t, 201)
	}
	newInvoiceKeyed("old")
	newInvoiceKeyed("fresh")
	w := env.writers[ownerGroup(id)]
	if _, err := w.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '48 hours'
WHERE customer_id = $1 AND idem_key = 'old'`, id); err != nil {
		t.Fatal(err)
	}
	n, err := invoiceapp.PruneIdempotencyKeys(ctx, env.pool, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Errorf("pruned %d keys, want at least the old one", n)
	}
	var keys []string
	rows, _ := w.Query(ctx, `SELECT idem_key FROM idempotency_keys WHERE customer_id = $1 ORDER BY 1`, id)
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"fresh"}) {
		t.Errorf("keys left %v, want [fresh]", keys)
	}
}
