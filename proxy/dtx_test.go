package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// customersByGroup returns, per group index, n customer ids the group owns.
func customersByGroup(p *testProxy, n int) [][]int64 {
	m := p.srv.topo.store.Current()
	out := make([][]int64, len(m.Groups))
	for c := int64(1); ; c++ {
		gi := int(m.Owner[c%16])
		if len(out[gi]) < n {
			out[gi] = append(out[gi], c)
		}
		full := true
		for _, l := range out {
			full = full && len(l) == n
		}
		if full {
			return out
		}
	}
}

// preparedXacts counts prepared transactions on every group's writer.
func preparedXacts(t *testing.T, p *testProxy) int {
	t.Helper()
	n := 0
	for _, g := range p.cluster.Groups {
		c := connect(t, g.Writer.AppDSN())
		n += int(mustQueryInt(t, c, "SELECT count(*) FROM pg_prepared_xacts"))
		c.Close(context.Background())
	}
	return n
}

func TestMultiGroupTransactions(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 4})
	p := startCatalogProxy(t, cl, []config.Database{{Name: pgtest.Database, TwoPhaseCommit: true}}, func(c *config.Config) {
		c.TwoPhase.AbortAfter = config.Duration(2 * time.Second)
		c.TwoPhase.LockTimeout = config.Duration(300 * time.Millisecond)
	})
	ctx := context.Background()
	admin := connect(t, p.dsn(""))
	execAll(t, admin,
		"CREATE TABLE accounts (customer_id bigint PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE deferred_items (customer_id bigint NOT NULL, id int NOT NULL, UNIQUE (customer_id, id) DEFERRABLE INITIALLY DEFERRED)")
	cust := customersByGroup(p, 5)
	var all []int64
	for _, l := range cust {
		all = append(all, l...)
	}
	for _, c := range all {
		if _, err := admin.Exec(ctx, "INSERT INTO accounts VALUES ($1, 1000)", c); err != nil {
			t.Fatal(err)
		}
	}
	writers := p.writers(t)
	// balanceOn reads a customer's balance on the writer of the group that owns it.
	balanceOn := func(c int64) int64 {
		t.Helper()
		var b int64
		if err := writers[p.groupOf(c)].QueryRow(ctx, "SELECT balance FROM accounts WHERE customer_id = $1", c).Scan(&b); err != nil {
			t.Fatalf("customer %d on %s: %v", c, p.groupOf(c), err)
		}
		return b
	}
	first := []int64{cust[0][0], cust[1][0], cust[2][0], cust[3][0]} // one customer per group

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec} {
		t.Run("commit spans four groups/"+mode.String(), func(t *testing.T) {
			c := connect(t, p.dsn(""))
			before := make([]int64, len(first))
			for i, cu := range first {
				before[i] = balanceOn(cu)
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, cu := range first {
				if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + 7 WHERE customer_id = $1", mode, cu); err != nil {
					t.Fatal(err)
				}
			}
			var b int64
			if err := tx.QueryRow(ctx, "SELECT balance FROM accounts WHERE customer_id = $1", mode, first[0]).Scan(&b); err != nil || b != before[0]+7 {
				t.Fatalf("read of a branch inside the transaction: %d, %v; want %d", b, err, before[0]+7)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
			for i, cu := range first {
				if got := balanceOn(cu); got != before[i]+7 {
					t.Errorf("customer %d (%s): balance %d, want %d", cu, p.groupOf(cu), got, before[i]+7)
				}
			}
			// The session reads its own writes right after.
			if err := c.QueryRow(ctx, "SELECT balance FROM accounts WHERE customer_id = $1", mode, first[3]).Scan(&b); err != nil || b != before[3]+7 {
				t.Errorf("own write after commit: %d, %v", b, err)
			}
			if n := preparedXacts(t, p); n != 0 {
				t.Errorf("%d prepared transactions left after a commit", n)
			}
		})
	}

	t.Run("rollback spans four groups", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		before := balanceOn(first[2])
		execAll(t, c, "BEGIN")
		for _, cu := range first {
			execAll(t, c, fmt.Sprintf("UPDATE accounts SET balance = 0 WHERE customer_id = %d", cu))
		}
		execAll(t, c, "ROLLBACK")
		if got := balanceOn(first[2]); got != before {
			t.Errorf("balance %d after ROLLBACK, want %d", got, before)
		}
	})

	t.Run("an error in one group fails the whole transaction", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		before := balanceOn(first[0])
		execAll(t, c, "BEGIN", fmt.Sprintf("UPDATE accounts SET balance = 1 WHERE customer_id = %d", first[0]))
		_, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO accounts VALUES (%d, 1)", first[1]))
		if code := pgCode(err); code != "23505" {
			t.Fatalf("duplicate insert in the second group: %v, want 23505", err)
		}
		_, err = c.Exec(ctx, fmt.Sprintf("UPDATE accounts SET balance = 2 WHERE customer_id = %d", first[2]))
		if code := pgCode(err); code != "25P02" {
			t.Fatalf("statement for a third group after the error: %v, want 25P02", err)
		}
		tag, err := c.PgConn().Exec(ctx, "COMMIT").ReadAll()
		if err != nil || len(tag) != 1 || tag[0].CommandTag.String() != "ROLLBACK" {
			t.Fatalf("COMMIT of the failed transaction: %v %v, want ROLLBACK", tag, err)
		}
		if got := balanceOn(first[0]); got != before {
			t.Errorf("the first group kept a write of a failed transaction: %d, want %d", got, before)
		}
	})

	t.Run("a prepare that fails rolls back every group", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		before := balanceOn(first[1])
		execAll(t, c, "BEGIN",
			fmt.Sprintf("UPDATE accounts SET balance = 5 WHERE customer_id = %d", first[1]),
			fmt.Sprintf("INSERT INTO deferred_items VALUES (%d, 1), (%d, 1)", first[0], first[0]))
		_, err := c.Exec(ctx, "COMMIT")
		if code := pgCode(err); code != "23505" {
			t.Fatalf("COMMIT with a deferred unique violation in one group: %v, want 23505", err)
		}
		if got := balanceOn(first[1]); got != before {
			t.Errorf("a group committed although another group's prepare failed: %d, want %d", got, before)
		}
		if n := preparedXacts(t, p); n != 0 {
			t.Errorf("%d prepared transactions left after a failed prepare", n)
		}
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Errorf("session unusable after a failed commit: %v", err)
		}
	})

	t.Run("truncate and reload inside one transaction", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		execAll(t, c, "CREATE TABLE reload (customer_id bigint PRIMARY KEY, v int)")
		for _, cu := range all {
			execAll(t, c, fmt.Sprintf("INSERT INTO reload VALUES (%d, 1)", cu))
		}
		execAll(t, c, "BEGIN", "TRUNCATE reload")
		for _, cu := range first {
			execAll(t, c, fmt.Sprintf("INSERT INTO reload VALUES (%d, 2)", cu))
		}
		execAll(t, c, "COMMIT")
		if n := mustQueryInt(t, c, "SELECT count(*) FROM reload"); n != int64(len(first)) {
			t.Errorf("%d rows after TRUNCATE and reload in one transaction, want %d", n, len(first))
		}
	})

	t.Run("savepoints keep a transaction in one group", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		execAll(t, c, "BEGIN", fmt.Sprintf("UPDATE accounts SET balance = balance WHERE customer_id = %d", first[0]), "SAVEPOINT a")
		_, err := c.Exec(ctx, fmt.Sprintf("UPDATE accounts SET balance = balance WHERE customer_id = %d", first[1]))
		if code := pgCode(err); code != "0A000" {
			t.Fatalf("second group after a savepoint: %v, want 0A000", err)
		}
		execAll(t, c, "ROLLBACK")
	})

	t.Run("concurrent transfers across groups keep the total", func(t *testing.T) {
		total := func() int64 {
			var sum int64
			for _, cu := range all {
				sum += balanceOn(cu)
			}
			return sum
		}
		want := total()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := pgx.Connect(ctx, p.dsn(""))
				if err != nil {
					errs <- err
					return
				}
				defer c.Close(ctx)
				r := rand.New(rand.NewPCG(uint64(w), 7))
				for range 40 {
					from, to := all[r.IntN(len(all))], all[r.IntN(len(all))]
					if from == to {
						continue
					}
					err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - 3 WHERE customer_id = $1", from); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + 3 WHERE customer_id = $1", to)
						return err
					})
					var pe *pgconn.PgError
					if err != nil && !(errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "55P03")) {
						errs <- fmt.Errorf("transfer %d → %d: %w", from, to, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := total(); got != want {
			t.Errorf("total balance %d after concurrent transfers, want %d", got, want)
		}
		if n := preparedXacts(t, p); n != 0 {
			t.Errorf("%d prepared transactions left", n)
		}
		if n := counterValue(t, p, "shardwire_multigroup_commits_total", map[string]string{"outcome": "committed"}); n < 10 {
			t.Errorf("only %v transactions committed across groups", n)
		}
	})
}

// TestMultiGroupNeedsTwoPhaseCommit: without two_phase_commit a transaction stays in one group.
func TestMultiGroupNeedsTwoPhaseCommit(t *testing.T) {
	p := startShardedProxy(t, 2, 0, nil)
	c := connect(t, p.dsn(""))
	execAll(t, c, "CREATE TABLE accounts (customer_id bigint PRIMARY KEY, balance bigint NOT NULL)")
	cust := customersByGroup(p, 1)
	execAll(t, c, "BEGIN", fmt.Sprintf("INSERT INTO accounts VALUES (%d, 1)", cust[0][0]))
	_, err := c.Exec(context.Background(), fmt.Sprintf("INSERT INTO accounts VALUES (%d, 1)", cust[1][0]))
	if code := pgCode(err); code != "0A000" {
		t.Fatalf("second group without two_phase_commit: %v, want 0A000", err)
	}
	execAll(t, c, "ROLLBACK")
}
