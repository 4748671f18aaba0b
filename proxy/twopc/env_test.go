package twopc

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// testSchema is a catalog schema name that only survives proper identifier quoting.
const testSchema = `Two"Phase 'Log`

// testNode is a coordinator name that only survives proper literal quoting in a gid.
const testNode = `p'0\n`

// env is a catalog (on group 0's writer) and shard groups for a test.
type env struct {
	cl      *pgtest.Cluster
	log     *Log
	cat     *pgx.Conn // straight to the catalog database, to age records
	writers *writers
	groups  []string
}

// newEnv starts n groups, bootstraps a shard map catalog in testSchema on the first
// group's writer, opens the decision log and creates the probe table on every writer.
func newEnv(t *testing.T, n int) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := pgtest.New(t, pgtest.Options{Groups: n})
	e := &env{cl: cl, writers: &writers{servers: make(map[string]*pgtest.Server)}}
	m := &shardmap.Map{}
	for _, g := range cl.Groups {
		e.groups = append(e.groups, g.Name)
		e.writers.servers[g.Name] = g.Writer
		m.Groups = append(m.Groups, shardmap.Group{Name: g.Name, Region: "r0", Writer: g.Writer.Addr()})
		conn := pgtest.Connect(t, g.Writer.AppDSN())
		if _, err := conn.Exec(ctx, "CREATE TABLE twopc_probe (gid text NOT NULL, grp text NOT NULL)"); err != nil {
			t.Fatal(err)
		}
	}
	for s := range m.State {
		m.State[s] = shardmap.StateActive
	}
	catDSN := cl.Groups[0].Writer.AppDSN()
	cat, err := shardmap.OpenCatalog(ctx, catDSN, testSchema, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	if _, err := cat.Bootstrap(ctx, m, "test"); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	e.log, err = OpenLog(ctx, catDSN, testSchema, 2, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	t.Cleanup(e.log.Close)
	e.cat = pgtest.Connect(t, catDSN)
	return e
}

// recovery returns a Recovery of the env's groups with cfg (Groups filled in), closed at
// the end of the test, and the registry holding its metrics.
func (e *env) recovery(t *testing.T, cfg RecoveryConfig) (*Recovery, *prometheus.Registry) {
	t.Helper()
	if cfg.Groups == nil {
		cfg.Groups = func() []string { return e.groups }
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second // SCRAM under -race on a busy machine is slow
	}
	reg := prometheus.NewRegistry()
	r, err := NewRecovery(e.log, e.writers, cfg, reg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("NewRecovery: %v", err)
	}
	t.Cleanup(r.Close)
	return r, reg
}

// begin records a transaction on the given groups of the env, as a coordinator would.
func (e *env) begin(t *testing.T, groups ...string) string {
	t.Helper()
	gid := NewGID(testNode)
	err := e.log.Begin(context.Background(), Record{GID: gid, Node: testNode, Database: pgtest.Database, User: pgtest.User, Groups: groups})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return gid
}

// prepare runs a transaction inserting a probe row on group and prepares it as gid.
func (e *env) prepare(t *testing.T, group, gid string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.writers.servers[group].AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{"BEGIN", "INSERT INTO twopc_probe VALUES (" + quoteLiteral(gid) + ", " + quoteLiteral(group) + ")", PrepareSQL(gid)} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s on %s: %v", sql, group, err)
		}
	}
}

// age moves a record's timestamps d into the past.
func (e *env) age(t *testing.T, gid string, d time.Duration) {
	t.Helper()
	tag, err := e.cat.Exec(context.Background(),
		"UPDATE "+e.log.table+" SET created_at = created_at - $2::interval, updated_at = updated_at - $2::interval WHERE gid = $1",
		gid, d)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("age %q: %v (%d rows)", gid, err, tag.RowsAffected())
	}
}

// preparedOn returns the shardwire prepared transactions of a group.
func (e *env) preparedOn(t *testing.T, group string) []string {
	t.Helper()
	xacts, err := scanGroup(context.Background(), e.writers, group, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var gids []string
	for _, x := range xacts {
		gids = append(gids, x.gid)
	}
	return gids
}

// committedOn reports whether the probe row of gid is visible on group.
func (e *env) committedOn(t *testing.T, group, gid string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.writers.servers[group].AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM twopc_probe WHERE gid = $1", gid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// state returns the state of gid's record, "" when there is none.
func (e *env) state(t *testing.T, gid string) State {
	t.Helper()
	records, err := e.log.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if r.GID == gid {
			return r.State
		}
	}
	return ""
}

// checkPrepared fails the test unless group's shardwire prepared transactions are want.
func (e *env) checkPrepared(t *testing.T, group string, want ...string) {
	t.Helper()
	got := e.preparedOn(t, group)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("prepared on %s: %q, want %q", group, got, want)
	}
}

// writers is the test's Connector: the app role on the groups' writers. It calls onScan,
// when set, before each scan connection.
type writers struct {
	servers map[string]*pgtest.Server

	mu     sync.Mutex
	onScan func(group string)
}

func (w *writers) Connect(ctx context.Context, group, database, user string) (*pgx.Conn, error) {
	s, ok := w.servers[group]
	if !ok {
		return nil, fmt.Errorf("unknown group %q", group)
	}
	dsn := s.AppDSN()
	if database != "" || user != "" {
		if user != pgtest.User {
			return nil, fmt.Errorf("no password for role %q", user)
		}
		dsn = s.DSN(user, pgtest.Password, database)
	} else {
		w.mu.Lock()
		hook := w.onScan
		w.mu.Unlock()
		if hook != nil {
			hook(group)
		}
	}
	return pgx.Connect(ctx, dsn)
}

func (w *writers) setOnScan(fn func(group string)) {
	w.mu.Lock()
	w.onScan = fn
	w.mu.Unlock()
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
