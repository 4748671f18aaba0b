package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ConsoleDatabase is the virtual database that admin users connect to for the SQL console.
const ConsoleDatabase = "shardwire"

// SQLSTATE codes the console answers with.
const (
	// CodeSyntaxError (syntax_error) is an unknown or malformed console command.
	CodeSyntaxError = "42601"
	// CodeInsufficientPrivilege (insufficient_privilege) refuses a user not in admin_users.
	CodeInsufficientPrivilege = "42501"
	// CodeConsoleFailed (object_not_in_prerequisite_state) is a command that could not be
	// carried out now (a reload whose configuration is invalid, an unknown database).
	CodeConsoleFailed = "55000"
)

// ConsoleData is what the SQL admin console reads and changes. The node implements it (the
// proxy alone has a standalone implementation); the console only parses commands and shapes
// the results. Methods are called from client sessions concurrently.
type ConsoleData interface {
	// Pools describes the node's server connection pools.
	Pools(ctx context.Context) ([]PoolRow, error)
	// Clients describes the client connections logged in.
	Clients(ctx context.Context) ([]ClientRow, error)
	// Servers describes the server connections attached to clients.
	Servers(ctx context.Context) ([]ServerRow, error)
	// Stats are the node's counters since it started.
	Stats(ctx context.Context) ([]StatRow, error)
	// ShardMap describes the map the node serves.
	ShardMap(ctx context.Context) (ShardMapView, error)
	// Cluster describes the members the node knows and its view of the backends.
	Cluster(ctx context.Context) (ClusterStatus, error)
	// Cache describes the node's read-through cache.
	Cache(ctx context.Context) (CacheStatus, error)
	// Config lists the running configuration as flat name/value pairs, secrets redacted.
	Config(ctx context.Context) ([]ConfigRow, error)
	// Reload reads the configuration again and applies it.
	Reload(ctx context.Context) error
	// Pause stops new work for a database ("" for every database) until Resume; Resume
	// lifts it. Both return an error for a database the node does not serve.
	Pause(ctx context.Context, database string) error
	Resume(ctx context.Context, database string) error
}

// PoolRow is one server connection pool.
type PoolRow struct {
	Database, User, Server string
	// ClientsActive are clients holding a connection of the pool; ClientsWaiting wait for one.
	ClientsActive, ClientsWaiting int
	// ServersActive, ServersIdle and ServersOpening count the pool's connections by state.
	ServersActive, ServersIdle, ServersOpening int
	// Size and Reserve are the pool's limits.
	Size, Reserve int
	// WaitTimeouts counts acquisitions that gave up at query_wait_timeout.
	WaitTimeouts uint64
	// Paused: new work for the database waits (PAUSE).
	Paused bool
}

// ClientRow is one logged-in client connection.
type ClientRow struct {
	User, Database string
	// State is "active" (a server connection is attached) or "idle".
	State string
	// Addr is the client's address; PID the process id the proxy gave it (BackendKeyData).
	Addr string
	PID  uint32
	// TxStatus is the transaction status it is shown: I (idle), T (in a transaction), E (failed).
	TxStatus string
	// PoolMode is its pool mode; Server the endpoint attached, "" when none.
	PoolMode, Server string
}

// ServerRow is one server connection attached to a client.
type ServerRow struct {
	User, Database, Server string
	// State is "active".
	State string
	// PID is the backend's process id; ClientPID the attached client's.
	PID, ClientPID uint32
	// Group is the shard group of the endpoint; Role writer or replica.
	Group, Role string
}

// StatRow is one counter of SHOW STATS.
type StatRow struct {
	Name  string
	Value float64
	Help  string
}

// ConfigRow is one configuration setting.
type ConfigRow struct{ Key, Value string }

// Result is a console command's answer: a table (Columns and Rows, text values, nil for
// NULL) or none, the command tag, and an optional notice for the operator.
type Result struct {
	Columns []string
	Rows    [][]*string
	Tag     string
	Notice  string
}

// ConsoleError is a console failure with its SQLSTATE.
type ConsoleError struct {
	Code    string
	Message string
	Hint    string
}

