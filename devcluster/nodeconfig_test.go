package devcluster

import (
	"encoding/base64"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

func testPG() *pgtest.Cluster {
	return &pgtest.Cluster{Groups: []*pgtest.Group{
		{Name: "g0", Writer: &pgtest.Server{Host: loopback, Port: 5432},
			Replicas: []*pgtest.Server{{Host: loopback, Port: 5433}}},
		{Name: "g1", Writer: &pgtest.Server{Host: loopback, Port: 5434}},
	}}
}

func testAddrs(n int) []nodeAddrs {
	all := make([]nodeAddrs, n)
	for i := range all {
		all[i] = nodeAddrs{listen: hostPort(6432 + i), admin: hostPort(9930 + i), gossip: hostPort(7946 + i)}
	}
	return all
}

func TestBaseConfigGossip(t *testing.T) {
	secret, err := newSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	all := testAddrs(3)
	for i := range all {
		cfg, err := nodeConfig(testPG(), i, all, secret, nil)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		var others []string
		for j, a := range all {
			if j != i {
				others = append(others, a.gossip)
			}
		}
		cc := cfg.Cluster
		if cfg.NodeName != nodeName(i) || cc.Bind != all[i].gossip || !slices.Equal(cc.Seeds, others) ||
			cc.Profile != "local" || cc.DeadTimeout.D() != 2*time.Second || cc.SecretKey != secret {
			t.Errorf("node %d: name %q, cluster %+v; want bind %s, seeds %v", i, cfg.NodeName, cc, all[i].gossip, others)
		}
		key, err := cc.Key()
		if err != nil || len(key) != 32 {
			t.Errorf("node %d: key %d bytes, %v; want 32", i, len(key), err)
		}
	}
	if len(testPG().Groups) != 2 {
		t.Fatal("test cluster changed")
	}
	other, err := newSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	if other == secret {
		t.Error("two dev clusters got the same gossip key")
	}
	if b, _ := base64.StdEncoding.DecodeString(secret); len(b) != 32 {
		t.Errorf("secret %q is not 32 bytes of base64", secret)
	}
}

func TestBaseConfigOneNodeStillGossips(t *testing.T) {
	all := testAddrs(1)
	cfg, err := nodeConfig(testPG(), 0, all, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.Bind != all[0].gossip || len(cfg.Cluster.Seeds) != 0 {
		t.Errorf("cluster = %+v, want bind %s and no seeds", cfg.Cluster, all[0].gossip)
	}
}

func TestNodeConfigOverlayMustNotMoveNode(t *testing.T) {
	for _, overlay := range []string{
		"listen: 127.0.0.1:1\n",
		"admin_listen: 127.0.0.1:1\n",
		"cluster:\n  bind: 127.0.0.1:1\n",
		"cluster:\n  bind: \"\"\n",
	} {
		_, err := nodeConfig(testPG(), 0, testAddrs(2), "", []byte(overlay))
		if err == nil || !strings.Contains(err.Error(), "must not set") {
			t.Errorf("overlay %q: err = %v, want a refusal", overlay, err)
		}
	}
	cfg, err := nodeConfig(testPG(), 0, testAddrs(2), "", []byte("cluster:\n  dead_timeout: 5s\n"))
	if err != nil || cfg.Cluster.DeadTimeout.D() != 5*time.Second || cfg.Cluster.Profile != "local" {
		t.Errorf("cluster overlay: %+v, %v", cfg.Cluster, err)
	}
}

// The file a child node reads must decode to exactly the configuration devcluster holds.
func TestConfigFileRoundTrip(t *testing.T) {
	secret, err := newSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		overlay string
	}{
		{name: "generated"},
		{name: "overlay", overlay: `
pool: {mode: session, default_pool_size: 7, query_wait_timeout: 1500ms}
users: [{name: app, password: app}, {name: bob, password: secret, pool_mode: statement}]
databases: [{name: app, pool_size: 3}]
sharding: {shards: {"0-7": g0, "8-15": g1}, tables: [{name: pgbench_accounts, column: aid}]}
catalog: {lease_ttl: 4s}
cluster: {broadcast_timeout: 3s}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := nodeConfig(testPG(), 1, testAddrs(3), secret, []byte(tc.overlay))
			if err != nil {
				t.Fatal(err)
			}
			data, err := marshalConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			back, err := config.Parse(data)
			if err != nil {
				t.Fatalf("parse the written file: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Fatalf("round trip changed the config:\nwant %+v\ngot  %+v\nfile:\n%s", cfg, back, data)
			}
		})
	}
}
