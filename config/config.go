package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// PoolMode says when a backend connection returns to the pool.
type PoolMode string

// Pool modes, as PgBouncer names them.
const (
	// PoolModeSession keeps a backend connection for the client's whole session.
	PoolModeSession PoolMode = "session"
	// PoolModeTransaction returns the backend connection after each transaction.
	PoolModeTransaction PoolMode = "transaction"
	// PoolModeStatement returns it after each statement; multi-statement transactions are refused.
	PoolModeStatement PoolMode = "statement"
)

// Config is one proxy node's configuration. Durations are YAML durations ("30s", "5m").
type Config struct {
	// NodeName names this node in logs, metrics and (later) the cluster. Default "p0".
	NodeName string `yaml:"node_name"`
	// Region is the region this node runs in; reads prefer replicas of the same region.
	Region string `yaml:"region"`
	// Listen is the client-facing address. Default "127.0.0.1:6432".
	Listen string `yaml:"listen"`
	// AdminListen is the HTTP admin address (/metrics, /healthz, /readyz). Default "127.0.0.1:9930"; "" disables it.
	AdminListen string `yaml:"admin_listen"`
	// TLS enables TLS for clients when CertFile and KeyFile are set.
	TLS TLS `yaml:"tls"`
	// MaxClientConn caps concurrent client connections. Default 10000.
	MaxClientConn int `yaml:"max_client_conn"`
	// MaxMessageSize caps one client protocol message, in bytes. Default 64 MiB.
	MaxMessageSize int `yaml:"max_message_size"`
	// AuthType is the password method offered to clients: "scram-sha-256" (default) or "md5".
	// A user whose configured password is an md5 hash always gets md5; a SCRAM verifier, SCRAM.
	AuthType string `yaml:"auth_type"`
	// ClientLoginTimeout bounds startup and authentication. Default 15s.
	ClientLoginTimeout Duration `yaml:"client_login_timeout"`
	// Pool holds the default pool settings; databases and users may override some of them.
	Pool Pool `yaml:"pool"`
	// Users are the client users the proxy accepts.
	Users []User `yaml:"users"`
	// AdminUsers may connect to the virtual database "shardwire" (the SQL admin console), like
	// PgBouncer's admin_users. Each must be one of Users, whose password it logs in with.
	AdminUsers []string `yaml:"admin_users"`
	// Databases are the client-facing database names. Empty: any database the client names is
	// passed to the backend under the same name.
	Databases []Database `yaml:"databases"`
	// Groups are the backend shard groups. They bootstrap the shard map catalog; once the
	// catalog exists, its groups win.
	Groups []Group `yaml:"groups"`
	// Catalog is where the shard map lives.
	Catalog Catalog `yaml:"catalog"`
	// Sharding bootstraps the shard map: which tables are sharded and which group owns which
	// shard. Only read when the catalog is first created.
	Sharding Sharding `yaml:"sharding"`
	// Health configures the backend health checker and the read/write split.
	Health Health `yaml:"health"`
	// Cluster configures gossip with the other proxy nodes. Without Cluster.Bind the node
	// runs alone.
	Cluster Cluster `yaml:"cluster"`
	// Cache configures the read-through result cache. Off unless Tables names a table.
	Cache Cache `yaml:"cache"`
	// Moves configures this node's part in online shard moves: holding a frozen shard's
	// writes, the grace of open transactions, and retries after a write met a move's fence.
	Moves Moves `yaml:"moves"`
	// TwoPhase configures the recovery of two-phase commits, for databases with
	// two_phase_commit. Their decision log lives in the catalog.
	TwoPhase TwoPhase `yaml:"two_phase"`
}

