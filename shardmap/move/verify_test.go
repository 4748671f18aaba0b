package move

import (
	"context"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// verifySchema has an int4 and a bigint shard key, the latter leading a composite key.
const verifySchema = `
CREATE TABLE customers (customer_id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE invoices (customer_id bigint NOT NULL, id bigint NOT NULL, amount numeric(12,2), issued timestamptz,
	note text, PRIMARY KEY (customer_id, id));
`

// fillSQL inserts the rows of customers 5+16g for g in -2..9 (shard 5: -27, -11, 5, ..., 149),
// four invoices each, plus the customers of otherShard (a different one on each side, so
// they can only match by being left out). order is ASC or DESC: the sides insert in
// opposite orders so that the hash must not depend on it.
func fillSQL(otherShard int, order string) string {
	return `
INSERT INTO customers SELECT c, 'customer ' || c FROM (
	SELECT 5 + 16 * g AS c FROM generate_series(-2, 9) g
	UNION ALL SELECT ` + strconv.Itoa(otherShard) + ` + 16 * g FROM generate_series(-1, 3) g) s ORDER BY c ` + order + `;
INSERT INTO invoices SELECT c.customer_id, i, (c.customer_id * 10 + i) / 7.0,
	timestamptz '2024-01-01 00:00:00+00' + i * interval '1 day', CASE WHEN i % 2 = 0 THEN NULL ELSE 'n' || i END
	FROM customers c, generate_series(1, 4) i ORDER BY c.customer_id ` + order + `, i ` + order + `;
`
}

var verifyTables = []Table{{Name: "customers", KeyColumn: "customer_id"}, {Name: "invoices", KeyColumn: "customer_id"}}

// newVerifyPair returns a source and target holding the same shard-5 rows and different rows
// of other shards, the target with mutate applied.
func newVerifyPair(t *testing.T, mutate string) *pair {
	t.Helper()
	p := newPair(t, verifySchema, verifySchema)
	exec(t, p.source, fillSQL(3, "ASC"))
	exec(t, p.target, fillSQL(7, "DESC"))
	// The target's session renders time differently: the hash must not see it.
	exec(t, p.target, "SET TimeZone = 'America/New_York'; SET DateStyle = 'German'; SET extra_float_digits = 0")
	if mutate != "" {
		exec(t, p.target, mutate)
	}
	return p
}

func TestShardExprMatchesShardOf(t *testing.T) {
	p := newPair(t, "", "")
	for _, k := range []int64{0, 5, 15, 16, 21, -1, -11, -16, -17, math.MaxInt64, math.MinInt64 + 1} {
		var got int
		if err := p.source.QueryRow(context.Background(), "SELECT "+ShardExpr("$1::bigint"), k).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := int(shardmap.ShardOf(k)); got != want {
			t.Errorf("SQL shard of %d = %d, ShardOf = %d", k, got, want)
		}
	}
}

func TestVerify(t *testing.T) {
	const inf = math.MaxInt64
	type want struct {
		table                  string
		key                    int64 // a key inside the mismatching chunk
		sourceRows, targetRows int64
	}
	cases := []struct {
		name       string
		mutate     string
		mismatches []want
	}{
		{name: "identical"},
		{name: "other shards differ", mutate: `
			INSERT INTO customers VALUES (6, 'six'), (-2, 'minus two');
			INSERT INTO invoices VALUES (22, 1, 1, now(), 'other shard'), (-27 + 1, 9, 1, now(), NULL)`},
		{name: "missing row", mutate: `DELETE FROM invoices WHERE customer_id = 37 AND id = 2`,
			mismatches: []want{{"invoices", 37, 12, 11}}},
		{name: "extra row with a negative key", mutate: `INSERT INTO invoices VALUES (-11, 99, 1.5, now(), 'extra')`,
			mismatches: []want{{"invoices", -11, 12, 13}}},
		{name: "extra customer beyond the source's keys", mutate: `INSERT INTO customers VALUES (165, 'new')`,
			mismatches: []want{{"customers", inf, 3, 4}}},
		{name: "changed column", mutate: `UPDATE invoices SET note = 'changed' WHERE customer_id = 149 AND id = 1;
				UPDATE customers SET name = 'renamed' WHERE customer_id = 53`,
			mismatches: []want{{"customers", 53, 3, 3}, {"invoices", 149, 12, 12}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newVerifyPair(t, tc.mutate)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := Verify(ctx, p.source, p.target, verifyTables, 5, VerifyOptions{ChunkCustomers: 3, Retries: 1, RetryDelay: time.Millisecond})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.OK() != (len(tc.mismatches) == 0) {
				t.Errorf("OK() = %v, want %v: %+v", res.OK(), len(tc.mismatches) == 0, res)
			}
			if len(res.Tables) != 2 {
				t.Fatalf("got %d tables, want 2", len(res.Tables))
			}
			for _, tr := range res.Tables {
				// 12 shard-5 customers in chunks of 3; other shards' rows never counted.
				perCustomer := map[string]int64{"customers": 1, "invoices": 4}[tr.Table]
				if tr.Chunks != 4 || tr.SourceRows != 12*perCustomer {
					t.Errorf("%s: %d chunks, %d source rows; want 4 and %d", tr.Table, tr.Chunks, tr.SourceRows, 12*perCustomer)
				}
				var wants []want
				for _, w := range tc.mismatches {
					if w.table == tr.Table {
						wants = append(wants, w)
					}
				}
				if len(tr.Mismatches) != len(wants) {
					t.Errorf("%s: mismatches %v, want %d", tr.Table, tr.Mismatches, len(wants))
					continue
				}
				var targetDelta int64
				for i, w := range wants {
					m := tr.Mismatches[i]
					if w.key < m.Lo || w.key > m.Hi || m.Source.Rows != w.sourceRows || m.Target.Rows != w.targetRows {
						t.Errorf("%s: mismatch %v, want the chunk of key %d with %d/%d rows", tr.Table, m, w.key, w.sourceRows, w.targetRows)
					}
					if m.Source.Hash == m.Target.Hash || m.Source.Hash == "" || m.Target.Hash == "" {
						t.Errorf("%s: mismatch %v: hashes must be present and differ", tr.Table, m)
					}
					targetDelta += w.targetRows - w.sourceRows
				}
				if tr.TargetRows != tr.SourceRows+targetDelta {
					t.Errorf("%s: target rows %d, want %d", tr.Table, tr.TargetRows, tr.SourceRows+targetDelta)
				}
			}
		})
	}
}

// TestVerifyRecheck: a difference fixed by a concurrent writer before the re-checks run out
// is not reported; one that stays is re-checked Retries times and then reported.
func TestVerifyRecheck(t *testing.T) {
	p := newVerifyPair(t, `DELETE FROM invoices WHERE customer_id = 5 AND id = 3`)
	writer := pgtest.Connect(t, p.targetDSN)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fix := make(chan struct{})
	fixed := make(chan error, 1)
	go func() {
		<-fix
		// The row as the source has it, as a lagging subscription would apply it.
		_, err := writer.Exec(ctx, `INSERT INTO invoices VALUES (5, 3, (5 * 10 + 3) / 7.0,
			timestamptz '2024-01-01 00:00:00+00' + 3 * interval '1 day', 'n3')`)
		fixed <- err
	}()
	var attempts []int
	opts := VerifyOptions{ChunkCustomers: 3, Retries: 3, RetryDelay: time.Millisecond,
		OnMismatch: func(table string, m Mismatch, attempt int) {
			attempts = append(attempts, attempt)
			if attempt == 0 {
				close(fix)
				if err := <-fixed; err != nil {
					t.Errorf("fix: %v", err)
				}
			}
		}}
	res, err := Verify(ctx, p.source, p.target, verifyTables, 5, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || !slices.Equal(attempts, []int{0}) {
		t.Errorf("fixed during re-checks: OK() = %v after mismatch attempts %v (want true after [0]): %+v", res.OK(), attempts, res)
	}

	exec(t, writer, `UPDATE invoices SET amount = 0 WHERE customer_id = 21 AND id = 1`)
	attempts = nil
	opts.OnMismatch = func(_ string, _ Mismatch, attempt int) { attempts = append(attempts, attempt) }
	res, err = Verify(ctx, p.source, p.target, verifyTables, 5, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || !slices.Equal(attempts, []int{0, 1, 2, 3}) {
		t.Errorf("lasting difference: OK() = %v after attempts %v (want false after [0 1 2 3])", res.OK(), attempts)
	}
}

func TestVerifyEmptyShard(t *testing.T) {
	p := newPair(t, verifySchema, verifySchema)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Verify(ctx, p.source, p.target, verifyTables, 9, VerifyOptions{Retries: -1})
	if err != nil || !res.OK() {
		t.Fatalf("empty on both sides: %+v, %v; want OK", res, err)
	}
	exec(t, p.target, `INSERT INTO customers VALUES (-7, 'only on the target')`)
	res, err = Verify(ctx, p.source, p.target, verifyTables, 9, VerifyOptions{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Tables[0].Mismatches
	if res.OK() || len(m) != 1 || m[0].Lo != math.MinInt64 || m[0].Hi != math.MaxInt64 || m[0].Source.Rows != 0 || m[0].Target.Rows != 1 {
		t.Errorf("row only on the target: %+v", res)
	}
	if _, err := Verify(ctx, p.source, p.target, verifyTables, 16, VerifyOptions{}); err == nil {
		t.Error("shard 16 accepted")
	}
}

func TestVerifyOptionsDefaults(t *testing.T) {
	cases := []struct {
		in, want VerifyOptions
	}{
		{VerifyOptions{}, VerifyOptions{ChunkCustomers: 1000, Retries: 5, RetryDelay: 200 * time.Millisecond}},
		{VerifyOptions{ChunkCustomers: 7, Retries: -1, RetryDelay: time.Second}, VerifyOptions{ChunkCustomers: 7, Retries: 0, RetryDelay: time.Second}},
	}
	for _, tc := range cases {
		if got := tc.in.withDefaults(); got.ChunkCustomers != tc.want.ChunkCustomers || got.Retries != tc.want.Retries || got.RetryDelay != tc.want.RetryDelay {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
