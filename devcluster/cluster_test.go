package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// selectAnswer runs select 40 + 2 through n and checks the answer.
func selectAnswer(ctx context.Context, t *testing.T, n *Node) {
	t.Helper()
	conn, err := pgconn.Connect(ctx, n.DSN())
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	res, err := conn.Exec(ctx, "select 40 + 2").ReadAll()
	conn.Close(ctx)
	if err != nil || string(res[0].Rows[0][0]) != "42" {
		t.Fatalf("%s: select = %v, %v", n.Name, res, err)
	}
}

// readInfo writes and reads back cluster.json.
func readInfo(t *testing.T, c *Cluster) (Info, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := c.WriteInfo(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	return info, data
}

func TestStartTwoProxiesInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Proxies: 2, Logf: t.Logf,
		Overlay: []byte("pool:\n  default_pool_size: 3\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		for _, n := range c.Nodes {
			if n.Running() {
				t.Errorf("%s still runs after Stop", n.Name)
			}
		}
	}()
	if len(c.Nodes) != 2 || c.Nodes[1].Name != "p1" || c.Nodes[0].Config.Pool.DefaultPoolSize != 3 {
		t.Fatalf("nodes = %+v", c.Nodes)
	}
	for _, n := range c.Nodes {
		if n.Proxy == nil || n.Registry == nil || !n.Running() || n.PID() != 0 {
			t.Fatalf("%s: in-process node without proxy or registry, or with a pid: %+v", n.Name, n)
		}
		selectAnswer(ctx, t, n)
		resp, err := http.Get("http://" + n.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "shardwire_clients_active") {
			t.Fatalf("%s /metrics lacks shardwire_clients_active", n.Name)
		}
		if err := membersAlive(ctx, n.Admin, []string{"p0", "p1"}); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if err := n.Kill(); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("%s: Kill of an in-process node = %v, want ErrUnsupported", n.Name, err)
		}
	}

	info, data := readInfo(t, c)
	if info.User != "app" || info.Password != "app" || info.Database != "app" ||
		len(info.Proxies) != 2 || info.Proxies[0].Addr != c.Nodes[0].Addr ||
		info.Proxies[1].Gossip != c.Nodes[1].Gossip || info.Proxies[1].PID != 0 ||
		len(info.Groups) != 1 || !strings.HasPrefix(info.Groups[0].Writer, "postgres://app:app@127.0.0.1:") {
		t.Fatalf("cluster.json = %s", data)
	}
}

func TestStartRejectsBadOverlay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := Start(ctx, Options{Overlay: []byte("nope: 1\n"), Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want one naming the unknown key", err)
	}
}

func TestStartExecNeedsDir(t *testing.T) {
	_, err := Start(context.Background(), Options{Exec: "/bin/true"})
	if err == nil || !strings.Contains(err.Error(), "Dir is required") {
		t.Fatalf("err = %v, want one asking for Dir", err)
	}
}

// devDir returns a directory for a dev cluster that the Postgres servers can reach: when
// tests run as root, Postgres runs as another OS user, and t.TempDir's parent is private.
func devDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// memberState checks that the node at addr lists name in state.
func memberState(ctx context.Context, addr, name, state string) error {
	body, err := adminGet(ctx, addr, "/api/v1/cluster")
	if err != nil {
		return err
	}
	var st admin.ClusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return err
	}
	for _, m := range st.Members {
		if m.Name == name && m.State == state {
			return nil
		}
	}
	return fmt.Errorf("%s does not list %s %s (members: %s)", st.Node, name, state, describeMembers(st.Members))
}

// pidGone reports whether no process has the id any more.
func pidGone(pid int) bool { return gone(pid) }

