package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/admin"
)

// fakeNode is an admin.API with canned answers, recording the changes it is asked for.
type fakeNode struct {
	mu        sync.Mutex
	cluster   admin.ClusterStatus
	view      admin.ShardMapView
	changeErr error // returned by AddGroup and RemoveGroup
	added     []admin.GroupAddRequest
	removed   []string
	cache     admin.CacheStatus
	flushes   []admin.CacheFlushRequest
	// transactions is what Transactions returns.
	transactions admin.TransactionsStatus
}

func (f *fakeNode) Transactions(context.Context) (admin.TransactionsStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.transactions, nil
}

func (f *fakeNode) Cache(context.Context) (admin.CacheStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cache, nil
}

func (f *fakeNode) FlushCache(_ context.Context, req admin.CacheFlushRequest) (admin.CacheFlushResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes = append(f.flushes, req)
	if !f.cache.Enabled {
		return admin.CacheFlushResult{}, admin.Errorf(409, admin.CodeCacheOff, "the cache is off")
	}
	scope := "everything"
	switch {
	case req.Customer != nil:
		scope = fmt.Sprintf("customer %d", *req.Customer)
	case req.Table != "":
		scope = "table " + req.Table
	}
	return admin.CacheFlushResult{Generations: 3, Scope: scope}, nil
}

func (f *fakeNode) Cluster(context.Context) (admin.ClusterStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cluster, nil
}

func (f *fakeNode) ShardMap(context.Context) (admin.ShardMapView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view, nil
}

func (f *fakeNode) AddGroup(_ context.Context, req admin.GroupAddRequest) (admin.ShardMapView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, req)
	if f.changeErr != nil {
		return admin.ShardMapView{}, f.changeErr
	}
	v := f.view
	v.Epoch++
	v.Groups = append(append([]admin.GroupView(nil), v.Groups...),
		admin.GroupView{Name: req.Name, Region: req.Region, Writer: req.Writer, Replicas: req.Replicas, Shards: []int{}})
	return v, nil
}

func (f *fakeNode) RemoveGroup(_ context.Context, name string) (admin.ShardMapView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, name)
	if f.changeErr != nil {
		return admin.ShardMapView{}, f.changeErr
	}
	v := f.view
	v.Epoch++
	return v, nil
}

// cannedView is a two-group map at epoch 7; shard 13 is moving.
func cannedView() admin.ShardMapView {
	v := admin.ShardMapView{Epoch: 7, DefaultGroup: "g0",
		Groups: []admin.GroupView{
			{Name: "g0", Region: "us-east-1", Writer: "10.0.0.1:5432", Replicas: []string{"10.0.0.2:5432"}, Shards: []int{0, 1, 2, 3, 4, 5, 6, 7}},
			{Name: "g1", Region: "eu-west-1", Writer: "10.0.1.1:5432", Replicas: []string{}, Shards: []int{8, 9, 10, 11, 12, 13, 14, 15}},
		},
		Rules: []admin.RuleView{{Column: "customer_id"}, {Table: "invoices", Column: "customer_id"}},
		Lease: admin.LeaseView{Valid: true, AgeSeconds: 0.25, TTLSeconds: 10},
	}
	for s := range 16 {
		g, state := "g0", "active"
		if s >= 8 {
			g = "g1"
		}
		if s == 13 {
			state = "moving"
		}
		v.Shards = append(v.Shards, admin.ShardView{Shard: s, Group: g, State: state})
	}
	return v
}