// TwoPhase configures the recovery of transactions that span shard groups (two-phase commit):
// one node at a time resolves the prepared transactions a crashed or cut-off node left.
type TwoPhase struct {
	// RecoveryInterval is the time between two recovery passes. Default 1s.
	RecoveryInterval Duration `yaml:"recovery_interval"`
	// AbortAfter is how long a transaction may stay between its first PREPARE and its commit
	// decision; past it recovery decides to roll it back (its coordinator is dead or stuck).
	// Default 10s.
	AbortAfter Duration `yaml:"abort_after"`
	// Retention is how long the decision to roll back is kept after recovery carried it out,
	// so that a PREPARE still on its way from a dead node is rolled back too. Default 1m.
	Retention Duration `yaml:"retention"`
	// LockTimeout is the lock_timeout of every branch of a transaction spanning shard groups:
	// no group's deadlock detector sees a wait cycle that crosses groups, so such a wait ends
	// with SQLSTATE 55P03 after this long instead of never. Default 5s; 0 leaves lock_timeout
	// as the session has it.
	LockTimeout Duration `yaml:"lock_timeout"`
	// LogConnections caps the node's connections to the catalog for the decision log: every
	// two-phase commit records its transaction and its decision through them. Default 16.
	LogConnections int `yaml:"log_connections"`
}

func (t *TwoPhase) validate() error {
	if t.LogConnections <= 0 {
		return fmt.Errorf("log_connections must be positive, got %d", t.LogConnections)
	}
	if t.LockTimeout < 0 {
		return fmt.Errorf("lock_timeout must not be negative, got %v", t.LockTimeout.D())
	}
	if t.RecoveryInterval <= 0 || t.AbortAfter <= 0 || t.Retention <= 0 {
		return fmt.Errorf("recovery_interval, abort_after and retention must be positive, got %v, %v, %v",
			t.RecoveryInterval.D(), t.AbortAfter.D(), t.Retention.D())
	}
	return nil
}

// Moves configures how a node serves a shard while it is being moved to another group.
type Moves struct {
	// BufferTimeout bounds how long one statement is held: a write to a frozen shard waiting
	// for the map that ends the freeze, or a write that met a fence waiting for a newer map.
	// Past it the statement gets SQLSTATE 40001 and is not run. Default 10s.
	BufferTimeout Duration `yaml:"buffer_timeout"`
	// BufferLimit bounds how many statements the node holds at once; the next one gets 40001
	// and is not run. Default 10000.
	BufferLimit int `yaml:"buffer_limit"`
	// Grace is how long a transaction already open on a shard's owner may go on touching the
	// shard after this node loaded the map that froze it; afterwards its statements for the
	// shard get 40001. Default 1s.
	Grace Duration `yaml:"grace"`
}

func (m *Moves) validate() error {
	if m.BufferTimeout <= 0 {
		return fmt.Errorf("buffer_timeout must be positive, got %v", m.BufferTimeout.D())
	}
	if m.BufferLimit <= 0 {
		return fmt.Errorf("buffer_limit must be positive, got %d", m.BufferLimit)
	}
	if m.Grace < 0 {
		return fmt.Errorf("grace must not be negative, got %v", m.Grace.D())
	}
	return nil
}

// Cache configures the read-through cache: results of single SELECTs on the tables named in
// Tables, kept in this node's memory (L1) and in Redis (L2), keyed by generations that
// writes bump.
type Cache struct {
	// Tables are the cacheable tables (lower case, without schema) and each one's TTL: the
	// longest any result reading the table is kept. A statement reading any other table is
	// not cached. Empty: the cache is off.
	Tables map[string]Duration `yaml:"tables"`
	// Redis holds the generations and the L2 entries. Without it, a node that runs alone
	// caches in its memory only; a clustered node does not cache at all (its peers would not
	// see its writes).
	Redis Redis `yaml:"redis"`
	// L1Bytes is this node's in-memory budget for entries. Default 64 MiB.
	L1Bytes int64 `yaml:"l1_bytes"`
	// MaxResultBytes is the largest result kept. Default 1 MiB.
	MaxResultBytes int `yaml:"max_result_bytes"`
	// Staleness (Δ) bounds how long after a write was acknowledged another node may still
	// answer from before it: a node keeps generations in memory at most this long (pub/sub
	// usually tells it much sooner). Default 250ms.
	Staleness Duration `yaml:"staleness"`
	// ChangeFeed runs the logical-replication consumer that catches writes that bypass the
	// proxy (direct sessions, triggers, cascades): one node per writer, elected with an
	// advisory lock. Default true when Tables is set; the writers need wal_level=logical.
	ChangeFeed *bool `yaml:"change_feed"`
	// ChangeFeedUser and ChangeFeedPassword log the change feed in to the writers; default:
	// the health checker's. The role needs REPLICATION and must own the cacheable tables
	// (it adds them to its publication), or be a superuser.
	ChangeFeedUser     string `yaml:"change_feed_user"`
	ChangeFeedPassword string `yaml:"change_feed_password"`
	// Timeout bounds each Redis operation; a slower Redis counts as down. Default 200ms.
	Timeout Duration `yaml:"timeout"`
}