func TestChildProcessNodes(t *testing.T) {
	bin := shardwireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := devDir(t)
	c, err := Start(ctx, Options{Dir: dir, Exec: bin, Groups: 1, Proxies: 3, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()
	names := []string{"p0", "p1", "p2"}

	var pids []int
	for i, n := range c.Nodes {
		if n.Proxy != nil || n.Registry != nil || !n.Running() || n.PID() <= 0 || n.PID() == os.Getpid() {
			t.Fatalf("%s: want a running child process, got pid %d proxy %v", n.Name, n.PID(), n.Proxy)
		}
		pids = append(pids, n.PID())
		selectAnswer(ctx, t, n)
		if err := membersAlive(ctx, n.Admin, names); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "proxies", names[i]+".yaml")); err != nil {
			t.Fatal(err)
		}
	}
	info, data := readInfo(t, c)
	if len(info.Proxies) != 3 {
		t.Fatalf("cluster.json = %s", data)
	}
	for i, p := range info.Proxies {
		n := c.Nodes[i]
		if p.Name != n.Name || p.Addr != n.Addr || p.Admin != n.Admin || p.Gossip != n.Gossip || p.PID != pids[i] {
			t.Fatalf("cluster.json proxy %d = %+v, want node %s pid %d", i, p, n.Name, pids[i])
		}
	}

	// Kill one node: its port refuses connections, the others see it dead; Restart brings it
	// back on the same ports and into the cluster.
	victim := c.Nodes[1]
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	if victim.Running() || victim.PID() != 0 || !pidGone(pids[1]) {
		t.Fatalf("%s still runs after Kill", victim.Name)
	}
	if conn, err := net.Dial("tcp", victim.Addr); err == nil {
		conn.Close()
		t.Fatalf("%s: %s still accepts connections after Kill", victim.Name, victim.Addr)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("%s: dial after Kill: %v, want connection refused", victim.Name, err)
	}
	killed := time.Now()
	for _, n := range []*Node{c.Nodes[0], c.Nodes[2]} {
		waitFor(ctx, t, func(ctx context.Context) error {
			if err := memberState(ctx, n.Admin, victim.Name, "dead"); err != nil {
				return err
			}
			return nil
		})
	}
	// The dev cluster's dead_timeout is 2 s; the acceptance bound is 5 s.
	if took := time.Since(killed); took > 5*time.Second {
		t.Fatalf("the others declared %s dead %s after SIGKILL, want within 5 s", victim.Name, took)
	} else {
		t.Logf("%s declared dead by both others %s after SIGKILL", victim.Name, took.Round(time.Millisecond))
	}
	// A map change while the node is down: after its restart it must serve the new epoch.
	spare := pgtest.New(t, pgtest.Options{Groups: 1})
	client, err := admin.NewClient(c.Nodes[0].Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	view, err := client.AddGroup(ctx, admin.GroupAddRequest{Name: "spare", Region: "eu-west-1", Writer: spare.Groups[0].Writer.Addr()})
	if err != nil {
		t.Fatalf("group add while %s is down: %v", victim.Name, err)
	}
	if err := victim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	vc, err := admin.NewClient(victim.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, func(ctx context.Context) error {
		m, err := vc.ShardMap(ctx)
		if err != nil {
			return err
		}
		if m.Epoch != view.Epoch {
			return fmt.Errorf("%s serves epoch %d after its restart, want %d", victim.Name, m.Epoch, view.Epoch)
		}
		return nil
	})
	restarted := victim.PID()
	if restarted <= 0 || restarted == pids[1] {
		t.Fatalf("pid after Restart = %d (before: %d)", restarted, pids[1])
	}
	pids = append(pids, restarted)
	selectAnswer(ctx, t, victim)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{"p0", "p1"} {
				b, _ := os.ReadFile(filepath.Join(dir, "proxies", n+".log"))
				t.Logf("%s.log:\n%s", n, b)
			}
		}
	})
	for _, n := range c.Nodes {
		waitFor(ctx, t, func(ctx context.Context) error { return membersAlive(ctx, n.Admin, names) })
	}
	if err := victim.Restart(ctx); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("Restart of a running node = %v", err)
	}
	select {
	case err := <-c.Errors():
		t.Fatalf("Kill and Restart reported an error: %v", err)
	default:
	}

	// A node that dies on its own is reported, with the end of its log.
	other := c.Nodes[2]
	if err := syscall.Kill(other.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.Errors():
		msg := err.Error()
		if !strings.Contains(msg, "proxy p2") || !strings.Contains(msg, "signal: killed") ||
			!strings.Contains(msg, "p2.log") || !strings.Contains(msg, "devcluster: starting p2") {
			t.Fatalf("error for a killed node = %q", msg)
		}
	case <-ctx.Done():
		t.Fatal("no error reported for a node that died")
	}

	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, pid := range pids {
		if !pidGone(pid) {
			t.Errorf("pid %d still exists after Stop", pid)
		}
	}
	logs, err := os.ReadFile(filepath.Join(dir, "proxies", "p1.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(logs), "--- devcluster: starting p1"); got != 2 {
		t.Errorf("p1.log has %d start markers, want 2 (start and restart)", got)
	}
}

// waitFor retries check until it succeeds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, check func(context.Context) error) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := retry(wctx, nil, check); err != nil {
		t.Fatal(err)
	}
}

func TestStartWithRedisAndInvoiced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Groups: 2, Proxies: 1, Redis: true, Invoiced: true, DemoCustomers: 20, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	info, data := readInfo(t, c)
	if c.Redis == nil || info.Redis != c.Redis.Addr() || info.Invoiced != "http://"+c.Invoiced.Addr() {
		t.Fatalf("cluster.json = %s, want redis and invoiced", data)
	}
	// A demo customer's summary answers through invoiced → proxy → its shard group.
	resp, err := http.Get(info.Invoiced + "/v1/customers/7/summary")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"customer_id":7`) {
		t.Fatalf("GET /v1/customers/7/summary = %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("RateLimit-Limit") == "" {
		t.Fatalf("no RateLimit-Limit header on an invoiced answer: %v", resp.Header)
	}
}
