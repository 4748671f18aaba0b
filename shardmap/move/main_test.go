package move

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// cluster is the two-group Postgres cluster every test of the package shares; TestMain
// starts it and stops it, tests only create their own databases on it.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := pgtest.Start(ctx, pgtest.Options{Groups: 2})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	cluster = c
	// The capacity checks count other roles' processes, which only pg_read_all_stats shows.
	for _, g := range c.Groups {
		if err := grantStats(g.Writer.SuperDSN("postgres")); err != nil {
			fmt.Fprintln(os.Stderr, "grant:", err)
			_ = c.Stop()
			os.Exit(1)
		}
	}
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest stop:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// pair is a source database on group 0 and a target database on group 1, each fresh for
// one test and connected as the application role.
type pair struct {
	source, target *pgx.Conn
	sourceDSN      string
	targetDSN      string
}

// newPair creates a fresh database on each group, runs sourceDDL and targetDDL in them, and
// returns connections to both that the test closes at its end.
func newPair(t *testing.T, sourceDDL, targetDDL string) *pair {
	t.Helper()
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	db := fmt.Sprintf("move_%x", h.Sum64())
	p := &pair{}
	for i, ddl := range []string{sourceDDL, targetDDL} {
		srv := cluster.Groups[i].Writer
		admin := pgtest.Connect(t, srv.SuperDSN("postgres"))
		exec(t, admin, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db))
		exec(t, admin, fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, pgtest.User))
		dsn := srv.DSN(pgtest.User, pgtest.Password, db)
		conn := pgtest.Connect(t, dsn)
		if ddl != "" {
			exec(t, conn, ddl)
		}
		if i == 0 {
			p.source, p.sourceDSN = conn, dsn
		} else {
			p.target, p.targetDSN = conn, dsn
		}
	}
	return p
}

// exec runs sql (several statements allowed) and fails the test on error.
func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// newAdmin connects as superuser to the source group's postgres database.
func newAdmin(t *testing.T) *pgx.Conn {
	t.Helper()
	return pgtest.Connect(t, cluster.Groups[0].Writer.SuperDSN("postgres"))
}

// grantStats lets the application role see every process's type.
func grantStats(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "GRANT pg_read_all_stats TO "+pgtest.User)
	return err
}