// Enabled reports whether any table is cacheable.
func (c Cache) Enabled() bool { return len(c.Tables) > 0 }

// ChangeFeedEnabled reports whether the change feed runs.
func (c Cache) ChangeFeedEnabled() bool { return c.Enabled() && (c.ChangeFeed == nil || *c.ChangeFeed) }

// Redis locates Redis: one address for a single server, several for Redis Cluster, or a
// Sentinel master name with the sentinels' addresses (go-redis UniversalClient rules).
type Redis struct {
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	Password   string   `yaml:"password"`
	DB         int      `yaml:"db"`
}

// Cluster configures the gossip layer (hashicorp/memberlist) that joins proxy nodes.
type Cluster struct {
	// Bind is the gossip address, host:port, used for both UDP and TCP. Empty: no gossip, the
	// node runs alone. Port 0 picks a free port.
	Bind string `yaml:"bind"`
	// Advertise is the address other nodes reach this one at. Default: derived from Bind.
	Advertise string `yaml:"advertise"`
	// Seeds are gossip addresses (host:port) of nodes to join at start.
	Seeds []string `yaml:"seeds"`
	// JoinDNS is a DNS name (a Kubernetes headless service) whose addresses are joined too,
	// each at JoinDNSPort (default: this node's gossip port).
	JoinDNS     string `yaml:"join_dns"`
	JoinDNSPort int    `yaml:"join_dns_port"`
	// SecretKey, base64, encrypts gossip (AES with a 16, 24 or 32-byte key). Every node must
	// have the same key; a node with another key is not admitted. Empty: no encryption.
	SecretKey string `yaml:"secret_key"`
	// Profile is memberlist's timing profile: "lan" (default), "wan" or "local".
	Profile string `yaml:"profile"`
	// DeadTimeout is about how long a silent node takes to be declared dead. Default: the
	// profile's timings.
	DeadTimeout Duration `yaml:"dead_timeout"`
	// BroadcastTimeout bounds a broadcast that waits for every live node's acknowledgement.
	// Default 5s.
	BroadcastTimeout Duration `yaml:"broadcast_timeout"`
}

