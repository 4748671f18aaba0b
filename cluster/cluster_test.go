package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const testDeadTimeout = time.Second

// testNode is a Cluster plus what tests inspect.
type testNode struct {
	*Cluster
	logs *observer.ObservedLogs
	reg  *prometheus.Registry

	mu   sync.Mutex
	meta NodeMeta
}

func (n *testNode) setMeta(m NodeMeta) {
	n.mu.Lock()
	n.meta = m
	n.mu.Unlock()
}

// newNode starts a node on loopback; setup runs before Join.
func newNode(t *testing.T, name string, key []byte, seeds []string, setup func(*testNode)) (*testNode, error) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	n := &testNode{logs: logs, reg: prometheus.NewRegistry(), meta: NodeMeta{Name: name, Region: "local"}}
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0
	cfg.Profile = ProfileLocal
	cfg.DeadTimeout = testDeadTimeout
	cfg.SecretKey = key
	cfg.Seeds = seeds
	cfg.Logger = zap.New(core)
	cfg.Registerer = n.reg
	cfg.Meta = func() NodeMeta {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.meta
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	n.Cluster = c
	t.Cleanup(func() { _ = c.Shutdown() })
	if setup != nil {
		setup(n)
	}
	if len(seeds) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Join(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

func mustNode(t *testing.T, name string, seeds []string, setup func(*testNode)) *testNode {
	t.Helper()
	n, err := newNode(t, name, nil, seeds, setup)
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stateOf(c *Cluster, name string) (MemberState, bool) {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State, true
		}
	}
	return 0, false
}

func allSee(nodes []*testNode, name string, want MemberState) func() bool {
	return func() bool {
		for _, n := range nodes {
			if s, ok := stateOf(n.Cluster, name); !ok || s != want {
				return false
			}
		}
		return true
	}
}

// threeNodes starts a, b and c, b and c seeded with a, and waits until every
// node lists the other two alive.
func threeNodes(t *testing.T, setup func(*testNode)) []*testNode {
	t.Helper()
	a := mustNode(t, "a", nil, setup)
	seeds := []string{a.LocalNode().Addr}
	b := mustNode(t, "b", seeds, setup)
	c := mustNode(t, "c", seeds, setup)
	nodes := []*testNode{a, b, c}
	waitFor(t, 2*time.Second, "three nodes to converge", func() bool {
		for _, name := range []string{"a", "b", "c"} {
			if !allSee(nodes, name, StateAlive)() {
				return false
			}
		}
		return true
	})
	return nodes
}

func TestConvergeAndMetrics(t *testing.T) {
	nodes := threeNodes(t, nil)
	for _, n := range nodes {
		ms := n.Members()
		if len(ms) != 3 {
			t.Fatalf("%s: %d members, want 3: %+v", n.cfg.NodeName, len(ms), ms)
		}
		for _, m := range ms {
			if m.Meta.Name != m.Name || m.Meta.Region != "local" {
				t.Errorf("%s sees %s with meta %+v", n.cfg.NodeName, m.Name, m.Meta)
			}
		}
		if got := testutil.ToFloat64(n.metrics.members.WithLabelValues("alive")); got != 3 {
			t.Errorf("%s: alive gauge = %v, want 3", n.cfg.NodeName, got)
		}
	}
	if got := nodes[0].LocalNode(); got.Name != "a" || got.State != StateAlive || got.Addr == "" {
		t.Errorf("LocalNode = %+v", got)
	}
}

func TestDeadAndRejoin(t *testing.T) {
	nodes := threeNodes(t, nil)
	var mu sync.Mutex
	var events []string
	nodes[0].OnChange(func(m Member, k EventKind) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, m.Name+":"+k.String())
	})
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	survivors := nodes[:2]
	waitFor(t, testDeadTimeout+2*time.Second, "c declared dead", allSee(survivors, "c", StateDead))
	t.Logf("c declared dead after %s", time.Since(start))
	if got := testutil.ToFloat64(nodes[0].metrics.members.WithLabelValues("dead")); got != 1 {
		t.Errorf("dead gauge = %v, want 1", got)
	}

	// Same name, new port.
	c2 := mustNode(t, "c", []string{nodes[0].LocalNode().Addr}, nil)
	waitFor(t, 3*time.Second, "c alive again", allSee(append(survivors, c2), "c", StateAlive))
	waitFor(t, 2*time.Second, "new c to see a and b", allSee([]*testNode{c2}, "a", StateAlive))
	waitFor(t, time.Second, "OnChange dead and rejoin events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		s := strings.Join(events, ",")
		return strings.Contains(s, "c:dead") && strings.Index(s, "c:join") > strings.Index(s, "c:dead")
	})
}

