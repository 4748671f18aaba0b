package proxy

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

const invoicesSchema = `CREATE TABLE invoices (customer_id bigint NOT NULL, id bigint NOT NULL, amount numeric(12,2) NOT NULL,
	status text NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (customer_id, id))`

// startSplitProxy is a proxy over 4 groups with the catalog on g0; twoPhase sets
// two_phase_commit on the database.
func startSplitProxy(t *testing.T, cl *pgtest.Cluster, twoPhase bool) *testProxy {
	return startCatalogProxy(t, cl, []config.Database{{Name: pgtest.Database, TwoPhaseCommit: twoPhase}}, nil)
}

// misplaced counts rows of table on writers of groups that do not own their customer, and
// all rows.
func misplaced(t *testing.T, p *testProxy, table string) (wrong, total int64) {
	t.Helper()
	m := p.srv.topo.store.Current()
	for gi, g := range p.cluster.Groups {
		c := connect(t, g.Writer.AppDSN())
		var owned []string
		for _, sh := range m.OwnedBy(gi).Shards() {
			owned = append(owned, fmt.Sprint(int(sh)))
		}
		wrong += mustQueryInt(t, c, fmt.Sprintf("SELECT count(*) FROM %s WHERE customer_id %% 16 <> ALL('{%s}'::int[])", table, strings.Join(owned, ",")))
		total += mustQueryInt(t, c, "SELECT count(*) FROM "+table)
		c.Close(context.Background())
	}
	return wrong, total
}

func invoiceText(n int, from int64, sep string, header bool) []byte {
	var b bytes.Buffer
	if header {
		b.WriteString(strings.Join([]string{"customer_id", "id", "amount", "status", "created_at"}, sep) + "\n")
	}
	for i := range int64(n) {
		id := from + i
		fmt.Fprintf(&b, "%d%s%d%s%d.%02d%sopen%s2026-11-%02d 10:00:00+00\n", id%100_003, sep, id, sep, id%9000, id%100, sep, sep, 1+id%28)
	}
	return b.Bytes()
}