// Key decodes SecretKey; nil when none is set.
func (c Cluster) Key() ([]byte, error) {
	if c.SecretKey == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(c.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("secret_key is not base64: %w", err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("secret_key decodes to %d bytes; want 16, 24 or 32 (e.g. openssl rand -base64 32)", n)
	}
	return key, nil
}

// Catalog locates the shard map catalog, a schema in a Postgres database.
type Catalog struct {
	// DSN is a libpq connection string or URL. Empty: the map is built from this file alone and
	// never changes (a single node without a catalog).
	DSN string `yaml:"dsn"`
	// Schema is the catalog's schema name. Default "shardwire".
	Schema string `yaml:"schema"`
	// PollInterval is how often a node checks the catalog for a new epoch. Default 1s. Each
	// successful check renews the node's lease on its map.
	PollInterval Duration `yaml:"poll_interval"`
	// LeaseTTL is how long a map stays usable after the node last read the catalog. Once it
	// expires the node refuses routed work with SQLSTATE 57P03 until it reads the catalog
	// again. Default 10s; it must exceed PollInterval.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// Sharding is the bootstrap sharding configuration.
type Sharding struct {
	// KeyColumn shards every table that has a column of this name by it. Default "customer_id".
	KeyColumn string `yaml:"key_column"`
	// Tables shard named tables by their own column (e.g. pgbench_accounts by aid).
	Tables []ShardedTable `yaml:"tables"`
	// DefaultGroup holds unsharded tables. Default: the first group.
	DefaultGroup string `yaml:"default_group"`
	// Shards assigns logical shards to groups, e.g. {"0-3": g0, "4-7": g1}. Default: the 16
	// shards split into contiguous, equal runs over the groups in order.
	Shards map[string]string `yaml:"shards"`
}

// ShardedTable shards one table by its own column.
type ShardedTable struct {
	Name   string `yaml:"name"`
	Column string `yaml:"column"`
}

// Health configures the backend health checker.
type Health struct {
	// Interval between checks of each endpoint (pg_is_in_recovery, LSNs). Default 250ms.
	Interval Duration `yaml:"interval"`
	// MaxReplicaLag is the most a replica may lag for reads to go to it. Default 1s.
	MaxReplicaLag Duration `yaml:"max_replica_lag"`
	// BanTime is how long an endpoint that failed a read is avoided at first; it doubles on
	// each further failure up to MaxBanTime. Default 1s.
	BanTime Duration `yaml:"ban_time"`
	// MaxBanTime caps the ban. Default 30s.
	MaxBanTime Duration `yaml:"max_ban_time"`
	// User, Password and Database log the health checker in; default: the first configured
	// user (its server credentials) and database "postgres".
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	Database string `yaml:"database"`
}

// TLS configures TLS towards clients.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// Pool holds pool settings with PgBouncer's names and meanings.
type Pool struct {
	// Mode is the default pool mode. Default "transaction".
	Mode PoolMode `yaml:"mode"`
	// DefaultPoolSize is the number of server connections per (endpoint, database, user). Default 25.
	DefaultPoolSize int `yaml:"default_pool_size"`
	// MinPoolSize server connections are kept open even when idle. Default 0.
	MinPoolSize int `yaml:"min_pool_size"`
	// ReservePoolSize extra connections may open when a client has waited ReservePoolTimeout. Default 0.
	ReservePoolSize int `yaml:"reserve_pool_size"`
	// ReservePoolTimeout is how long a client waits before the reserve may be used. Default 5s.
	ReservePoolTimeout Duration `yaml:"reserve_pool_timeout"`
	// QueryWaitTimeout is the longest a client waits for a server connection before it gets an error. Default 120s.
	QueryWaitTimeout Duration `yaml:"query_wait_timeout"`
	// ServerIdleTimeout closes server connections idle for longer (above MinPoolSize). Default 600s.
	ServerIdleTimeout Duration `yaml:"server_idle_timeout"`
	// ServerLifetime closes server connections older than this when they are released. Default 3600s.
	ServerLifetime Duration `yaml:"server_lifetime"`
	// ServerConnectTimeout bounds opening one server connection. Default 15s.
	ServerConnectTimeout Duration `yaml:"server_connect_timeout"`
	// ServerResetQuery runs when a session-mode client releases its server. Default "DISCARD ALL".
	ServerResetQuery string `yaml:"server_reset_query"`
	// MaxPreparedStatements bounds the prepared statements kept per server connection (LRU). Default 200.
	MaxPreparedStatements int `yaml:"max_prepared_statements"`
}

// User is one client user.
type User struct {
	// Name is the user name clients log in with.
	Name string `yaml:"name"`
	// Password is a plain password (SCRAM-SHA-256 and md5 clients both work), or a verifier
	// "SCRAM-SHA-256$..." (SCRAM only) or "md5..." hash (md5 only).
	Password string `yaml:"password"`
	// ServerUser and ServerPassword log in to the backends; default: the same as the client's.
	// ServerPassword is required when Password is a verifier or hash.
	ServerUser     string `yaml:"server_user"`
	ServerPassword string `yaml:"server_password"`
	// PoolMode overrides the pool mode for this user.
	PoolMode PoolMode `yaml:"pool_mode"`
}

// Database is one client-facing database.
type Database struct {
	// Name is the database name clients ask for.
	Name string `yaml:"name"`
	// BackendName is the database's name on the backends; default Name.
	BackendName string `yaml:"backend_name"`
	// PoolMode overrides the pool mode for this database.
	PoolMode PoolMode `yaml:"pool_mode"`
	// PoolSize overrides default_pool_size for this database.
	PoolSize int `yaml:"pool_size"`
	// TwoPhaseCommit lets a transaction of this database span shard groups: it runs on a
	// writer backend per group and commits with two-phase commit (PREPARE TRANSACTION on every
	// group, the decision recorded in the catalog, then COMMIT PREPARED). Needs catalog.dsn and
	// max_prepared_transactions on every writer. Off: a transaction stays in one group (0A000).
	TwoPhaseCommit bool `yaml:"two_phase_commit"`
}

// Group is one backend shard group: a writer and its streaming replicas.
type Group struct {
	Name     string   `yaml:"name"`
	Region   string   `yaml:"region"`
	Writer   string   `yaml:"writer"`
	Replicas []string `yaml:"replicas"`
	// ReplicaRegions gives replicas that run in another region than the group their own
	// (replica address → region); the others are in Region.
	ReplicaRegions map[string]string `yaml:"replica_regions"`
}

// Duration is a time.Duration that reads and writes YAML duration strings.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses "30s" style durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"30s\": %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns a configuration with every default filled in and no users or groups.
func Default() Config {
	return Config{
		NodeName:           "p0",
		Listen:             "127.0.0.1:6432",
		AdminListen:        "127.0.0.1:9930",
		MaxClientConn:      10000,
		MaxMessageSize:     64 << 20,
		AuthType:           "scram-sha-256",
		ClientLoginTimeout: Duration(15 * time.Second),
		Pool: Pool{
			Mode:                  PoolModeTransaction,
			DefaultPoolSize:       25,
			ReservePoolTimeout:    Duration(5 * time.Second),
			QueryWaitTimeout:      Duration(120 * time.Second),
			ServerIdleTimeout:     Duration(600 * time.Second),
			ServerLifetime:        Duration(3600 * time.Second),
			ServerConnectTimeout:  Duration(15 * time.Second),
			ServerResetQuery:      "DISCARD ALL",
			MaxPreparedStatements: 200,
		},
		Catalog: Catalog{Schema: "shardwire", PollInterval: Duration(time.Second), LeaseTTL: Duration(10 * time.Second)},
		Cluster: Cluster{Profile: "lan", BroadcastTimeout: Duration(5 * time.Second)},
		Cache: Cache{L1Bytes: 64 << 20, MaxResultBytes: 1 << 20, Staleness: Duration(250 * time.Millisecond),
			Timeout: Duration(200 * time.Millisecond)},
		Sharding: Sharding{KeyColumn: "customer_id"},
		Moves:    Moves{BufferTimeout: Duration(10 * time.Second), BufferLimit: 10000, Grace: Duration(time.Second)},
		TwoPhase: TwoPhase{RecoveryInterval: Duration(time.Second), AbortAfter: Duration(10 * time.Second), Retention: Duration(time.Minute),
			LockTimeout: Duration(5 * time.Second), LogConnections: 16},
		Health: Health{
			Interval:      Duration(250 * time.Millisecond),
			MaxReplicaLag: Duration(time.Second),
			BanTime:       Duration(time.Second),
			MaxBanTime:    Duration(30 * time.Second),
			Database:      "postgres",
		},
	}
}

// Load reads, decodes and validates a YAML file on top of Default.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML on top of Default, rejecting unknown keys, and validates the result.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("decode: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks the configuration and returns the first problem found.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			return fmt.Errorf("admin_listen %q: %w", c.AdminListen, err)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls: cert_file and key_file must be set together")
	}
	if c.MaxClientConn <= 0 {
		return fmt.Errorf("max_client_conn must be positive, got %d", c.MaxClientConn)
	}
	if c.MaxMessageSize < 1024 {
		return fmt.Errorf("max_message_size must be at least 1024 bytes, got %d", c.MaxMessageSize)
	}
	if c.AuthType != "scram-sha-256" && c.AuthType != "md5" {
		return fmt.Errorf("auth_type %q: want scram-sha-256 or md5", c.AuthType)
	}
	if err := c.Pool.validate(); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	if len(c.Users) == 0 {
		return errors.New("users: at least one user is required")
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		if u.Name == "" {
			return fmt.Errorf("users[%d]: name is required", i)
		}
		if seen[u.Name] {
			return fmt.Errorf("users[%d]: duplicate user %q", i, u.Name)
		}
		seen[u.Name] = true
		if u.Password == "" {
			return fmt.Errorf("users[%d] (%s): password is required", i, u.Name)
		}
		if isHashedPassword(u.Password) && u.ServerPassword == "" {
			return fmt.Errorf("users[%d] (%s): server_password is required when password is a SCRAM verifier or md5 hash", i, u.Name)
		}
		if err := u.PoolMode.validate(true); err != nil {
			return fmt.Errorf("users[%d] (%s): pool_mode: %w", i, u.Name, err)
		}
	}
	for i, name := range c.AdminUsers {
		if !seen[name] {
			return fmt.Errorf("admin_users[%d]: %q is not one of users (an admin user logs in with a configured user's password)", i, name)
		}
	}
	seen = map[string]bool{}
	for i, d := range c.Databases {
		if d.Name == "" {
			return fmt.Errorf("databases[%d]: name is required", i)
		}
		if seen[d.Name] {
			return fmt.Errorf("databases[%d]: duplicate database %q", i, d.Name)
		}
		seen[d.Name] = true
		if err := d.PoolMode.validate(true); err != nil {
			return fmt.Errorf("databases[%d] (%s): pool_mode: %w", i, d.Name, err)
		}
		if d.PoolSize < 0 {
			return fmt.Errorf("databases[%d] (%s): pool_size must not be negative", i, d.Name)
		}
	}
	if len(c.Groups) == 0 {
		return errors.New("groups: at least one group with a writer is required")
	}
	seen = map[string]bool{}
	for i, g := range c.Groups {
		if g.Name == "" {
			return fmt.Errorf("groups[%d]: name is required", i)
		}
		if seen[g.Name] {
			return fmt.Errorf("groups[%d]: duplicate group %q", i, g.Name)
		}
		seen[g.Name] = true
		if _, _, err := net.SplitHostPort(g.Writer); err != nil {
			return fmt.Errorf("groups[%d] (%s): writer %q must be host:port: %w", i, g.Name, g.Writer, err)
		}
		for j, r := range g.Replicas {
			if _, _, err := net.SplitHostPort(r); err != nil {
				return fmt.Errorf("groups[%d] (%s): replicas[%d] %q must be host:port: %w", i, g.Name, j, r, err)
			}
		}
		for addr := range g.ReplicaRegions {
			if !slices.Contains(g.Replicas, addr) {
				return fmt.Errorf("groups[%d] (%s): replica_regions names %q, which is not one of its replicas", i, g.Name, addr)
			}
		}
	}
	if err := c.Sharding.validate(c.Groups); err != nil {
		return fmt.Errorf("sharding: %w", err)
	}
	if c.Catalog.PollInterval <= 0 {
		return errors.New("catalog: poll_interval must be positive")
	}
	if c.Catalog.Schema == "" {
		return errors.New("catalog: schema must not be empty")
	}
	if c.Catalog.LeaseTTL <= c.Catalog.PollInterval {
		return fmt.Errorf("catalog: lease_ttl %v must exceed poll_interval %v", c.Catalog.LeaseTTL.D(), c.Catalog.PollInterval.D())
	}
	if err := c.Cluster.validate(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := c.Cache.validate(); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := c.Moves.validate(); err != nil {
		return fmt.Errorf("moves: %w", err)
	}
	if err := c.TwoPhase.validate(); err != nil {
		return fmt.Errorf("two_phase: %w", err)
	}
	for _, d := range c.Databases {
		if d.TwoPhaseCommit && c.Catalog.DSN == "" {
			return fmt.Errorf("databases: %s has two_phase_commit, which needs catalog.dsn (the decision log lives in the catalog)", d.Name)
		}
	}
	if c.Health.Interval <= 0 || c.Health.MaxReplicaLag <= 0 || c.Health.BanTime <= 0 || c.Health.MaxBanTime < c.Health.BanTime {
		return errors.New("health: interval, max_replica_lag and ban_time must be positive, max_ban_time at least ban_time")
	}
	return nil
}

func (c *Cluster) validate() error {
	if c.Bind == "" {
		return nil
	}
	for _, a := range append([]string{c.Bind}, c.Seeds...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%q must be host:port: %w", a, err)
		}
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("advertise %q must be host:port: %w", c.Advertise, err)
		}
	}
	switch c.Profile {
	case "lan", "wan", "local":
	default:
		return fmt.Errorf("profile %q: want lan, wan or local", c.Profile)
	}
	if c.DeadTimeout < 0 || c.BroadcastTimeout <= 0 {
		return errors.New("dead_timeout must not be negative and broadcast_timeout must be positive")
	}
	_, err := c.Key()
	return err
}

