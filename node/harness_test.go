package node_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/cluster"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/node"
)

// gossipKey is the test cluster's gossip encryption key.
var gossipKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

// testNode is one in-process node with its addresses.
type testNode struct {
	name   string
	node   *node.Node
	pg     string // client address
	admin  string // admin address
	logs   *observer.ObservedLogs
	stop   context.CancelFunc
	done   chan error
	config config.Config
}

// baseConfig is a node's configuration over the test's Postgres groups: shards split evenly,
// the catalog on g0's writer, gossip on a free loopback port.
func baseConfig(pg *pgtest.Cluster, name string) config.Config {
	cfg := config.Default()
	cfg.NodeName = name
	cfg.Region = "us-east-1"
	cfg.Users = []config.User{{Name: pgtest.User, Password: pgtest.Password}}
	for _, g := range pg.Groups {
		cg := config.Group{Name: g.Name, Region: "us-east-1", Writer: g.Writer.Addr()}
		for _, r := range g.Replicas {
			cg.Replicas = append(cg.Replicas, r.Addr())
		}
		cfg.Groups = append(cfg.Groups, cg)
	}
	cfg.Catalog.DSN = pg.Groups[0].Writer.AppDSN()
	cfg.Health.Interval = config.Duration(100 * time.Millisecond)
	cfg.Cluster.Bind = "127.0.0.1:0"
	cfg.Cluster.Profile = "local"
	cfg.Cluster.DeadTimeout = config.Duration(2 * time.Second)
	cfg.Cluster.SecretKey = gossipKey
	return cfg
}

// startNode starts one node serving on loopback; seeds are gossip addresses to join.
func startNode(t *testing.T, cfg config.Config, opts node.Options) *testNode {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config of %s: %v", cfg.NodeName, err)
	}
	core, logs := observer.New(zap.InfoLevel)
	opts.Log = zap.New(core).With(zap.String("node", cfg.NodeName))
	opts.Registry = prometheus.NewRegistry()
	opts.Version = "test"
	n, err := node.New(cfg, opts)
	if err != nil {
		t.Fatalf("node %s: %v", cfg.NodeName, err)
	}
	pgLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{name: cfg.NodeName, node: n, pg: pgLn.Addr().String(), admin: adminLn.Addr().String(),
		logs: logs, stop: cancel, done: make(chan error, 1), config: cfg}
	go func() { tn.done <- n.Serve(ctx, pgLn, adminLn) }()
	t.Cleanup(tn.shutdown)
	return tn
}

// shutdown stops the node and waits for Serve to return (idempotent).
func (tn *testNode) shutdown() {
	tn.stop()
	if err, ok := <-tn.done; ok {
		if err != nil {
			panic(fmt.Sprintf("node %s: %v", tn.name, err))
		}
		close(tn.done)
	}
}

// gossipAddr is the node's gossip address.
func (tn *testNode) gossipAddr() string { return tn.node.Cluster().LocalNode().Addr }

// dsn is a client URL for the node.
func (tn *testNode) dsn() string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", pgtest.User, pgtest.Password, tn.pg, pgtest.Database)
}

// alive reports the names this node lists alive.
func alive(tn *testNode) map[string]bool {
	out := map[string]bool{}
	for _, m := range tn.node.Cluster().Members() {
		if m.State == cluster.StateAlive {
			out[m.Name] = true
		}
	}
	return out
}

// epoch is the epoch of the map a node serves.
func epoch(tn *testNode) int64 { return tn.node.Proxy().MapStore().Current().Epoch }

// waitFor polls cond every 10 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// apiCall sends one admin API request and decodes the answer into out, or returns the
// *admin.APIError of a failed request.
func apiCall(ctx context.Context, addr, method, path string, body, out any) error {
	var rd bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&rd).Encode(body); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, &rd)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		apiErr := &admin.APIError{Status: resp.StatusCode}
		if err := json.NewDecoder(resp.Body).Decode(apiErr); err != nil {
			return fmt.Errorf("status %d: %w", resp.StatusCode, err)
		}
		return apiErr
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// counter reads a counter or gauge value from a node's registry ("" label value: no labels).
func counter(t *testing.T, tn *testNode, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := tn.node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// lbRelay is a round-robin TCP load balancer in front of several nodes: connection i goes to
// targets[i % len(targets)].
type lbRelay struct {
	mu      sync.Mutex
	next    int
	targets []string
}

func (lb *lbRelay) pick() string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	t := lb.targets[lb.next%len(lb.targets)]
	lb.next++
	return t
}
