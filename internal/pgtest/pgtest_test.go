package pgtest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// waitFor polls cond until it reports true, failing the test on ctx's end.
func waitFor(ctx context.Context, t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %v)", what, ctx.Err(), lastErr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func connect(ctx context.Context, t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryBool(ctx context.Context, t *testing.T, conn *pgx.Conn, sql string) bool {
	t.Helper()
	var v bool
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestReplicationKillAndRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := pgtest.New(t, pgtest.Options{Replicas: 1})
	w, r := c.Groups[0].Writer, c.Groups[0].Replicas[0]

	// The app role authenticates with SCRAM; a wrong password is refused.
	app := connect(ctx, t, w.AppDSN())
	var user, db string
	if err := app.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
		t.Fatal(err)
	}
	if user != pgtest.User || db != pgtest.Database {
		t.Fatalf("connected as %s to %s, want %s to %s", user, db, pgtest.User, pgtest.Database)
	}
	super := connect(ctx, t, w.SuperDSN("postgres"))
	if !queryBool(ctx, t, super, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'app'") {
		t.Error("app's password is not stored as SCRAM")
	}
	_, err := pgx.Connect(ctx, w.DSN(pgtest.User, "wrong", pgtest.Database))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("connect with a wrong password: got %v, want SQLSTATE 28P01", err)
	}

	if _, err := app.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one')"); err != nil {
		t.Fatal(err)
	}

	replica := connect(ctx, t, r.AppDSN())
	if !queryBool(ctx, t, replica, "SELECT pg_is_in_recovery()") {
		t.Error("replica is not in recovery")
	}
	waitFor(ctx, t, "row on the replica", func(ctx context.Context) (bool, error) {
		var v string
		err := replica.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v)
		return err == nil && v == "one", err
	})

	// Crash and restart the writer: same address, data kept, writable.
	addr := w.Addr()
	if err := w.Kill(); err != nil {
		t.Fatal(err)
	}
	if w.Running() {
		t.Fatal("writer still running after Kill")
	}
	start := time.Now()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("writer restarted after a crash in %v", time.Since(start))
	if w.Addr() != addr {
		t.Errorf("address changed on restart: %s -> %s", addr, w.Addr())
	}
	app2 := connect(ctx, t, w.AppDSN())
	var n int
	if err := app2.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after restart: count = %d, err %v; want 1", n, err)
	}
	if _, err := app2.Exec(ctx, "INSERT INTO t VALUES (2, 'two')"); err != nil {
		t.Fatal(err)
	}
	// The replica reconnects to the restarted writer.
	waitFor(ctx, t, "second row on the replica", func(ctx context.Context) (bool, error) {
		var n int
		err := replica.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n)
		return err == nil && n == 2, err
	})
}

func TestPromote(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := pgtest.New(t, pgtest.Options{Groups: 2, Replicas: 1, ExtraConf: map[string]string{"application_name": "pgtest"}})
	if len(c.Groups) != 2 || len(c.Servers()) != 4 {
		t.Fatalf("got %d groups, %d servers; want 2, 4", len(c.Groups), len(c.Servers()))
	}
	r := c.Groups[1].Replicas[0]
	if err := c.Groups[1].Writer.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	conn := connect(ctx, t, r.AppDSN())
	if queryBool(ctx, t, conn, "SELECT pg_is_in_recovery()") {
		t.Fatal("promoted replica is still in recovery")
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE p (id int); INSERT INTO p VALUES (1)"); err != nil {
		t.Fatalf("write to the promoted replica: %v", err)
	}
	var app string
	if err := conn.QueryRow(ctx, "SHOW application_name").Scan(&app); err != nil || app != "pgtest" {
		t.Errorf("ExtraConf not applied: application_name = %q, err %v", app, err)
	}
	// The other group is untouched.
	other := connect(ctx, t, c.Groups[0].Replicas[0].AppDSN())
	if !queryBool(ctx, t, other, "SELECT pg_is_in_recovery()") {
		t.Error("g0's replica left recovery")
	}
}

func TestStartInDir(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Not t.TempDir(): when tests run as root, Postgres runs as the postgres
	// user and must traverse the directory.
	base, err := os.MkdirTemp("", "pgtest-dir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "cluster")

	start := time.Now()
	c, err := pgtest.Start(ctx, pgtest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1 writer ready in %v", time.Since(start))
	w := c.Groups[0].Writer
	if w.DataDir != filepath.Join(dir, "g0-writer") {
		t.Errorf("DataDir = %s", w.DataDir)
	}
	conn := connect(ctx, t, w.AppDSN())
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if w.Running() {
		t.Error("writer running after Stop")
	}
	if _, err := os.Stat(w.LogPath()); err != nil {
		t.Errorf("Stop removed a caller's Dir: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