func TestGracefulLeave(t *testing.T) {
	nodes := threeNodes(t, nil)
	if err := nodes[1].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	_ = nodes[1].Shutdown()
	waitFor(t, 2*time.Second, "b marked left", allSee([]*testNode{nodes[0], nodes[2]}, "b", StateLeft))
}

func TestBroadcastAndWait(t *testing.T) {
	type got struct{ node, from, body string }
	var mu sync.Mutex
	var seen []got
	nodes := threeNodes(t, func(n *testNode) {
		name := n.cfg.NodeName
		for _, kind := range []string{"freeze", "note"} {
			err := n.Handle(kind, func(from string, body []byte) error {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, got{name, from, string(body)})
				if string(body) == "fail" && name == "b" {
					return errors.New("b refuses")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	count := func(body string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, g := range seen {
			if g.body == body && g.from == "a" {
				n++
			}
		}
		return n
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := nodes[0].BroadcastAndWait(ctx, "freeze", []byte("shard-3"))
	if err != nil {
		t.Fatalf("BroadcastAndWait: %v", err)
	}
	if strings.Join(res.Acked, ",") != "a,b,c" || len(res.Missing) != 0 {
		t.Fatalf("result = %+v", res)
	}
	// Every handler, the local one included, ran before the call returned.
	if n := count("shard-3"); n != 3 {
		t.Fatalf("handlers ran %d times, want 3", n)
	}
	if testutil.CollectAndCount(nodes[0].reg, "shardwire_cluster_broadcast_seconds") != 1 {
		t.Error("broadcast histogram not registered")
	}
	if testutil.ToFloat64(nodes[0].metrics.gossipMsgs.WithLabelValues("out")) == 0 ||
		testutil.ToFloat64(nodes[1].metrics.gossipMsgs.WithLabelValues("in")) == 0 ||
		testutil.ToFloat64(nodes[1].metrics.gossipBytes.WithLabelValues("in")) == 0 {
		t.Error("gossip traffic counters did not move")
	}

	// A failing remote handler is reported.
	_, err = nodes[0].BroadcastAndWait(ctx, "freeze", []byte("fail"))
	var he *HandlerError
	if !errors.As(err, &he) || he.Errors["b"] == "" || len(he.Errors) != 1 {
		t.Fatalf("want HandlerError from b, got %v", err)
	}

	// Best effort broadcast reaches the others.
	if err := nodes[0].Broadcast(ctx, "note", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "best-effort broadcast delivered", func() bool { return count("hello") == 3 })

	// c stops without leaving; before it is declared dead, a short wait
	// names it as missing.
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	res, err = nodes[0].BroadcastAndWait(short, "freeze", []byte("shard-4"))
	var mae *MissingAcksError
	if !errors.As(err, &mae) || strings.Join(mae.Missing, ",") != "c" {
		t.Fatalf("want MissingAcksError naming c, got %v (%+v)", err, res)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error should wrap the context error: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("returned after %s, ctx was 300ms", el)
	}
	if strings.Join(res.Acked, ",") != "a,b" {
		t.Errorf("acked = %v, want a,b", res.Acked)
	}
}

func TestHandleRules(t *testing.T) {
	a := mustNode(t, "a", nil, nil)
	noop := func(string, []byte) error { return nil }
	for _, k := range []string{"epoch", "leave", ""} {
		if err := a.Handle(k, noop); err == nil {
			t.Errorf("kind %q accepted", k)
		}
	}
	if err := a.Handle("x", noop); err != nil {
		t.Fatal(err)
	}
	if err := a.Handle("x", noop); err == nil {
		t.Error("duplicate kind accepted")
	}
	if err := a.Broadcast(context.Background(), "x", make([]byte, 4096)); err == nil {
		t.Error("oversized best-effort broadcast accepted")
	}
	b := mustNode(t, "b", []string{a.LocalNode().Addr}, nil)
	if err := b.Handle("y", noop); err == nil {
		t.Error("Handle after Join accepted")
	}
	// Alone-ish: a kind nobody handles is reported by every member.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	waitFor(t, 2*time.Second, "a sees b", allSee([]*testNode{a}, "b", StateAlive))
	_, err := a.BroadcastAndWait(ctx, "nobody", nil)
	var he *HandlerError
	if !errors.As(err, &he) || he.Errors["a"] == "" || he.Errors["b"] == "" {
		t.Fatalf("want HandlerError from a and b, got %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	a, err := newNode(t, "a", key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	seeds := []string{a.LocalNode().Addr}
	if _, err := newNode(t, "b", key, seeds, nil); err != nil {
		t.Fatalf("right key refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		key   []byte
		cause string // what memberlist reports underneath our hint
	}{
		{"wrongkey", []byte("fedcba9876543210"), "decrypt"},
		{"nokey", nil, "encrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newNode(t, tc.name, tc.key, seeds, nil)
			if err == nil {
				t.Fatal("joined with a wrong key")
			}
			if !strings.Contains(err.Error(), "encryption") || !strings.Contains(err.Error(), tc.cause) {
				t.Errorf("join error does not explain the encryption mismatch (%q): %v", tc.cause, err)
			}
			t.Logf("join error: %v", err)
			if _, ok := stateOf(a.Cluster, tc.name); ok {
				t.Errorf("a admitted %s", tc.name)
			}
		})
	}
	waitFor(t, 2*time.Second, "a to log the decryption failure", func() bool {
		for _, e := range a.logs.All() {
			if strings.Contains(e.Message, "decrypt") || strings.Contains(e.Message, "encrypt") {
				return true
			}
		}
		return false
	})
}

func TestMetaAndEpoch(t *testing.T) {
	type seenEpoch struct {
		epoch int64
		from  string
	}
	var mu sync.Mutex
	seen := map[string][]seenEpoch{}
	nodes := threeNodes(t, func(n *testNode) {
		name := n.cfg.NodeName
		n.OnEpoch(func(e int64, from string) {
			mu.Lock()
			defer mu.Unlock()
			seen[name] = append(seen[name], seenEpoch{e, from})
		})
	})
	saw := func(node string, epoch int64, from string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range seen[node] {
				if s.epoch == epoch && s.from == from {
					return true
				}
			}
			return false
		}
	}

	a := nodes[0]
	a.setMeta(NodeMeta{Name: "a", Region: "local", Epoch: 7, LeaseOK: true, Ready: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := a.UpdateMeta(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		waitFor(t, 2*time.Second, n.cfg.NodeName+" to see a's epoch 7", func() bool {
			for _, m := range n.Members() {
				if m.Name == "a" && m.Meta.Epoch == 7 && m.Meta.LeaseOK && m.Meta.Ready {
					return true
				}
			}
			return false
		})
		waitFor(t, time.Second, "OnEpoch(7, a) on "+n.cfg.NodeName, saw(n.cfg.NodeName, 7, "a"))
	}
	mu.Lock()
	if len(seen["a"]) != 0 {
		t.Errorf("a fired OnEpoch for its own epoch: %v", seen["a"])
	}
	mu.Unlock()

	// Announced epochs reach the others; stale ones do not fire again.
	if err := nodes[1].AnnounceEpoch(ctx, 9); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "OnEpoch(9, b) on a", saw("a", 9, "b"))
	waitFor(t, 2*time.Second, "OnEpoch(9, b) on c", saw("c", 9, "b"))
	if err := nodes[2].AnnounceEpoch(ctx, 8); err != nil {
		t.Fatal(err)
	}

	// A late joiner learns the highest epoch from push/pull state or meta.
	d := mustNode(t, "d", []string{a.LocalNode().Addr}, func(n *testNode) {
		n.OnEpoch(func(e int64, from string) {
			mu.Lock()
			defer mu.Unlock()
			seen["d"] = append(seen["d"], seenEpoch{e, from})
		})
	})
	_ = d
	waitFor(t, 2*time.Second, "OnEpoch(7, a) on d", saw("d", 7, "a"))
	mu.Lock()
	for _, n := range []string{"a", "b", "c"} {
		for _, s := range seen[n] {
			if s.epoch == 8 {
				t.Errorf("%s fired OnEpoch for stale epoch 8", n)
			}
		}
	}
	mu.Unlock()

	// Oversized meta is refused and the published meta is unchanged.
	a.setMeta(NodeMeta{Name: "a", Region: strings.Repeat("x", 600), Epoch: 10})
	if err := a.UpdateMeta(ctx); err == nil {
		t.Fatal("oversized meta accepted")
	}
	if got := a.LocalNode().Meta.Epoch; got != 7 {
		t.Errorf("local meta epoch = %d after refused update, want 7", got)
	}
}

func TestNodeMetaEncode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		meta    NodeMeta
		wantErr bool
	}{
		{"empty", NodeMeta{}, false},
		{"full", NodeMeta{Name: "n1", Region: "eu", Version: "1.2.3", PgAddr: "10.0.0.1:6432", AdminAddr: "10.0.0.1:8080", Epoch: 42, LeaseOK: true, Ready: true}, false},
		{"oversized", NodeMeta{Version: strings.Repeat("v", 520)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.meta.Encode()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Encode err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got, err := DecodeNodeMeta(b)
			if err != nil || got != tc.meta {
				t.Fatalf("round trip = %+v, %v", got, err)
			}
		})
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []envelope{
		{typ: envBroadcast, from: "a", addr: "127.0.0.1:1", Message: Message{Kind: "k", Body: []byte("body")}},
		{typ: envRequest, id: 1 << 60, from: "node-1", addr: "[::1]:7946", Message: Message{Kind: "freeze"}},
		{typ: envAck, id: 7, from: "b", err: "boom", Message: Message{Body: []byte{}}},
	} {
		got, err := decodeEnvelope(e.encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.typ != e.typ || got.id != e.id || got.from != e.from || got.addr != e.addr || got.err != e.err || got.Kind != e.Kind || string(got.Body) != string(e.Body) {
			t.Errorf("round trip %+v -> %+v", e, got)
		}
	}
	good := envelope{typ: envRequest, id: 3, from: "a", Message: Message{Kind: "k", Body: []byte("xyz")}}.encode()
	for i := 0; i < len(good); i++ {
		if _, err := decodeEnvelope(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes decoded", i)
		}
	}
	if _, err := decodeEnvelope(append([]byte{9}, good[1:]...)); err == nil {
		t.Error("unknown type decoded")
	}
}

func TestResolveSeeds(t *testing.T) {
	seeds, err := resolveSeeds(context.Background(), "localhost", 7946)
	if err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	found := false
	for _, s := range seeds {
		if s == "127.0.0.1:7946" || s == "[::1]:7946" {
			found = true
		}
	}
	if !found {
		t.Errorf("resolveSeeds(localhost) = %v", seeds)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"bad key", func(c *Config) { c.SecretKey = []byte("short") }},
		{"bad profile", func(c *Config) { c.Profile = "moon" }},
		{"bad port", func(c *Config) { c.BindPort = 70000 }},
		{"negative dead timeout", func(c *Config) { c.DeadTimeout = -time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.NodeName = "x"
			cfg.BindAddr = "127.0.0.1"
			cfg.BindPort = 0
			tc.mod(&cfg)
			c, err := New(cfg)
			if err == nil {
				_ = c.Shutdown()
				t.Fatal("invalid config accepted")
			}
		})
	}
}

func TestSend(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{} // receiving node -> "from:body"
	nodes := threeNodes(t, func(n *testNode) {
		name := n.cfg.NodeName
		if err := n.Handle("cancel", func(from string, body []byte) error {
			mu.Lock()
			defer mu.Unlock()
			got[name] = append(got[name], from+":"+string(body))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodes[0].Send(ctx, "c", "cancel", []byte("k1")); err != nil {
		t.Fatalf("Send to c: %v", err)
	}
	waitFor(t, 2*time.Second, "c to receive the message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["c"]) == 1
	})
	mu.Lock()
	if got["c"][0] != "a:k1" || len(got["a"]) != 0 || len(got["b"]) != 0 {
		t.Fatalf("deliveries = %v, want only c <- a:k1", got)
	}
	mu.Unlock()
	if err := nodes[0].Send(ctx, "nobody", "cancel", nil); err == nil || !strings.Contains(err.Error(), "not an alive member") {
		t.Fatalf("Send to an unknown node: err = %v, want 'not an alive member'", err)
	}
	_ = nodes[2].Shutdown()
	waitFor(t, 5*time.Second, "c to be declared dead", allSee(nodes[:2], "c", StateDead))
	if err := nodes[0].Send(ctx, "c", "cancel", nil); err == nil {
		t.Fatal("Send to a dead node succeeded")
	}
}