// Error returns the message.
func (e *ConsoleError) Error() string { return e.Code + ": " + e.Message }

// Command is one parsed console command.
type Command struct {
	// Verb is SHOW, RELOAD, PAUSE or RESUME.
	Verb string
	// Object is what SHOW shows (POOLS, CLIENTS, ...); "" for other verbs.
	Object string
	// Database is the argument of PAUSE and RESUME; "" for every database.
	Database string
}

// showObjects are the SHOW commands, in the order the hint lists them.
var showObjects = []string{"POOLS", "CLIENTS", "SERVERS", "STATS", "SHARDS", "GROUPS", "CLUSTER", "CACHE", "CONFIG"}

// ConsoleCommands lists the commands the console knows, for hints and docs.
func ConsoleCommands() []string {
	out := make([]string, 0, len(showObjects)+3)
	for _, o := range showObjects {
		out = append(out, "SHOW "+o)
	}
	return append(out, "RELOAD", "PAUSE [db]", "RESUME [db]")
}

func syntaxError(format string, args ...any) *ConsoleError {
	return &ConsoleError{Code: CodeSyntaxError, Message: fmt.Sprintf(format, args...),
		Hint: "the admin console knows: " + strings.Join(ConsoleCommands(), ", ")}
}

// ParseCommand parses one console command: keywords are case-insensitive, a trailing
// semicolon is optional, a database name may be double-quoted.
func ParseCommand(sql string) (Command, error) {
	text := strings.TrimSpace(sql)
	text = strings.TrimSpace(strings.TrimSuffix(text, ";"))
	if strings.Contains(text, ";") {
		return Command{}, syntaxError("the admin console runs one command at a time")
	}
	words := strings.Fields(text)
	if len(words) == 0 {
		return Command{}, syntaxError("empty command")
	}
	verb := strings.ToUpper(words[0])
	switch verb {
	case "SHOW":
		if len(words) != 2 {
			return Command{}, syntaxError("SHOW takes one of: %s", strings.Join(showObjects, ", "))
		}
		obj := strings.ToUpper(words[1])
		for _, o := range showObjects {
			if o == obj {
				return Command{Verb: verb, Object: obj}, nil
			}
		}
		return Command{}, syntaxError("unknown SHOW command %q", words[1])
	case "RELOAD":
		if len(words) != 1 {
			return Command{}, syntaxError("RELOAD takes no argument")
		}
		return Command{Verb: verb}, nil
	case "PAUSE", "RESUME":
		switch len(words) {
		case 1:
			return Command{Verb: verb}, nil
		case 2:
			db, err := unquoteName(words[1])
			if err != nil {
				return Command{}, syntaxError("%s: %v", verb, err)
			}
			return Command{Verb: verb, Database: db}, nil
		}
		return Command{}, syntaxError("%s takes at most one database name", verb)
	}
	return Command{}, syntaxError("unknown admin console command %q", words[0])
}

