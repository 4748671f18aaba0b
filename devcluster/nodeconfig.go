package devcluster

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// loopback is the host every dev cluster listener binds.
const loopback = "127.0.0.1"

// regions are handed out round-robin to groups and proxy nodes.
var regions = [...]string{"us-east-1", "us-west-2", "eu-west-1"}

// Gossip settings of every dev cluster node: memberlist's loopback profile, and a dead
// timeout short enough for tests that kill a node.
const (
	gossipProfile     = "local"
	gossipDeadTimeout = 2 * time.Second
)

// nodeAddrs are the three addresses of one proxy node.
type nodeAddrs struct {
	listen, admin, gossip string
}

// newSecretKey returns a random 32-byte gossip key, base64-encoded as config.Cluster wants it.
func newSecretKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// baseConfig is the generated configuration of proxy node i of all, before the overlay: pg
// is where its groups run, secret the cluster's gossip key. Every other node's gossip address
// is a seed.
func baseConfig(pg *pgtest.Cluster, i int, all []nodeAddrs, secret string) config.Config {
	cfg := config.Default()
	cfg.NodeName = nodeName(i)
	cfg.Region = regions[i%len(regions)]
	cfg.Listen = all[i].listen
	cfg.AdminListen = all[i].admin
	cfg.Users = []config.User{{Name: User, Password: Password}, {Name: AdminUser, Password: AdminPassword}}
	cfg.AdminUsers = []string{AdminUser}
	for gi, g := range pg.Groups {
		grp := config.Group{Name: g.Name, Region: regions[gi%len(regions)], Writer: g.Writer.Addr()}
		for _, r := range g.Replicas {
			grp.Replicas = append(grp.Replicas, r.Addr())
		}
		cfg.Groups = append(cfg.Groups, grp)
	}
	// The shard map catalog lives in its own schema on the first group's writer, with the
	// decision log of transactions spanning groups: the database commits those with
	// two-phase commit (every server has max_prepared_transactions), so that bulk loads such
	// as pgbench -i run through the proxy.
	cfg.Catalog.DSN = pg.Groups[0].Writer.AppDSN()
	cfg.Databases = []config.Database{{Name: Database, TwoPhaseCommit: true}}
	cfg.Cluster.Bind = all[i].gossip
	cfg.Cluster.Profile = gossipProfile
	cfg.Cluster.DeadTimeout = config.Duration(gossipDeadTimeout)
	cfg.Cluster.SecretKey = secret
	cfg.Cluster.Seeds = []string{}
	for j, a := range all {
		if j != i {
			cfg.Cluster.Seeds = append(cfg.Cluster.Seeds, a.gossip)
		}
	}
	return cfg
}

// nodeConfig returns node i's configuration: the generated one with the overlay merged over
// it. The overlay may shape anything but the node's own addresses.
func nodeConfig(pg *pgtest.Cluster, i int, all []nodeAddrs, secret string, overlay []byte) (config.Config, error) {
	cfg, err := applyOverlay(baseConfig(pg, i, all, secret), overlay)
	if err != nil {
		return config.Config{}, err
	}
	a := all[i]
	if cfg.Listen != a.listen || cfg.AdminListen != a.admin || cfg.Cluster.Bind != a.gossip {
		return config.Config{}, fmt.Errorf("the overlay must not set listen, admin_listen or cluster.bind (use --port and --gossip-port)")
	}
	return cfg, nil
}

// checkOverlay checks overlay against a placeholder of the generated config, so that a bad
// overlay fails before anything starts.
func checkOverlay(overlay []byte) error {
	pg := &pgtest.Cluster{Groups: []*pgtest.Group{{Name: "g0", Writer: &pgtest.Server{Host: loopback, Port: 5432}}}}
	all := []nodeAddrs{{listen: "127.0.0.1:6432", admin: "127.0.0.1:9930", gossip: "127.0.0.1:7946"}}
	_, err := nodeConfig(pg, 0, all, "", overlay)
	return err
}

// marshalConfig encodes cfg as a YAML file `shardwire serve --config` reads back to cfg.
func marshalConfig(cfg config.Config) ([]byte, error) {
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return data, nil
}

// writeConfigFile writes cfg to path, readable by its owner only: it holds passwords and the
// gossip key.
func writeConfigFile(path string, cfg config.Config) error {
	data, err := marshalConfig(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// nodeName is the name of proxy node i.
func nodeName(i int) string { return fmt.Sprintf("p%d", i) }

// hostPort is port on loopback.
func hostPort(port int) string { return net.JoinHostPort(loopback, strconv.Itoa(port)) }

// devCacheTables returns the invoice platform's tables the local cluster caches, with their
// TTLs.
func devCacheTables() map[string]time.Duration {
	return map[string]time.Duration{
		"customers":     10 * time.Minute,
		"invoices":      5 * time.Minute,
		"invoice_lines": 5 * time.Minute,
		"payments":      5 * time.Minute,
	}
}

// withDevCache turns the result cache on over redis for the invoice tables, unless the
// overlay configured the cache itself. The change feed needs the database named.
func withDevCache(cfg *config.Config, redis string) {
	if cfg.Cache.Enabled() {
		return
	}
	cfg.Cache.Redis.Addrs = []string{redis}
	tables := devCacheTables()
	cfg.Cache.Tables = make(map[string]config.Duration, len(tables))
	for t, ttl := range tables {
		cfg.Cache.Tables[t] = config.Duration(ttl)
	}
	if len(cfg.Databases) == 0 {
		cfg.Databases = []config.Database{{Name: Database}}
	}
	// The local servers trust their superuser on loopback: it may replicate and publish.
	cfg.Cache.ChangeFeedUser = pgtest.SuperUser
}
