package rebalance_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/devcluster"
	"github.com/shardwire/shardwire/internal/netfault"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
	"github.com/shardwire/shardwire/shardmap/move"
	"github.com/shardwire/shardwire/shardmap/rebalance"
)

// schema is created on every group's writer: items take inserts with unique (client, seq)
// keys, counters take v = v + 1, probe takes the direct writes of the single-writer prober.
const schema = `
CREATE TABLE items (customer_id bigint NOT NULL, client int NOT NULL, seq bigint NOT NULL, note text,
	PRIMARY KEY (customer_id, client, seq));
CREATE TABLE counters (customer_id bigint PRIMARY KEY, v bigint NOT NULL DEFAULT 0);
CREATE TABLE probe (customer_id bigint NOT NULL, side text NOT NULL, seq bigint NOT NULL,
	PRIMARY KEY (customer_id, side, seq));`

// env is the acceptance tests' cluster: four groups with a replica each plus an empty
// fifth (g4), three shardwire nodes running as child processes, and a catalog.
type env struct {
	t       testing.TB
	dc      *devcluster.Cluster
	fifth   *pgtest.Cluster
	cat     *shardmap.Catalog
	writers map[string]*pgtest.Server // group name → writer
	admins  []*admin.Client           // one per node
	relay   *catalogRelay             // node p2's way to the catalog
	loads   int                       // workloads started
	// catalogDSN is the catalog's DSN as the nodes have it (the application role).
	catalogDSN string
}

// buildShardwire builds cmd/shardwire into dir.
func buildShardwire(t testing.TB, dir string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	path := filepath.Join(dir, "shardwire")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/shardwire")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/shardwire: %v\n%s", err, out)
	}
	return path
}

func startEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Postgres may run as another OS user (tests as root): the directory must be reachable.
	dir, err := os.MkdirTemp("", "rebalance-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildShardwire(t, dir)
	e := &env{t: t, writers: make(map[string]*pgtest.Server)}
	e.relay, err = newCatalogRelay()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.relay.close)
	var catalogDSN string
	e.dc, err = devcluster.Start(ctx, devcluster.Options{
		Dir: dir, Groups: 4, Replicas: 1, Proxies: 3, Exec: bin, Logf: t.Logf,
		Overlay: []byte("catalog:\n  lease_ttl: 3s\n  poll_interval: 500ms\n"),
		NodeConfig: func(i int, cfg *config.Config) {
			catalogDSN = cfg.Catalog.DSN
			if i == 2 {
				// Node p2 reaches the catalog through a relay the tests can cut.
				cfg.Catalog.DSN = e.relay.dsn(cfg.Catalog.DSN)
			}
		},
	})
	if err != nil {
		for i := range 3 {
			if log, rerr := os.ReadFile(filepath.Join(dir, "proxies", fmt.Sprintf("p%d.log", i))); rerr == nil {
				t.Logf("p%d.log:\n%s", i, tail(string(log), 3000))
			}
		}
		t.Fatalf("start the cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := e.dc.Stop(); err != nil {
			t.Logf("stop the cluster: %v", err)
		}
	})
	e.fifth = pgtest.New(t, pgtest.Options{Replicas: 1, Logf: t.Logf})
	for _, g := range e.dc.PG.Groups {
		e.writers[g.Name] = g.Writer
	}
	e.writers["g4"] = e.fifth.Groups[0].Writer
	for name, w := range e.writers {
		conn := pgtest.Connect(t, w.AppDSN())
		if _, err := conn.Exec(ctx, schema); err != nil {
			t.Fatalf("schema on %s: %v", name, err)
		}
		su := pgtest.Connect(t, w.SuperDSN("postgres"))
		if _, err := su.Exec(ctx, "GRANT pg_read_all_stats TO "+pgtest.User); err != nil {
			t.Fatal(err)
		}
	}
	e.catalogDSN = catalogDSN
	e.cat, err = shardmap.OpenCatalog(ctx, catalogDSN, "", zaptest.NewLogger(t).Named("catalog"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cat.Close)
	g4 := e.fifth.Groups[0]
	m, err := e.cat.Update(ctx, "test", "add the fifth group", func(m *shardmap.Map) (*shardmap.Map, error) {
		return shardmap.AddGroup(m, shardmap.Group{Name: "g4", Region: "us-east-1", Writer: g4.Writer.Addr(),
			Replicas: []string{g4.Replicas[0].Addr()}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.dc.Nodes {
		c, err := admin.NewClient(n.Admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.admins = append(e.admins, c)
	}
	e.waitEpoch(m.Epoch)
	return e
}

// waitEpoch waits until every node serves epoch at least.
func (e *env) waitEpoch(epoch int64) {
	e.t.Helper()
	waitFor(e.t, 20*time.Second, fmt.Sprintf("every node at epoch %d", epoch), func() bool {
		members, err := e.members(context.Background())
		if err != nil || len(members) != len(e.dc.Nodes) {
			return false
		}
		for _, m := range members {
			if m.State != "alive" || m.Epoch < epoch {
				return false
			}
		}
		return true
	})
}

// members asks the first node that answers for the cluster's members.
func (e *env) members(ctx context.Context) ([]rebalance.Member, error) {
	var last error
	for _, c := range e.admins {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Cluster(cctx)
		cancel()
		if err != nil {
			last = err
			continue
		}
		out := make([]rebalance.Member, len(st.Members))
		for i, m := range st.Members {
			out[i] = rebalance.Member{Name: m.Name, State: m.State, Epoch: m.Epoch}
		}
		return out, nil
	}
	return nil, last
}

// runner returns a Runner over the test cluster.
func (e *env) runner(tweak func(*rebalance.Options)) *rebalance.Runner {
	e.t.Helper()
	o := rebalance.Options{
		Catalog:   e.cat,
		Connector: rebalance.DSNConnector{User: "postgres", Params: map[string]string{"sslmode": "disable"}},
		Members:   e.members, Databases: []string{pgtest.Database}, By: "test",
		Log:          zaptest.NewLogger(e.t).Named("runner"),
		Grace:        300 * time.Millisecond,
		CleanupAfter: time.Millisecond,
		Verify:       move.VerifyOptions{RetryDelay: 100 * time.Millisecond},
	}
	var last time.Time
	o.OnProgress = func(p rebalance.Progress) {
		if strings.HasPrefix(p.Step, "entered") || time.Since(last) > 3*time.Second {
			last = time.Now()
			e.t.Logf("move %d %s: %s (rows %d, lag %d, tables ready %d/%d)", p.Move.ID, p.Move.Phase, p.Step, p.Rows, p.Lag, p.Ready, p.Tables)
		}
	}
	if tweak != nil {
		tweak(&o)
	}
	r, err := rebalance.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// writer connects as superuser to a group's writer (the app database).
func (e *env) writer(group string) *pgx.Conn {
	e.t.Helper()
	w, ok := e.writers[group]
	if !ok {
		e.t.Fatalf("no group %s", group)
	}
	return pgtest.Connect(e.t, w.SuperDSN(pgtest.Database))
}

// owner returns the catalog's owner of shard.
func (e *env) owner(shard shardmap.Shard) string {
	e.t.Helper()
	m, err := e.cat.Load(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return m.OwnerOf(shard).Name
}

// moveSlots lists the replication slots of moves on every writer.
func (e *env) moveSlots() []string {
	e.t.Helper()
	var out []string
	for name, w := range e.writers {
		conn := pgtest.Connect(e.t, w.SuperDSN(pgtest.Database))
		rows, err := conn.Query(context.Background(), "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'shardwire_move_%'")
		if err != nil {
			e.t.Fatal(err)
		}
		slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			e.t.Fatal(err)
		}
		for _, s := range slots {
			out = append(out, name+":"+s)
		}
		_ = conn.Close(context.Background())
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sqlState returns err's SQLSTATE, "" when it has none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// catalogRelay forwards one node's catalog connections and can cut them.
type catalogRelay struct {
	mu     sync.Mutex
	target string
	*netfault.Relay
}

func newCatalogRelay() (*catalogRelay, error) {
	r := &catalogRelay{}
	relay, err := netfault.NewRelay(func() string {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.target
	})
	if err != nil {
		return nil, err
	}
	r.Relay = relay
	return r, nil
}

func (r *catalogRelay) close() { _ = r.Close() }

// dsn points the relay at dsn's server and returns dsn rewritten to go through the relay.
func (r *catalogRelay) dsn(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	r.target = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	r.mu.Unlock()
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", cfg.User, cfg.Password, r.Addr(), cfg.Database)
}

// tail returns the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
