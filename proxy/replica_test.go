package proxy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// notesSchema is a small sharded table for the replica tests.
const notesSchema = `CREATE TABLE notes (customer_id bigint NOT NULL, id bigint NOT NULL, body text NOT NULL,
PRIMARY KEY (customer_id, id))`

// portOf returns the port of the server that answered a routed read for customer.
func portOf(ctx context.Context, c *pgx.Conn, customer int64) (int, error) {
	var port int
	err := c.QueryRow(ctx, "SELECT current_setting('port')::int FROM notes WHERE customer_id = $1 LIMIT 1", customer).Scan(&port)
	return port, err
}

// TestReplicaReads: reads avoid a replica lagging beyond the bound, a session always reads its
// own writes, and a replica stopped under a read load costs no client an error.
func TestReplicaReads(t *testing.T) {
	p := startShardedProxy(t, 4, 1, nil)
	ctx := context.Background()
	admin := connect(t, p.dsn(""))
	execAll(t, admin, notesSchema)
	// One customer per group, with a row each.
	customers := []int64{1, 5, 9, 13}
	for _, c := range customers {
		if _, err := admin.Exec(ctx, "INSERT INTO notes VALUES ($1, 0, 'seed')", c); err != nil {
			t.Fatal(err)
		}
	}
	p.waitReplicasCaughtUp(t)

	g1 := p.cluster.Groups[1]
	delayed := g1.Replicas[0]
	rc := connect(t, delayed.SuperDSN("postgres"))
	execAll(t, rc, "ALTER SYSTEM SET recovery_min_apply_delay = '3s'", "SELECT pg_reload_conf()")
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), delayed.SuperDSN("postgres"))
		if err == nil {
			_, _ = c.Exec(context.Background(), "ALTER SYSTEM RESET recovery_min_apply_delay")
			_, _ = c.Exec(context.Background(), "SELECT pg_reload_conf()")
			c.Close(context.Background())
		}
	})

	// Keep writing to g1 so that the delayed replica really lags.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := connect(t, p.dsn(""))
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := w.Exec(ctx, "INSERT INTO notes (customer_id, id, body) VALUES (5, $1, 'tick')", 1_000_000+i); err != nil {
				t.Errorf("background write: %v", err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	hc := p.srv.topo.health
	waitFor(t, 20*time.Second, "the delayed replica to be excluded from reads", func() bool {
		return !slices.Contains(hc.ReadTargets("g1", 0, nil), delayed.Addr())
	})

	if lag := counterValue(t, p, "shardwire_replica_lag_seconds", map[string]string{"group": "g1", "endpoint": delayed.Addr()}); lag < 1 {
		t.Errorf("replica lag metric of the delayed replica = %v, want > 1s", lag)
	}

	t.Run("reads avoid the lagging replica", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		for range 50 {
			port, err := portOf(ctx, c, 5)
			if err != nil {
				t.Fatal(err)
			}
			if port == delayed.Port {
				t.Fatalf("a read went to the replica lagging 3s")
			}
		}
		// The other groups' reads do go to their replicas.
		port, err := portOf(ctx, c, 9)
		if err != nil {
			t.Fatal(err)
		}
		if port != p.cluster.Groups[2].Replicas[0].Port {
			for _, s := range p.cluster.Servers() {
				t.Logf("%s: %d", s.Name, s.Port)
			}
			t.Logf("targets %v", hc.ReadTargets("g2", 0, nil))
			t.Errorf("read of g2 served by port %d, want its replica %d", port, p.cluster.Groups[2].Replicas[0].Port)
		}
	})

	t.Run("stable functions read on replicas", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		execAll(t, c,
			"CREATE FUNCTION note_len(text) RETURNS int LANGUAGE sql STABLE AS 'SELECT length($1)'",
			"CREATE FUNCTION note_vol(text) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT length($1)'")
		g2 := p.cluster.Groups[2]
		w := connect(t, g2.Writer.SuperDSN("postgres"))
		var lsn string
		if err := w.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		r := connect(t, g2.Replicas[0].SuperDSN("postgres"))
		waitFor(t, 10*time.Second, "g2's replica to replay the functions", func() bool {
			var ok bool
			return r.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok) == nil && ok
		})
		waitFor(t, 10*time.Second, "the health checker to see g2's replica caught up", func() bool {
			targets := hc.ReadTargets("g2", 0, nil)
			return len(targets) > 0 && targets[0] == g2.Replicas[0].Addr()
		})
		p.waitProxySeesReplicas(t, g2, time.Now()) // and the proxy to know it has the new functions
		for fn, want := range map[string]int{"note_len": g2.Replicas[0].Port, "note_vol": g2.Writer.Port} {
			// A connection each: a call of the volatile one counts as the session's write, and
			// the session's next reads of g2 would rightly go to the writer.
			reader := connect(t, p.dsn(""))
			var port int
			sql := "SELECT current_setting('port')::int FROM notes WHERE customer_id = $1 AND " + fn + "(body) > 0 LIMIT 1"
			if err := reader.QueryRow(ctx, sql, int64(9)).Scan(&port); err != nil {
				t.Fatal(err)
			}
			if port != want {
				t.Errorf("a read calling %s ran on port %d, want %d", fn, port, want)
			}
		}
	})

	t.Run("read your writes", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			c := connect(t, p.dsn(""))
			for i := range int64(60) {
				cust := customers[i%4]
				id := 2_000_000 + i + int64(mode)*1000
				if _, err := c.Exec(ctx, "INSERT INTO notes (customer_id, id, body) VALUES ($1, $2, 'mine')", mode, cust, id); err != nil {
					t.Fatal(err)
				}
				var body string
				err := c.QueryRow(ctx, "SELECT body FROM notes WHERE customer_id = $1 AND id = $2", mode, cust, id).Scan(&body)
				if err != nil {
					t.Fatalf("customer %d: own write %d not visible right after it: %v", cust, id, err)
				}
			}
		}
	})

	t.Run("cancel a scatter", func(t *testing.T) {
		c := connect(t, p.dsn(""))
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			var n int64
			done <- c.QueryRow(ctx, "SELECT count(*) FROM notes WHERE pg_sleep(5) IS NOT NULL").Scan(&n)
		}()
		time.Sleep(300 * time.Millisecond)
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if pgCode(err) != "57014" || time.Since(start) > 4*time.Second {
			t.Fatalf("cancelled scatter: %v after %s, want 57014 at once", err, time.Since(start))
		}
		if _, err := portOf(ctx, c, 5); err != nil {
			t.Fatalf("session unusable after a cancelled scatter: %v", err)
		}
	})

	t.Run("replica stopped under read load", func(t *testing.T) {
		victim := p.cluster.Groups[2].Replicas[0]
		load := startReadLoad(t, p, 8, "SELECT count(*) FROM notes WHERE customer_id = $1", customers[2])
		waitFor(t, 10*time.Second, "reads under way", func() bool { return load.reads.Load() > 200 })
		writerReads := counterValue(t, p, "shardwire_routed_total", map[string]string{"group": "g2", "role": "writer"})
		if err := victim.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		before := load.reads.Load()
		waitFor(t, 20*time.Second, "reads to go on without the replica", func() bool { return load.reads.Load() > before+500 })
		if err := victim.Start(ctx); err != nil {
			t.Fatal(err)
		}
		load.stopAndCheck(t, "while a replica stopped")
		if n := counterValue(t, p, "shardwire_endpoint_bans_total", map[string]string{"group": "g2", "endpoint": victim.Addr()}); n < 1 {
			t.Errorf("the stopped replica was never banned (bans %v)", n)
		}
		if n := counterValue(t, p, "shardwire_routed_total", map[string]string{"group": "g2", "role": "writer"}); n <= writerReads {
			t.Errorf("no read of g2 fell back to its writer while its only replica was down")
		}
	})
}