// unquoteName reads a database name: bare (folded to lower case, as Postgres does) or
// double-quoted (kept as written).
func unquoteName(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		if len(s) < 3 || !strings.HasSuffix(s, `"`) {
			return "", fmt.Errorf("unterminated quoted name %s", s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`), nil
	}
	if strings.ContainsAny(s, `"'`) {
		return "", fmt.Errorf("invalid name %s", s)
	}
	return strings.ToLower(s), nil
}

// Console runs admin console commands against a ConsoleData. It is safe for concurrent use.
type Console struct{ data ConsoleData }

// NewConsole returns a console over data.
func NewConsole(data ConsoleData) *Console { return &Console{data: data} }

// Run parses and runs one command. Failures are *ConsoleError values.
func (c *Console) Run(ctx context.Context, sql string) (Result, error) {
	cmd, err := ParseCommand(sql)
	if err != nil {
		return Result{}, err
	}
	res, err := c.run(ctx, cmd)
	if err != nil {
		var ce *ConsoleError
		if !errors.As(err, &ce) {
			ce = &ConsoleError{Code: CodeConsoleFailed, Message: err.Error()}
		}
		return Result{}, ce
	}
	return res, nil
}

func (c *Console) run(ctx context.Context, cmd Command) (Result, error) {
	switch cmd.Verb {
	case "RELOAD":
		if err := c.data.Reload(ctx); err != nil {
			return Result{}, fmt.Errorf("reload failed, the running configuration stays: %w", err)
		}
		return Result{Tag: "RELOAD"}, nil
	case "PAUSE":
		if err := c.data.Pause(ctx, cmd.Database); err != nil {
			return Result{}, fmt.Errorf("pause: %w", err)
		}
		return Result{Tag: "PAUSE", Notice: pauseNotice(cmd.Database)}, nil
	case "RESUME":
		if err := c.data.Resume(ctx, cmd.Database); err != nil {
			return Result{}, fmt.Errorf("resume: %w", err)
		}
		return Result{Tag: "RESUME"}, nil
	}
	t, err := c.show(ctx, cmd.Object)
	if err != nil {
		return Result{}, fmt.Errorf("show %s: %w", strings.ToLower(cmd.Object), err)
	}
	t.Tag = "SHOW"
	return t, nil
}

func pauseNotice(db string) string {
	what := "every database"
	if db != "" {
		what = "database " + strconv.Quote(db)
	}
	return "new work for " + what + " waits until RESUME"
}

// table builds a Result row by row.
type table struct{ Result }

func newTable(cols ...string) *table { return &table{Result{Columns: cols, Rows: [][]*string{}}} }

// add appends a row; a nil *string or a nil *float64 value is NULL.
func (t *table) add(vals ...any) {
	row := make([]*string, len(vals))
	for i, v := range vals {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case int:
			s = strconv.Itoa(v)
		case int64:
			s = strconv.FormatInt(v, 10)
		case uint32:
			s = strconv.FormatUint(uint64(v), 10)
		case uint64:
			s = strconv.FormatUint(v, 10)
		case float64:
			s = strconv.FormatFloat(v, 'f', -1, 64)
		case *float64:
			if v == nil {
				continue
			}
			s = strconv.FormatFloat(*v, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(v)
		case nil:
			continue
		default:
			s = fmt.Sprint(v)
		}
		row[i] = &s
	}
	t.Rows = append(t.Rows, row)
}

func (c *Console) show(ctx context.Context, obj string) (Result, error) {
	switch obj {
	case "POOLS":
		pools, err := c.data.Pools(ctx)
		if err != nil {
			return Result{}, err
		}
		sort.Slice(pools, func(i, j int) bool {
			a, b := pools[i], pools[j]
			return a.Database+"\x00"+a.User+"\x00"+a.Server < b.Database+"\x00"+b.User+"\x00"+b.Server
		})
		t := newTable("database", "user", "server", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_opening",
			"pool_size", "reserve_pool", "wait_timeouts", "paused")
		for _, p := range pools {
			t.add(p.Database, p.User, p.Server, p.ClientsActive, p.ClientsWaiting, p.ServersActive, p.ServersIdle,
				p.ServersOpening, p.Size, p.Reserve, p.WaitTimeouts, p.Paused)
		}
		return t.Result, nil
	case "CLIENTS":
		clients, err := c.data.Clients(ctx)
		if err != nil {
			return Result{}, err
		}
		sort.Slice(clients, func(i, j int) bool { return clients[i].PID < clients[j].PID })
		t := newTable("user", "database", "state", "addr", "pid", "tx_status", "pool_mode", "server")
		for _, cl := range clients {
			t.add(cl.User, cl.Database, cl.State, cl.Addr, cl.PID, cl.TxStatus, cl.PoolMode, nullIfEmpty(cl.Server))
		}
		return t.Result, nil
	case "SERVERS":
		servers, err := c.data.Servers(ctx)
		if err != nil {
			return Result{}, err
		}
		sort.Slice(servers, func(i, j int) bool {
			if servers[i].Server != servers[j].Server {
				return servers[i].Server < servers[j].Server
			}
			return servers[i].PID < servers[j].PID
		})
		t := newTable("user", "database", "server", "group", "role", "state", "pid", "client_pid")
		for _, s := range servers {
			t.add(s.User, s.Database, s.Server, s.Group, s.Role, s.State, s.PID, s.ClientPID)
		}
		return t.Result, nil
	case "STATS":
		stats, err := c.data.Stats(ctx)
		if err != nil {
			return Result{}, err
		}
		t := newTable("stat", "value", "description")
		for _, s := range stats {
			t.add(s.Name, s.Value, s.Help)
		}
		return t.Result, nil
	case "SHARDS":
		m, err := c.data.ShardMap(ctx)
		if err != nil {
			return Result{}, err
		}
		region := make(map[string]string, len(m.Groups))
		for _, g := range m.Groups {
			region[g.Name] = g.Region
		}
		t := newTable("shard", "group", "region", "state", "epoch")
		for _, s := range m.Shards {
			t.add(s.Shard, s.Group, region[s.Group], s.State, m.Epoch)
		}
		return t.Result, nil
	case "GROUPS":
		return c.showGroups(ctx)
	case "CLUSTER":
		st, err := c.data.Cluster(ctx)
		if err != nil {
			return Result{}, err
		}
		t := newTable("name", "state", "region", "version", "pg_addr", "admin_addr", "gossip_addr", "epoch", "lease_ok", "ready", "self")
		for _, m := range st.Members {
			t.add(m.Name, m.State, m.Region, m.Version, m.PgAddr, m.AdminAddr, m.GossipAddr, m.Epoch, m.LeaseOK, m.Ready, m.Self)
		}
		return t.Result, nil
	case "CACHE":
		st, err := c.data.Cache(ctx)
		if err != nil {
			return Result{}, err
		}
		t := newTable("layer", "enabled", "usable", "redis_up", "entries", "bytes", "hits", "misses", "fills", "hit_rate")
		t.add("all", st.Enabled, st.Usable, st.RedisUp, st.Entries, st.Bytes, nil, st.Misses, st.Fills, st.HitRate)
		for _, l := range st.Layers {
			t.add(l.Layer, st.Enabled, nil, nil, nil, nil, l.Hits, nil, nil, l.HitRate)
		}
		return t.Result, nil
	case "CONFIG":
		rows, err := c.data.Config(ctx)
		if err != nil {
			return Result{}, err
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
		t := newTable("key", "value")
		for _, r := range rows {
			t.add(r.Key, r.Value)
		}
		return t.Result, nil
	}
	return Result{}, syntaxError("unknown SHOW command %q", obj)
}

// showGroups lists every endpoint of every group: its role, health and lag.
func (c *Console) showGroups(ctx context.Context) (Result, error) {
	m, err := c.data.ShardMap(ctx)
	if err != nil {
		return Result{}, err
	}
	st, err := c.data.Cluster(ctx)
	if err != nil {
		return Result{}, err
	}
	t := newTable("group", "region", "endpoint", "role", "health", "lag_seconds", "shards", "last_error")
	seen := map[string]bool{}
	for _, e := range st.Endpoints {
		seen[e.Group] = true
		t.add(e.Group, e.Region, e.Addr, e.Role, endpointHealth(e), e.LagSeconds, shardList(m, e.Group), nullIfEmpty(e.LastError))
	}
	for _, g := range m.Groups { // groups the health checker does not watch (yet)
		if seen[g.Name] {
			continue
		}
		t.add(g.Name, g.Region, g.Writer, "writer", "unknown", nil, shardList(m, g.Name), nil)
		for _, r := range g.Replicas {
			t.add(g.Name, g.Region, r, "replica", "unknown", nil, shardList(m, g.Name), nil)
		}
	}
	return t.Result, nil
}

func endpointHealth(e EndpointStatus) string {
	switch {
	case !e.Up:
		return "down"
	case e.Banned:
		return "banned"
	}
	return "up"
}

func shardList(m ShardMapView, group string) string {
	for _, g := range m.Groups {
		if g.Name != group {
			continue
		}
		parts := make([]string, len(g.Shards))
		for i, s := range g.Shards {
			parts[i] = strconv.Itoa(s)
		}
		return strings.Join(parts, ",")
	}
	return ""
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