// startFake serves node through the real admin server and returns its address.
func startFake(t *testing.T, node admin.API) string {
	t.Helper()
	srv := admin.New(admin.Config{API: node}, zap.NewNop(), prometheus.NewRegistry(), nil)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// runCLI runs shardctl with args and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestStatusOutput(t *testing.T) {
	lag := 0.0123
	node := &fakeNode{view: cannedView(), cluster: admin.ClusterStatus{Node: "p1", Clustered: true,
		Members: []admin.MemberStatus{
			{Name: "p2", State: "dead", Region: "eu-west-1", Epoch: 5, PgAddr: "10.0.9.2:6432", AdminAddr: "10.0.9.2:9930"},
			{Name: "p1", State: "alive", Region: "us-east-1", Epoch: 7, LeaseOK: true, Ready: true, Self: true, PgAddr: "10.0.9.1:6432", AdminAddr: "10.0.9.1:9930"},
			{Name: "p0", State: "alive", Region: "us-east-1", Epoch: 6, LeaseOK: false, Ready: false, PgAddr: "10.0.9.0:6432", AdminAddr: "10.0.9.0:9930"},
		},
		Endpoints: []admin.EndpointStatus{
			{Group: "g0", Addr: "10.0.0.1:5432", Region: "us-east-1", Role: "writer", Up: true, LagSeconds: new(0.0), LastError: "stale, not shown"},
			{Group: "g0", Addr: "10.0.0.2:5432", Region: "us-east-1", Role: "replica", Up: true, LagSeconds: &lag},
			{Group: "g1", Addr: "10.0.1.1:5432", Region: "eu-west-1", Role: "writer", Up: false, Banned: true, LastError: "connection refused"},
		}}}
	addr := startFake(t, node)
	code, out, errOut := runCLI(t, "--admin", addr, "status")
	if code != 0 || errOut != "" {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	want := `cluster of 3 members, as node p1 sees it
NAME       STATE  REGION     EPOCH  LEASE    READY  PG             ADMIN
p0         alive  us-east-1  6      expired  no     10.0.9.0:6432  10.0.9.0:9930
p1 (self)  alive  us-east-1  7      valid    yes    10.0.9.1:6432  10.0.9.1:9930
p2         dead   eu-west-1  5      expired  no     10.0.9.2:6432  10.0.9.2:9930
epochs differ: p0=6, p1=7
not alive: p2 (dead)
lease expired (routed work refused): p0
not ready: p0

GROUP  ENDPOINT       ROLE     REGION     UP   LAG     NOTE
g0     10.0.0.1:5432  writer   us-east-1  yes  -       -
g0     10.0.0.2:5432  replica  us-east-1  yes  0.012s  -
g1     10.0.1.1:5432  writer   eu-west-1  no   -       banned; last error: connection refused

shard map at epoch 7, default group g0, lease valid
SHARD  GROUP  STATE   SHARD  GROUP  STATE   SHARD  GROUP  STATE   SHARD  GROUP  STATE
0      g0     active  4      g0     active  8      g1     active  12     g1     active
1      g0     active  5      g0     active  9      g1     active  13     g1     moving
2      g0     active  6      g0     active  10     g1     active  14     g1     active
3      g0     active  7      g0     active  11     g1     active  15     g1     active
`
	if out != want {
		t.Errorf("status output:\n%s\nwant:\n%s", out, want)
	}
}

func TestMapOutput(t *testing.T) {
	addr := startFake(t, &fakeNode{view: cannedView()})
	code, out, errOut := runCLI(t, "--admin", addr, "map")
	if code != 0 || errOut != "" {
		t.Fatalf("map: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"epoch          7\n",
		"default group  g0\n",
		"lease          valid (age 0.250s of 10s)\n",
		"g0     us-east-1  10.0.0.1:5432  10.0.0.2:5432  {0-7}\n",
		"g1     eu-west-1  10.0.1.1:5432  -              {8-15}\n",
		"13     g1     moving\n",
		"(any table with the column)  customer_id\n",
		"invoices                     customer_id\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("map output lacks %q:\n%s", want, out)
		}
	}

	// --json prints the API's view unchanged.
	code, out, errOut = runCLI(t, "--admin", addr, "map", "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("map --json: exit %d, stderr %q", code, errOut)
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, cannedView()); err != nil {
		t.Fatal(err)
	}
	if out != buf.String() || !strings.Contains(out, "\n  \"epoch\": 7,\n") {
		t.Errorf("map --json:\n%s\nwant:\n%s", out, buf.String())
	}
}

func TestGroupAddSendsAddresses(t *testing.T) {
	node := &fakeNode{view: cannedView()}
	addr := startFake(t, node)
	code, out, errOut := runCLI(t, "--admin", addr, "group", "add", "g2", "--region", "ap-south-1",
		"--writer", "postgres://app:pw@[2001:db8::5]:5440/app?sslmode=disable",
		"--replica", "host=10.0.2.2 port=5441 user=app password=pw",
		"--replica", "postgresql://10.0.2.3/app")
	if code != 0 || errOut != "" {
		t.Fatalf("group add: exit %d, stderr %q", code, errOut)
	}
	want := admin.GroupAddRequest{Name: "g2", Region: "ap-south-1", Writer: "[2001:db8::5]:5440",
		Replicas: []string{"10.0.2.2:5441", "10.0.2.3:5432"}}
	if len(node.added) != 1 || !reflect.DeepEqual(node.added[0], want) {
		t.Fatalf("node got %+v, want %+v", node.added, want)
	}
	wantOut := "added group g2: the shard map is now at epoch 8\n" +
		"GROUP  REGION      WRITER              REPLICAS                     SHARDS\n" +
		"g2     ap-south-1  [2001:db8::5]:5440  10.0.2.2:5441,10.0.2.3:5432  {}\n"
	if out != wantOut {
		t.Errorf("group add output:\n%s\nwant:\n%s", out, wantOut)
	}
}

func TestCacheCommands(t *testing.T) {
	node := &fakeNode{view: cannedView(), cache: admin.CacheStatus{Node: "p0", Enabled: true, Usable: true, RedisUp: true,
		Tables: map[string]string{"invoices": "5m0s", "customers": "10m0s"}, Entries: 12, Bytes: 3456, Misses: 4, Fills: 4, HitRate: 0.75,
		Layers: []admin.CacheLayerStatus{{Layer: "l1", Hits: 10, HitRate: 0.625}, {Layer: "l2", Hits: 2, HitRate: 1}}}}
	addr := startFake(t, node)
	code, out, errOut := runCLI(t, "--admin", addr, "cache", "status")
	wantStatus := "node p0: cache serving, redis up\n" +
		"entries 12, 3456 bytes in memory; 4 misses, 4 fills, hit rate 75.0%\n" +
		"LAYER  HITS  HIT RATE\n" +
		"l1     10    62.5%\n" +
		"l2     2     100.0%\n" +
		"\n" +
		"TABLE      TTL    \n" +
		"customers  10m0s  \n" +
		"invoices   5m0s   \n"
	if code != 0 || errOut != "" || out != wantStatus {
		t.Fatalf("cache status: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, wantStatus)
	}
	for _, tc := range []struct {
		args []string
		want admin.CacheFlushRequest
		out  string
	}{
		{nil, admin.CacheFlushRequest{}, "flushed everything (3 generations bumped)\n"},
		{[]string{"--table", "invoices"}, admin.CacheFlushRequest{Table: "invoices"}, "flushed table invoices (3 generations bumped)\n"},
		{[]string{"--customer", "0"}, admin.CacheFlushRequest{Customer: new(int64)}, "flushed customer 0 (3 generations bumped)\n"},
	} {
		node.flushes = nil
		code, out, errOut := runCLI(t, append([]string{"--admin", addr, "cache", "flush"}, tc.args...)...)
		if code != 0 || errOut != "" || out != tc.out {
			t.Errorf("cache flush %v: exit %d, stdout %q, stderr %q", tc.args, code, out, errOut)
		}
		if len(node.flushes) != 1 || !reflect.DeepEqual(node.flushes[0], tc.want) {
			t.Errorf("cache flush %v: node got %+v, want %+v", tc.args, node.flushes, tc.want)
		}
	}
	node.cache.Enabled = false
	code, _, errOut = runCLI(t, "--admin", addr, "cache", "flush")
	if code == 0 || !strings.Contains(errOut, "cache.tables") {
		t.Errorf("flush with the cache off: exit %d, stderr %q: want a hint at cache.tables", code, errOut)
	}
}

func TestGroupRemove(t *testing.T) {
	node := &fakeNode{view: cannedView()}
	addr := startFake(t, node)
	code, out, errOut := runCLI(t, "--admin", addr, "group", "remove", "g1")
	if code != 0 || errOut != "" || out != "removed group g1: the shard map is now at epoch 8\n" {
		t.Fatalf("group remove: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !reflect.DeepEqual(node.removed, []string{"g1"}) {
		t.Errorf("node removed %q, want [g1]", node.removed)
	}
}

func TestCommandErrors(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	for _, tc := range []struct {
		name      string
		changeErr error
		args      []string
		want      string // the whole stderr
		wantCalls int    // changes the node was asked for
	}{
		{"unknown group", admin.Errorf(404, admin.CodeUnknownGroup, `no group named "g9"`),
			[]string{"group", "remove", "g9"},
			"shardctl: no group named \"g9\"; `shardctl map` lists the groups\n", 1},
		{"group exists", admin.Errorf(409, admin.CodeGroupExists, `group "g1" exists already`),
			[]string{"group", "add", "g1", "--region", "r", "--writer", "host=h port=1"},
			"shardctl: group \"g1\" exists already; choose another name, or remove the existing group first\n", 1},
		{"owns shards", admin.Errorf(409, admin.CodeOwnsShards, `shard group "g1" still owns shards {8-15}`),
			[]string{"group", "remove", "g1"},
			"shardctl: cannot remove group g1: it owns shards {8-15}; move them to other groups first, then remove it\n", 1},
		{"default group", admin.Errorf(409, admin.CodeOwnsShards, "the default shard group cannot be removed"),
			[]string{"group", "remove", "g0"},
			"shardctl: cannot remove group g0: it is the default group, which holds the unsharded tables\n", 1},
		{"owns shards, not in the map", admin.Errorf(409, admin.CodeOwnsShards, `shard group "g5" still owns shards {1}`),
			[]string{"group", "remove", "g5"},
			"shardctl: shard group \"g5\" still owns shards {1}; move its shards to other groups first, then remove it\n", 1},
		{"epoch conflict", admin.Errorf(409, admin.CodeEpochConflict, "the shard map changed concurrently (the catalog is now at epoch 7)"),
			[]string{"group", "remove", "g1"},
			"shardctl: the shard map changed concurrently (the catalog is now at epoch 7); run the command again\n", 1},
		{"no catalog", admin.Errorf(409, admin.CodeNoCatalog, "this node has no catalog"),
			[]string{"group", "remove", "g1"},
			"shardctl: this node has no catalog; changing groups needs nodes configured with a shard map catalog\n", 1},
		{"unavailable", admin.Errorf(502, admin.CodeUnavailable, "server 10.9.9.9:5432 does not accept connections"),
			[]string{"group", "add", "g2", "--region", "r", "--writer", "host=10.9.9.9"},
			"shardctl: server 10.9.9.9:5432 does not accept connections; check that the server runs and accepts connections from the node, then try again\n", 1},
		{"invalid", admin.Errorf(400, admin.CodeInvalid, "group name must not be empty"),
			[]string{"group", "remove", "x"},
			"shardctl: the node rejected the request: group name must not be empty\n", 1},
		{"internal", admin.Errorf(500, admin.CodeInternal, "boom"),
			[]string{"group", "remove", "g1"},
			"shardctl: the node failed (internal, HTTP 500): boom\n", 1},
		{"invalid writer DSN", nil,
			[]string{"group", "add", "g2", "--region", "r", "--writer", "postgres://app:pw@h:notaport/app"},
			"shardctl: invalid --writer DSN: cannot parse `postgres://app:xxxxx@h:notaport/app`: invalid port\n", 0},
		{"invalid replica DSN", nil,
			[]string{"group", "add", "g2", "--region", "r", "--writer", "host=h port=1", "--replica", "host=h2 port=2", "--replica", "bad"},
			"shardctl: invalid --replica #2 DSN: cannot parse `bad`: failed to parse as keyword/value (invalid keyword/value)\n", 0},
		{"group without subcommand", nil, []string{"group"},
			"shardctl: group needs a subcommand, add or remove (see shardctl group --help)\n", 0},
		{"unknown subcommand", nil, []string{"group", "move"},
			"shardctl: unknown command \"move\" for \"shardctl group\"\n", 0},
		{"missing writer", nil, []string{"group", "add", "g2", "--region", "r"},
			"shardctl: required flag(s) \"writer\" not set\n", 0},
		{"not an admin API", nil, []string{"--admin", notFound.URL, "map"},
			"shardctl: admin API at " + strings.TrimPrefix(notFound.URL, "http://") + " answered GET /api/v1/shardmap with 404 Not Found: 404 page not found; is " +
				strings.TrimPrefix(notFound.URL, "http://") + " a shardwire node's admin address (--admin or SHARDWIRE_ADMIN)?\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := &fakeNode{view: cannedView(), changeErr: tc.changeErr}
			args := append([]string{"--admin", startFake(t, node)}, tc.args...)
			code, out, errOut := runCLI(t, args...)
			if code != 1 || out != "" || errOut != tc.want {
				t.Errorf("exit %d, stdout %q, stderr:\n%q\nwant exit 1, no stdout, stderr:\n%q", code, out, errOut, tc.want)
			}
			if calls := len(node.added) + len(node.removed); calls != tc.wantCalls {
				t.Errorf("node was asked for %d changes, want %d", calls, tc.wantCalls)
			}
		})
	}
}

func TestAdminAddressSource(t *testing.T) {
	addr := startFake(t, &fakeNode{view: cannedView()})
	t.Setenv(envAdmin, addr)
	if code, out, errOut := runCLI(t, "map", "--json"); code != 0 || !strings.Contains(out, `"epoch": 7`) {
		t.Fatalf("map with %s=%s: exit %d, stdout %q, stderr %q", envAdmin, addr, code, out, errOut)
	}
	// The flag wins over the environment, and the error says where the address came from.
	code, _, errOut := runCLI(t, "--admin", "127.0.0.1:1", "map")
	if code != 1 || !strings.Contains(errOut, "cannot reach the admin API at 127.0.0.1:1 (from --admin)") {
		t.Errorf("map --admin 127.0.0.1:1: exit %d, stderr %q", code, errOut)
	}
	t.Setenv(envAdmin, "127.0.0.1:1")
	code, _, errOut = runCLI(t, "status")
	if code != 1 || !strings.Contains(errOut, "(from SHARDWIRE_ADMIN)") || !strings.Contains(errOut, "connection refused") {
		t.Errorf("status with %s=127.0.0.1:1: exit %d, stderr %q", envAdmin, code, errOut)
	}
	t.Setenv(envAdmin, "")
	root := newRootCmd()
	if got := root.PersistentFlags().Lookup("admin").DefValue; got != defaultAdmin {
		t.Errorf("--admin default without %s = %q, want %q", envAdmin, got, defaultAdmin)
	}
}

func TestTransactionsCommand(t *testing.T) {
	node := &fakeNode{view: cannedView(), transactions: admin.TransactionsStatus{Node: "p0", Enabled: true,
		Records: []admin.TransactionRecord{{GID: "shardwire:p1:a", State: "commit", Node: "p1", Database: "app", Groups: []string{"g0", "g2"}}},
		InDoubt: []admin.InDoubtBranch{{Group: "g2", GID: "shardwire:p1:a", State: "commit", Database: "app", Owner: "app"},
			{Group: "g1", GID: "shardwire:p9:b", Database: "app", Owner: "app"}},
		Errors: []string{"group g3: connection refused"}}}
	addr := startFake(t, node)
	code, out, errOut := runCLI(t, "--admin", addr, "transactions")
	for _, want := range []string{"node p0: 1 decision record(s), 2 prepared transaction(s) on the groups",
		"shardwire:p1:a  commit", "g0,g2", "g1     shardwire:p9:b  none (presumed abort)", "warning: group g3: connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("transactions output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 || errOut != "" {
		t.Fatalf("transactions: exit %d, stderr %q", code, errOut)
	}
}