func (s *Sharding) validate(groups []Group) error {
	if s.KeyColumn == "" && len(s.Tables) == 0 {
		return errors.New("key_column or tables is required")
	}
	names := map[string]bool{}
	for _, g := range groups {
		names[g.Name] = true
	}
	if s.DefaultGroup != "" && !names[s.DefaultGroup] {
		return fmt.Errorf("default_group %q is not a configured group", s.DefaultGroup)
	}
	for i, t := range s.Tables {
		if t.Name == "" || t.Column == "" {
			return fmt.Errorf("tables[%d]: name and column are required", i)
		}
	}
	if len(s.Shards) > 0 {
		if _, err := s.Assignment(groups); err != nil {
			return err
		}
	}
	return nil
}

// Assignment returns, for each of the 16 logical shards, the index in groups of the group that
// owns it at bootstrap.
func (s *Sharding) Assignment(groups []Group) ([16]int, error) {
	var owner [16]int
	if len(groups) == 0 {
		return owner, errors.New("no groups")
	}
	if len(s.Shards) == 0 {
		for sh := range owner {
			owner[sh] = sh * len(groups) / 16
		}
		return owner, nil
	}
	index := map[string]int{}
	for i, g := range groups {
		index[g.Name] = i
	}
	for sh := range owner {
		owner[sh] = -1
	}
	for spec, name := range s.Shards {
		g, ok := index[name]
		if !ok {
			return owner, fmt.Errorf("shards[%q]: %q is not a configured group", spec, name)
		}
		lo, hi, err := shardRange(spec)
		if err != nil {
			return owner, fmt.Errorf("shards[%q]: %w", spec, err)
		}
		for sh := lo; sh <= hi; sh++ {
			if owner[sh] != -1 {
				return owner, fmt.Errorf("shards: shard %d is assigned twice", sh)
			}
			owner[sh] = g
		}
	}
	for sh, g := range owner {
		if g == -1 {
			return owner, fmt.Errorf("shards: shard %d has no group", sh)
		}
	}
	return owner, nil
}

