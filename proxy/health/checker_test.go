package health

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// These tests run the checker against real Postgres servers from internal/pgtest.

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clusterGroup starts one group with two replicas and returns it with its shard map form.
func clusterGroup(t *testing.T) (*pgtest.Group, shardmap.Group) {
	t.Helper()
	// wal_keep_size: the replicas' base backups run in parallel, and one's fast checkpoint
	// may otherwise recycle a WAL segment the other still has to stream.
	cl := pgtest.New(t, pgtest.Options{Groups: 1, Replicas: 2, ExtraConf: map[string]string{"wal_keep_size": "256MB"}})
	g := cl.Groups[0]
	sg := shardmap.Group{Name: g.Name, Region: "local", Writer: g.Writer.Addr()}
	for _, r := range g.Replicas {
		sg.Replicas = append(sg.Replicas, r.Addr())
	}
	return g, sg
}

// pgChecker returns a checker of sg logging in as pgtest's app user, closed at cleanup.
func pgChecker(t *testing.T, sg shardmap.Group, reg prometheus.Registerer, adjust func(*Config)) *Checker {
	t.Helper()
	cfg := Config{
		Region:         "local",
		Interval:       50 * time.Millisecond,
		MaxReplicaLag:  time.Second,
		ConnectTimeout: time.Second,
		User:           pgtest.User,
		Password:       pgtest.Password,
		Database:       pgtest.Database,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	c := New(cfg, nil, reg)
	c.SetGroups([]shardmap.Group{sg})
	t.Cleanup(c.Close)
	return c
}

// run runs c's loop until the test ends, and checks that Run returns then.
func run(t *testing.T, c *Checker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func checkNow(t *testing.T, c *Checker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.CheckNow(ctx)
}

func status(t *testing.T, c *Checker, addr string) EndpointStatus {
	t.Helper()
	for _, s := range c.Snapshot() {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("no status for %s", addr)
	return EndpointStatus{}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// caughtUp reports whether replica has replayed everything the writer has written.
func caughtUp(t *testing.T, writer, replica *pgtest.Server) bool {
	t.Helper()
	ctx := context.Background()
	w, err := pgx.Connect(ctx, writer.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	var lsn string
	if err := w.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	r, err := pgx.Connect(ctx, replica.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	var ok bool
	if err := r.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestGroup runs the checks of a healthy group, bans, a replica restart and a lagging
// replica on one cluster, in order.
func TestGroup(t *testing.T) {
	g, sg := clusterGroup(t)
	w, r1, r2 := g.Writer, g.Replicas[0], g.Replicas[1]

	t.Run("roles and lag", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := pgChecker(t, sg, reg, nil)
		checkNow(t, c)
		if got := c.Writer(sg.Name); got != w.Addr() {
			t.Errorf("Writer = %s, want %s", got, w.Addr())
		}
		for _, s := range c.Snapshot() {
			wantWriter := s.Addr == w.Addr()
			if !s.Up || s.InRecovery == wantWriter || (s.Role == RoleWriter) != wantWriter || s.LastError != "" {
				t.Errorf("status %+v", s)
			}
			if metricValue(t, reg, "shardwire_endpoint_up", "group", sg.Name, "endpoint", s.Addr, "role", s.Role) != 1 {
				t.Errorf("endpoint_up{%s,%s} is not 1", s.Addr, s.Role)
			}
		}
		if st := status(t, c, w.Addr()); st.WriteLSN == 0 || st.Timeline != 1 {
			t.Errorf("writer status %+v: want a write LSN and timeline 1", st)
		}
		noLag := func() bool {
			checkNow(t, c)
			for _, r := range g.Replicas {
				if st := status(t, c, r.Addr()); !st.LagKnown || st.Lag != 0 || st.ReplayLSN == 0 {
					return false
				}
			}
			return true
		}
		waitFor(t, 5*time.Second, "no lag on an idle cluster", noLag)
		if got, want := c.ReadTargets(sg.Name, 0, nil), []string{r1.Addr(), r2.Addr(), w.Addr()}; !slices.Equal(got, want) {
			t.Errorf("ReadTargets = %v, want %v", got, want)
		}

		// Writes, then quiet: once the replicas have caught up they show no lag.
		app := connect(t, w.AppDSN())
		exec(t, app, "CREATE TABLE IF NOT EXISTS health_rows (id bigserial PRIMARY KEY, v int)")
		exec(t, app, "INSERT INTO health_rows (v) SELECT g FROM generate_series(1, 1000) AS g")
		waitFor(t, 5*time.Second, "replicas to replay the writes", func() bool { return caughtUp(t, w, r1) && caughtUp(t, w, r2) })
		waitFor(t, 5*time.Second, "no lag on a caught-up cluster", noLag)
		if v := metricValue(t, reg, "shardwire_replica_lag_seconds", "group", sg.Name, "endpoint", r1.Addr()); v != 0 {
			t.Errorf("replica_lag_seconds{r1} = %v, want 0", v)
		}
	})

	t.Run("libpq environment ignored", func(t *testing.T) {
		for k, v := range map[string]string{
			"PGHOST": "192.0.2.1", "PGPORT": "1", "PGUSER": "nobody", "PGPASSWORD": "wrong", "PGDATABASE": "nowhere",
			"PGSSLMODE": "require", "PGTARGETSESSIONATTRS": "read-write", "PGOPTIONS": "-c statement_timeout=1",
			"PGCONNECT_TIMEOUT": "1", "PGCHANNELBINDING": "require", "PGREQUIREAUTH": "md5",
		} {
			t.Setenv(k, v)
		}
		c := pgChecker(t, sg, nil, nil)
		checkNow(t, c)
		for _, s := range c.Snapshot() {
			if !s.Up || s.InRecovery != (s.Addr != w.Addr()) {
				t.Errorf("status %+v", s)
			}
		}
	})

	t.Run("dropped connection replaced within a check", func(t *testing.T) {
		c := pgChecker(t, sg, nil, nil)
		checkNow(t, c)
		super := connect(t, w.SuperDSN("postgres"))
		var killed int
		if err := super.QueryRow(context.Background(),
			"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'shardwire-health'").Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed < 1 {
			t.Fatalf("terminated %d check connections on the writer, want at least 1", killed)
		}
		checkNow(t, c)
		if st := status(t, c, w.Addr()); !st.Up {
			t.Errorf("writer down after its check connection was dropped: %+v", st)
		}
	})

	t.Run("ban", func(t *testing.T) {
		const base, maxBan = 100 * time.Millisecond, 300 * time.Millisecond
		reg := prometheus.NewRegistry()
		c := pgChecker(t, sg, reg, func(cfg *Config) { cfg.BanTime, cfg.MaxBanTime = base, maxBan })
		checkNow(t, c)
		included := func() bool { return slices.Contains(c.ReadTargets(sg.Name, 0, nil), r1.Addr()) }
		if !included() {
			t.Fatalf("r1 not a read target before any ban: %v", c.ReadTargets(sg.Name, 0, nil))
		}
		banFor := func(want time.Duration) {
			t.Helper()
			before := time.Now()
			c.Ban(r1.Addr(), fmt.Errorf("read failed"))
			after := time.Now()
			if included() {
				t.Fatal("banned r1 still a read target")
			}
			until := status(t, c, r1.Addr()).BannedUntil
			if until.Before(before.Add(want)) || until.After(after.Add(want)) {
				t.Fatalf("ban ends %v after the call, want %v", until.Sub(before), want)
			}
			waitFor(t, want+time.Second, "r1 back after its ban", included)
		}
		banFor(base)
		banFor(2 * base)
		banFor(maxBan) // 400ms capped
		banFor(maxBan)
		checkNow(t, c) // a successful check after the ban expired: the backoff starts over
		banFor(base)
		if got := metricValue(t, reg, "shardwire_endpoint_bans_total", "group", sg.Name, "endpoint", r1.Addr()); got != 5 {
			t.Errorf("bans_total = %v, want 5", got)
		}
	})

	t.Run("replica stop and start", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := pgChecker(t, sg, reg, nil)
		run(t, c)
		waitFor(t, 5*time.Second, "r2 a read target", func() bool { return slices.Contains(c.ReadTargets(sg.Name, 0, nil), r2.Addr()) })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := r2.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "r2 reported down and excluded", func() bool {
			st := status(t, c, r2.Addr())
			return !st.Up && st.LastError != "" && !slices.Contains(c.ReadTargets(sg.Name, 0, nil), r2.Addr())
		})
		if metricValue(t, reg, "shardwire_endpoint_up", "group", sg.Name, "endpoint", r2.Addr(), "role", RoleReplica) != 0 {
			t.Error("endpoint_up{r2} is not 0")
		}
		if got := c.ReadTargets(sg.Name, 0, nil); !slices.Equal(got, []string{r1.Addr(), w.Addr()}) {
			t.Errorf("ReadTargets with r2 down = %v", got)
		}
		if err := r2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "r2 back", func() bool {
			return status(t, c, r2.Addr()).Up && slices.Contains(c.ReadTargets(sg.Name, 0, nil), r2.Addr())
		})
	})

	t.Run("apply delay and read-your-writes", func(t *testing.T) {
		app := connect(t, w.AppDSN())
		exec(t, app, "CREATE TABLE IF NOT EXISTS health_rows (id bigserial PRIMARY KEY, v int)")

		// Steady writes every 50ms until the subtest ends.
		ctx, stopWrites := context.WithCancel(context.Background())
		writes := make(chan error, 1)
		writer := connect(t, w.AppDSN())
		go func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					writes <- nil
					return
				case <-tick.C:
				}
				if _, err := writer.Exec(ctx, "INSERT INTO health_rows (v) VALUES (1)"); err != nil && ctx.Err() == nil {
					writes <- err
					return
				}
			}
		}()
		t.Cleanup(func() {
			stopWrites()
			if err := <-writes; err != nil {
				t.Errorf("steady writes: %v", err)
			}
		})

		strict := pgChecker(t, sg, nil, nil)                                                         // MaxReplicaLag 1s
		lenient := pgChecker(t, sg, nil, func(cfg *Config) { cfg.MaxReplicaLag = 10 * time.Second }) // admits a 3s lag
		run(t, strict)
		run(t, lenient)

		super := connect(t, r1.SuperDSN("postgres"))
		exec(t, super, "ALTER SYSTEM SET recovery_min_apply_delay = '3s'")
		exec(t, super, "SELECT pg_reload_conf()")
		t.Cleanup(func() {
			exec(t, super, "ALTER SYSTEM RESET recovery_min_apply_delay")
			exec(t, super, "SELECT pg_reload_conf()")
		})

		aboutThreeSeconds := func(st EndpointStatus) bool {
			return st.LagKnown && st.Lag >= 2500*time.Millisecond && st.Lag <= 4*time.Second
		}
		waitFor(t, 8*time.Second, "the delayed replica at about 3s of lag and excluded, the other included", func() bool {
			got := strict.ReadTargets(sg.Name, 0, nil)
			return aboutThreeSeconds(status(t, strict, r1.Addr())) && !slices.Contains(got, r1.Addr()) && slices.Contains(got, r2.Addr())
		})
		// The lag holds at the delay rather than growing, and the other replica stays close.
		last := status(t, strict, r1.Addr()).LastCheck
		for range 10 {
			waitFor(t, 2*time.Second, "a fresh check of the delayed replica", func() bool {
				return status(t, strict, r1.Addr()).LastCheck.After(last)
			})
			last = status(t, strict, r1.Addr()).LastCheck
			if st := status(t, strict, r1.Addr()); !aboutThreeSeconds(st) {
				t.Errorf("delayed replica's lag = %v (known %v), want about 3s", st.Lag, st.LagKnown)
			}
			if st := status(t, strict, r2.Addr()); !st.LagKnown || st.Lag > time.Second {
				t.Errorf("other replica's lag = %v (known %v), want under 1s", st.Lag, st.LagKnown)
			}
		}
		waitFor(t, 8*time.Second, "the delayed replica a target under a 10s bound", func() bool {
			return slices.Contains(lenient.ReadTargets(sg.Name, 0, nil), r1.Addr())
		})

		// A session's write commits at t; its reads may go only where it has been replayed.
		var id int64
		if err := app.QueryRow(context.Background(), "INSERT INTO health_rows (v) VALUES (42) RETURNING id").Scan(&id); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		var lsn uint64
		waitFor(t, 2*time.Second, "a writer check after the commit", func() bool {
			var ok bool
			lsn, ok = lenient.WriterLSNAfter(sg.Name, committed)
			return ok
		})
		visible := func(s *pgtest.Server) bool {
			conn := connect(t, s.AppDSN())
			var n int
			if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM health_rows WHERE id = $1", id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		targets := lenient.ReadTargets(sg.Name, lsn, nil)
		if slices.Contains(targets, r1.Addr()) {
			t.Errorf("ReadTargets(minLSN %s) = %v includes the replica 3s behind", LSN(lsn), targets)
		}
		if visible(r1) {
			t.Error("the delayed replica already shows the write: the test proves nothing")
		}
		for _, addr := range targets {
			for _, s := range []*pgtest.Server{w, r1, r2} {
				if s.Addr() == addr && !visible(s) {
					t.Errorf("read target %s does not show the session's write", addr)
				}
			}
		}
		waitFor(t, 8*time.Second, "the delayed replica eligible once it replayed the write", func() bool {
			return slices.Contains(lenient.ReadTargets(sg.Name, lsn, nil), r1.Addr())
		})
		if !visible(r1) {
			t.Error("the delayed replica became a target before it showed the write")
		}
	})
}

// TestPromotion follows the writer role through a split brain and a failover.
func TestPromotion(t *testing.T) {
	g, sg := clusterGroup(t)
	w, r1, r2 := g.Writer, g.Replicas[0], g.Replicas[1]
	reg := prometheus.NewRegistry()
	c := pgChecker(t, sg, reg, nil)
	run(t, c)
	waitFor(t, 5*time.Second, "every endpoint up", func() bool {
		for _, s := range c.Snapshot() {
			if !s.Up {
				return false
			}
		}
		return true
	})
	if got := c.Writer(sg.Name); got != w.Addr() {
		t.Fatalf("Writer = %s, want %s", got, w.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Split brain: r1 promoted while the writer still runs. The newer timeline wins.
	if err := r1.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the promoted r1 to be the writer", func() bool { return c.Writer(sg.Name) == r1.Addr() })
	st := status(t, c, w.Addr())
	if !st.Up || st.InRecovery || st.Role != RoleReplica {
		t.Errorf("old writer status %+v: want up, out of recovery, demoted", st)
	}
	if got := c.ReadTargets(sg.Name, 0, nil); slices.Contains(got, w.Addr()) {
		t.Errorf("ReadTargets = %v includes the old writer of the split brain", got)
	}

	// Failover: the writer stops and another replica is promoted.
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "r1 reported down", func() bool { return !status(t, c, r1.Addr()).Up })
	if got := c.Writer(sg.Name); got != r1.Addr() {
		t.Errorf("Writer = %s while r1 is down and nothing else claims the role, want r1", got)
	}
	if err := r2.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the promoted r2 to be the writer", func() bool { return c.Writer(sg.Name) == r2.Addr() })
	if got := c.ReadTargets(sg.Name, 0, nil); !slices.Equal(got, []string{r2.Addr()}) {
		t.Errorf("ReadTargets = %v, want only the new writer", got)
	}
	if got := metricValue(t, reg, "shardwire_writer_changes_total", "group", sg.Name); got != 2 {
		t.Errorf("writer_changes_total = %v, want 2", got)
	}
	waitFor(t, 2*time.Second, "an LSN from the new writer", func() bool {
		_, ok := c.WriterLSNAfter(sg.Name, time.Now().Add(-10*time.Millisecond))
		return ok
	})
}