func TestSplitStatements(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 4})
	p := startSplitProxy(t, cl, true)
	plain := startSplitProxy(t, cl, false)
	ctx := context.Background()
	c := connect(t, p.dsn(""))
	execAll(t, c, invoicesSchema)
	const rows = 200_000

	count := func(t *testing.T) int64 {
		t.Helper()
		wrong, total := misplaced(t, p, "invoices")
		if wrong != 0 {
			t.Fatalf("%d invoices on a group that does not own their customer", wrong)
		}
		return total
	}
	var want int64
	copyIn := func(t *testing.T, proxy *testProxy, sql string, data []byte) (int64, error) {
		t.Helper()
		cc := connect(t, proxy.dsn(""))
		tag, err := cc.PgConn().CopyFrom(ctx, bytes.NewReader(data), sql)
		return tag.RowsAffected(), err
	}

	t.Run("COPY text", func(t *testing.T) {
		n, err := copyIn(t, plain, "COPY invoices FROM STDIN", invoiceText(rows, 0, "\t", false))
		if err != nil || n != rows {
			t.Fatalf("COPY text: %d rows, %v", n, err)
		}
		want += rows
		if got := count(t); got != want {
			t.Fatalf("%d invoices after COPY text, want %d", got, want)
		}
	})
	t.Run("COPY csv with header", func(t *testing.T) {
		n, err := copyIn(t, p, "COPY invoices (customer_id, id, amount, status, created_at) FROM STDIN WITH (FORMAT csv, HEADER true)",
			invoiceText(rows, rows, ",", true))
		if err != nil || n != rows {
			t.Fatalf("COPY csv: %d rows, %v", n, err)
		}
		want += rows
		if got := count(t); got != want {
			t.Fatalf("%d invoices after COPY csv, want %d", got, want)
		}
	})
	t.Run("COPY binary", func(t *testing.T) {
		cc := connect(t, p.dsn(""))
		src := make([][]any, rows)
		at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		for i := range src {
			id := int64(2*rows + i)
			src[i] = []any{id % 100_003, id, fmt.Sprintf("%d.50", id%9000), "paid", at}
		}
		n, err := cc.CopyFrom(ctx, pgx.Identifier{"invoices"}, []string{"customer_id", "id", "amount", "status", "created_at"}, pgx.CopyFromRows(src))
		if err != nil || n != rows {
			t.Fatalf("COPY binary: %d rows, %v", n, err)
		}
		want += rows
		if got := count(t); got != want {
			t.Fatalf("%d invoices after COPY binary, want %d", got, want)
		}
	})
	t.Run("a malformed row aborts the whole copy", func(t *testing.T) {
		for _, proxy := range []*testProxy{p, plain} {
			data := invoiceText(5000, 10*rows, "\t", false)
			lines := bytes.SplitAfter(data, []byte("\n"))
			lines[4321] = []byte("not-a-key\t1\t1.00\topen\t2026-11-01 10:00:00+00\n")
			_, err := copyIn(t, proxy, "COPY invoices FROM STDIN", bytes.Join(lines, nil))
			if code := pgCode(err); code != "22P02" || !strings.Contains(err.Error(), "line 4322") {
				t.Fatalf("malformed key: %v, want 22P02 naming line 4322", err)
			}
			// A row a group refuses (a duplicate key) fails the copy everywhere too.
			_, err = copyIn(t, proxy, "COPY invoices FROM STDIN", append(invoiceText(3000, 11*rows, "\t", false), invoiceText(1, 0, "\t", false)...))
			if code := pgCode(err); code != "23505" {
				t.Fatalf("duplicate row: %v, want 23505", err)
			}
			if got := count(t); got != want {
				t.Fatalf("%d invoices after failed copies, want %d: a failed copy left rows behind", got, want)
			}
			if _, err := connect(t, proxy.dsn("")).Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("COPY without a column list skips generated columns", func(t *testing.T) {
		cc := connect(t, p.dsn(""))
		execAll(t, cc, "CREATE TABLE generated_first (g int GENERATED ALWAYS AS (7) STORED, customer_id bigint NOT NULL, v text)")
		var data bytes.Buffer
		for i := range 2000 {
			fmt.Fprintf(&data, "%d\tv%d\n", i+1, i)
		}
		if n, err := copyIn(t, p, "COPY generated_first FROM STDIN", data.Bytes()); err != nil || n != 2000 {
			t.Fatalf("COPY: %d rows, %v", n, err)
		}
		if wrong, total := misplaced(t, p, "generated_first"); wrong != 0 || total != 2000 {
			t.Fatalf("%d of %d rows on a group not owning them", wrong, total)
		}
	})
	t.Run("COPY TO STDOUT reads every group once", func(t *testing.T) {
		var out bytes.Buffer
		tag, err := connect(t, p.dsn("")).PgConn().CopyTo(ctx, &out, "COPY invoices (customer_id, id) TO STDOUT WITH (FORMAT csv, HEADER)")
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(out.Bytes(), []byte("\n"))
		if tag.RowsAffected() != want || int64(lines) != want+1 || !bytes.HasPrefix(out.Bytes(), []byte("customer_id,id\n")) {
			t.Fatalf("COPY TO: tag %d, %d lines (want %d rows and one header)", tag.RowsAffected(), lines, want)
		}
	})
	t.Run("COPY inside a transaction across groups", func(t *testing.T) {
		cc := connect(t, p.dsn(""))
		execAll(t, cc, "BEGIN", "DELETE FROM invoices WHERE customer_id = 1")
		if _, err := cc.PgConn().CopyFrom(ctx, bytes.NewReader(invoiceText(1000, 20*rows, "\t", false)), "COPY invoices FROM STDIN"); err != nil {
			t.Fatal(err)
		}
		execAll(t, cc, "ROLLBACK")
		if got := count(t); got != want {
			t.Fatalf("%d invoices after a rolled-back transaction with a COPY, want %d", got, want)
		}
	})
	t.Run("multi-row INSERT split with RETURNING in row order", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			for pi, proxy := range []*testProxy{p, plain} {
				cc := connect(t, proxy.dsn(""))
				base := int64(30*rows) + int64(mode)*100 + int64(pi)*10
				custs := []int64{1, 2, 3, 5, 8, 13, 21, 34}
				var sql strings.Builder
				var args []any
				sql.WriteString("INSERT INTO invoices (customer_id, id, amount, status, created_at) VALUES ")
				for i, cu := range custs {
					if i > 0 {
						sql.WriteString(", ")
					}
					fmt.Fprintf(&sql, "($%d, $%d, 1.00, 'open', now())", 2*i+1, 2*i+2)
					args = append(args, cu, base+int64(i))
				}
				sql.WriteString(" RETURNING customer_id, id")
				rws, err := cc.Query(ctx, sql.String(), append([]any{mode}, args...)...)
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for rws.Next() {
					var cu, id int64
					if err := rws.Scan(&cu, &id); err != nil {
						t.Fatal(err)
					}
					got = append(got, cu)
				}
				if err := rws.Err(); err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if rws.CommandTag().RowsAffected() != int64(len(custs)) || fmt.Sprint(got) != fmt.Sprint(custs) {
					t.Fatalf("%s: RETURNING %v (tag %s), want %v in row order", mode, got, rws.CommandTag(), custs)
				}
				want += int64(len(custs))
			}
		}
		if got := count(t); got != want {
			t.Fatalf("%d invoices after split INSERTs, want %d", got, want)
		}
		if n := counterValue(t, p, "shardwire_query_duration_seconds", map[string]string{"route": "split"}); n < 4 {
			t.Errorf("%v split statements timed under route=split, want at least 4", n)
		}
		if n := counterValue(t, p, "shardwire_query_duration_seconds", map[string]string{"route": "writer", "group": "g0"}); n < 1 {
			t.Errorf("no relayed request timed under route=writer, group=g0")
		}
	})
}