// shardRange parses "5" or "0-3".
func shardRange(spec string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(spec), "-")
	if lo, err = strconv.Atoi(strings.TrimSpace(a)); err != nil {
		return 0, 0, fmt.Errorf("want a shard number or a range like 0-3")
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, fmt.Errorf("want a shard number or a range like 0-3")
		}
	}
	if lo < 0 || hi > 15 || lo > hi {
		return 0, 0, fmt.Errorf("shards run from 0 to 15")
	}
	return lo, hi, nil
}

func (p *Pool) validate() error {
	if err := p.Mode.validate(false); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	switch {
	case p.DefaultPoolSize <= 0:
		return fmt.Errorf("default_pool_size must be positive, got %d", p.DefaultPoolSize)
	case p.MinPoolSize < 0 || p.MinPoolSize > p.DefaultPoolSize:
		return fmt.Errorf("min_pool_size must be between 0 and default_pool_size, got %d", p.MinPoolSize)
	case p.ReservePoolSize < 0:
		return fmt.Errorf("reserve_pool_size must not be negative, got %d", p.ReservePoolSize)
	case p.QueryWaitTimeout <= 0:
		return errors.New("query_wait_timeout must be positive")
	case p.ServerConnectTimeout <= 0:
		return errors.New("server_connect_timeout must be positive")
	case p.MaxPreparedStatements < 0:
		return errors.New("max_prepared_statements must not be negative")
	case p.ServerIdleTimeout < 0 || p.ServerLifetime < 0 || p.ReservePoolTimeout < 0:
		return errors.New("timeouts must not be negative")
	}
	return nil
}