// readLoad is a read load through the proxy: workers alternate simple and extended protocol,
// counting reads and failures, until stopped.
type readLoad struct {
	reads, failures atomic.Int64
	firstErr        atomic.Value
	cancel          context.CancelFunc
	wg              sync.WaitGroup
}

func startReadLoad(t *testing.T, p *testProxy, workers int, sql string, args ...any) *readLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &readLoad{cancel: cancel}
	for w := range workers {
		c := connect(t, p.dsn(""))
		mode := pgx.QueryExecModeCacheStatement
		if w%2 == 0 {
			mode = pgx.QueryExecModeSimpleProtocol
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				var v any
				err := c.QueryRow(ctx, sql, append([]any{mode}, args...)...).Scan(&v)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					l.failures.Add(1)
					l.firstErr.CompareAndSwap(nil, fmt.Sprint(err))
					continue
				}
				l.reads.Add(1)
			}
		}()
	}
	return l
}

// stopAndCheck stops the load and fails the test if any read failed.
func (l *readLoad) stopAndCheck(t *testing.T, during string) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if n := l.failures.Load(); n > 0 {
		t.Fatalf("%d of %d reads failed %s; first: %v", n, l.reads.Load()+n, during, l.firstErr.Load())
	}
}

// TestReadsSpreadOverReplicas: a group's replicas in the proxy's region take turns serving
// reads, across sessions and across one session's transactions.
func TestReadsSpreadOverReplicas(t *testing.T) {
	p := startShardedProxy(t, 1, 2, nil)
	g := p.cluster.Groups[0]
	hc := p.srv.topo.health
	waitFor(t, 10*time.Second, "both replicas eligible", func() bool { return len(hc.ReadTargets("g0", 0, nil)) == 3 })
	served := map[int]int{}
	for range 3 {
		c := connect(t, p.dsn(""))
		for range 10 {
			served[int(mustQueryInt(t, c, "SELECT current_setting('port')::int"))]++
		}
	}
	if served[g.Replicas[0].Port] < 5 || served[g.Replicas[1].Port] < 5 || served[g.Writer.Port] != 0 {
		t.Fatalf("30 reads served per port: %v; want both replicas (%d, %d) used, the writer (%d) not",
			served, g.Replicas[0].Port, g.Replicas[1].Port, g.Writer.Port)
	}
}