func (m PoolMode) validate(allowEmpty bool) error {
	switch m {
	case PoolModeSession, PoolModeTransaction, PoolModeStatement:
		return nil
	case "":
		if allowEmpty {
			return nil
		}
	}
	return fmt.Errorf("unknown pool mode %q (want session, transaction or statement)", string(m))
}

func isHashedPassword(p string) bool {
	return strings.HasPrefix(p, "SCRAM-SHA-256$") || (len(p) == 35 && strings.HasPrefix(p, "md5"))
}

// User returns the configured user with that name.
func (c *Config) User(name string) (User, bool) {
	for _, u := range c.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// Database returns the client-facing database with that name. With no databases configured
// every name is accepted and maps to the same backend name.
func (c *Config) Database(name string) (Database, bool) {
	if len(c.Databases) == 0 {
		return Database{Name: name, BackendName: name}, true
	}
	for _, d := range c.Databases {
		if d.Name == name {
			if d.BackendName == "" {
				d.BackendName = d.Name
			}
			return d, true
		}
	}
	return Database{}, false
}

// ModeFor returns the pool mode for a database and user: the user's override, else the
// database's, else the default.
func (c *Config) ModeFor(db Database, u User) PoolMode {
	switch {
	case u.PoolMode != "":
		return u.PoolMode
	case db.PoolMode != "":
		return db.PoolMode
	}
	return c.Pool.Mode
}

// PoolSizeFor returns the pool size for a database.
func (c *Config) PoolSizeFor(db Database) int {
	if db.PoolSize > 0 {
		return db.PoolSize
	}
	return c.Pool.DefaultPoolSize
}

func (c Cache) validate() error {
	for t, ttl := range c.Tables {
		if t == "" || t != strings.ToLower(t) || strings.Contains(t, ".") {
			return fmt.Errorf("tables: %q must be a lower-case table name without schema", t)
		}
		if ttl <= 0 {
			return fmt.Errorf("tables: %s needs a positive TTL", t)
		}
	}
	if c.L1Bytes < 0 || c.MaxResultBytes <= 0 || c.Staleness <= 0 || c.Timeout <= 0 {
		return errors.New("l1_bytes must not be negative; max_result_bytes, staleness and timeout must be positive")
	}
	return nil
}
