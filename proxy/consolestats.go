package proxy

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/shardmap"
)

// consoleState is a Server's SQL admin console state: the data source the node sets, the
// source of RELOAD's configuration and the paused databases. Its zero value is ready.
type consoleState struct {
	mu     sync.Mutex
	data   admin.ConsoleData
	source func() (config.Config, error)
	// pausedAll: PAUSE without a database; paused: PAUSE db.
	pausedAll bool
	paused    map[string]bool
	// resumed is closed (and replaced) whenever a pause is lifted; nil until the first pause.
	resumed chan struct{}
	// anyPaused says some database is paused, read without mu on every server checkout.
	anyPaused atomic.Bool
}

// SetConsole sets the data source of the SQL admin console (the node, which knows the
// cluster). Without one the console shows what this proxy alone knows (ConsoleData).
func (s *Server) SetConsole(data admin.ConsoleData) {
	s.console.mu.Lock()
	s.console.data = data
	s.console.mu.Unlock()
}

// SetConfigSource sets where the console's RELOAD reads the configuration (the binary: its
// configuration file). Without one RELOAD re-applies the running configuration.
func (s *Server) SetConfigSource(load func() (config.Config, error)) {
	s.console.mu.Lock()
	s.console.source = load
	s.console.mu.Unlock()
}

// consoleData returns the console's data source.
func (s *Server) consoleData() admin.ConsoleData {
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	if s.console.data != nil {
		return s.console.data
	}
	return s.ConsoleData()
}

// ConsoleData returns the console data this proxy provides by itself: pools, clients,
// servers, stats, its shard map and backends, its cache, configuration, RELOAD and PAUSE. Its
// cluster view holds only this node. A node wraps it, replacing the cluster-wide parts.
func (s *Server) ConsoleData() admin.ConsoleData { return proxyConsole{s} }

// proxyConsole implements admin.ConsoleData from a Server alone.
type proxyConsole struct{ s *Server }

// Pause implements admin.ConsoleData: new work for db ("" every database) waits until Resume.
func (c proxyConsole) Pause(_ context.Context, db string) error { return c.s.Pause(db) }

// Resume implements admin.ConsoleData.
func (c proxyConsole) Resume(_ context.Context, db string) error { return c.s.Resume(db) }

// Pause makes new logins to db ("" every database), and sessions' next checkouts of a server
// connection (a new transaction, in transaction pooling), wait until Resume, up to
// query_wait_timeout, then fail with a retryable error (57P03). Work already on a server
// connection finishes.
func (s *Server) Pause(db string) error {
	if err := s.knownDatabase(db); err != nil {
		return err
	}
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	if s.console.resumed == nil {
		s.console.resumed = make(chan struct{})
	}
	s.console.anyPaused.Store(true)
	if db == "" {
		s.console.pausedAll = true
		return nil
	}
	if s.console.paused == nil {
		s.console.paused = make(map[string]bool)
	}
	s.console.paused[db] = true
	return nil
}

// Resume lifts a Pause of db; "" lifts every pause.
func (s *Server) Resume(db string) error {
	if err := s.knownDatabase(db); err != nil {
		return err
	}
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	if db == "" {
		s.console.pausedAll = false
		clear(s.console.paused)
	} else {
		if s.console.pausedAll {
			return fmt.Errorf("every database is paused: RESUME without a database name lifts that")
		}
		if !s.console.paused[db] {
			return fmt.Errorf("database %q is not paused", db)
		}
		delete(s.console.paused, db)
	}
	s.console.anyPaused.Store(s.console.pausedAll || len(s.console.paused) > 0)
	if s.console.resumed != nil {
		close(s.console.resumed)
		s.console.resumed = make(chan struct{})
	}
	return nil
}

func (s *Server) knownDatabase(db string) error {
	switch {
	case db == "":
		return nil
	case db == admin.ConsoleDatabase:
		return fmt.Errorf("the admin console database %q cannot be paused", db)
	}
	if _, ok := s.config().Database(db); !ok {
		return fmt.Errorf("database %q does not exist", db)
	}
	return nil
}

// paused reports whether db is paused and returns the channel closed at the next Resume.
func (s *Server) paused(db string) (bool, <-chan struct{}) {
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	return s.console.pausedAll || s.console.paused[db], s.console.resumed
}

// waitPausedLogin holds a login to a paused database until RESUME, for up to
// query_wait_timeout (the login deadline is moved past that wait), then fails it with a
// retryable error.
func (s *Server) waitPausedLogin(ctx context.Context, nc net.Conn, db string) error {
	if p, _ := s.paused(db); !p {
		return nil
	}
	cfg := s.config()
	wait := cfg.Pool.QueryWaitTimeout.D()
	_ = nc.SetDeadline(time.Now().Add(wait + cfg.ClientLoginTimeout.D()))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return s.waitUnpaused(wctx, db)
}

// waitUnpaused waits while db is paused, until ctx ends.
func (s *Server) waitUnpaused(ctx context.Context, db string) error {
	for {
		p, resumed := s.paused(db)
		if !p {
			return nil
		}
		select {
		case <-resumed:
		case <-ctx.Done():
			return newClientError(codeCannotConnectNow, fmt.Sprintf("database %q is paused by an administrator", db)).
				withHint("retry later: the database serves again after RESUME").withCause(ctx.Err())
		}
	}
}

// Reload implements admin.ConsoleData: the configuration from the source set with
// SetConfigSource (else the running one) is validated and applied.
func (c proxyConsole) Reload(context.Context) error {
	c.s.console.mu.Lock()
	source := c.s.console.source
	c.s.console.mu.Unlock()
	cfg := *c.s.config()
	if source != nil {
		var err error
		if cfg, err = source(); err != nil {
			return err
		}
	}
	return c.s.Reload(cfg)
}

// sessionView is what the console reads of one session.
type sessionView struct {
	user, database, addr, mode, server string
	pid, serverPID                     uint32
	tx                                 byte
	pool                               *poolEntry
}

func (s *Server) sessionViews() []sessionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sessionView, 0, len(s.sessions))
	for sess := range s.sessions {
		v := sessionView{user: sess.user, database: sess.db.Name, addr: sess.conn.RemoteAddr().String(),
			mode: string(sess.mode), pid: sess.key.pid}
		sess.mu.Lock()
		v.tx = sess.txStatusLocked()
		if sess.server != nil {
			v.server, v.serverPID, v.pool = sess.server.Addr(), sess.server.PID(), sess.pool
		}
		sess.mu.Unlock()
		out = append(out, v)
	}
	return out
}

// Pools implements admin.ConsoleData.
func (c proxyConsole) Pools(context.Context) ([]admin.PoolRow, error) { return c.s.ConsolePools(), nil }

// ConsolePools describes every server connection pool.
func (s *Server) ConsolePools() []admin.PoolRow {
	active := map[*poolEntry]int{}
	for _, v := range s.sessionViews() {
		if v.pool != nil {
			active[v.pool]++
		}
	}
	s.mu.Lock()
	entries := make(map[poolKey]*poolEntry, len(s.pools))
	for k, e := range s.pools {
		entries[k] = e
	}
	s.mu.Unlock()
	out := make([]admin.PoolRow, 0, len(entries))
	for k, e := range entries {
		st := e.pool.Stats()
		p, _ := s.paused(k.database)
		out = append(out, admin.PoolRow{Database: k.database, User: k.user, Server: k.addr,
			ClientsActive: active[e], ClientsWaiting: st.Waiting, ServersActive: st.Active, ServersIdle: st.Idle,
			ServersOpening: st.Opening, Size: st.Size, Reserve: st.Reserve, WaitTimeouts: st.WaitTimeouts, Paused: p})
	}
	return out
}

// Clients implements admin.ConsoleData.
func (c proxyConsole) Clients(context.Context) ([]admin.ClientRow, error) {
	return c.s.ConsoleClients(), nil
}

// ConsoleClients describes every logged-in client (admin console sessions not included).
func (s *Server) ConsoleClients() []admin.ClientRow {
	views := s.sessionViews()
	out := make([]admin.ClientRow, 0, len(views))
	for _, v := range views {
		state := "idle"
		if v.server != "" {
			state = "active"
		}
		out = append(out, admin.ClientRow{User: v.user, Database: v.database, State: state, Addr: v.addr,
			PID: v.pid, TxStatus: string(v.tx), PoolMode: v.mode, Server: v.server})
	}
	return out
}

// Servers implements admin.ConsoleData.
func (c proxyConsole) Servers(context.Context) ([]admin.ServerRow, error) {
	return c.s.ConsoleServers(), nil
}

// ConsoleServers describes the server connections attached to clients. Idle connections
// are counted by ConsolePools.
func (s *Server) ConsoleServers() []admin.ServerRow {
	type role struct{ group, role string }
	roles := map[string]role{}
	for _, e := range s.Endpoints() {
		roles[e.Addr] = role{e.Group, e.Role}
	}
	var out []admin.ServerRow
	for _, v := range s.sessionViews() {
		if v.pool == nil {
			continue
		}
		st := v.pool.pool.Stats()
		r := roles[v.server]
		out = append(out, admin.ServerRow{User: st.User, Database: st.Database, Server: v.server, State: "active",
			PID: v.serverPID, ClientPID: v.pid, Group: r.group, Role: r.role})
	}
	return out
}

// Stats implements admin.ConsoleData.
func (c proxyConsole) Stats(context.Context) ([]admin.StatRow, error) { return c.s.ConsoleStats(), nil }

// ConsoleStats returns the proxy's counters since it started, read from its metrics.
func (s *Server) ConsoleStats() []admin.StatRow {
	m := s.metrics
	q := sumMetrics(m.queryDuration)
	tx := sumMetrics(m.txDuration)
	wait := sumMetrics(m.waitSeconds)
	avg := func(sum float64, n uint64) float64 {
		if n == 0 {
			return 0
		}
		return sum / float64(n) * 1000
	}
	return []admin.StatRow{
		{Name: "clients_active", Value: sumMetrics(m.clientsActive).value, Help: "client connections logged in"},
		{Name: "clients_waiting", Value: sumMetrics(m.clientsWaiting).value, Help: "clients waiting for a server connection"},
		{Name: "logins_total", Value: sumMetrics(m.logins).value, Help: "client login attempts"},
		{Name: "queries_total", Value: float64(q.count), Help: "requests answered (Query or Sync to ReadyForQuery)"},
		{Name: "query_seconds_total", Value: q.sum, Help: "time spent answering them"},
		{Name: "avg_query_ms", Value: avg(q.sum, q.count), Help: "mean request time"},
		{Name: "transactions_total", Value: float64(tx.count), Help: "server connections attached in transaction mode"},
		{Name: "avg_transaction_ms", Value: avg(tx.sum, tx.count), Help: "mean time a server connection stayed attached"},
		{Name: "avg_wait_ms", Value: avg(wait.sum, wait.count), Help: "mean wait for a server connection"},
		{Name: "errors_total", Value: sumMetrics(m.errors).value, Help: "ErrorResponses sent to clients"},
		{Name: "received_bytes_total", Value: sumMetrics(m.clientBytesIn).value, Help: "bytes received from clients"},
		{Name: "sent_bytes_total", Value: sumMetrics(m.clientBytesOut).value, Help: "bytes sent to clients"},
	}
}

// metricSum is the total of a collector's series: counter and gauge values, histogram
// counts and sums.
type metricSum struct {
	value float64
	count uint64
	sum   float64
}

func sumMetrics(c prometheus.Collector) metricSum {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var out metricSum
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		switch {
		case d.Counter != nil:
			out.value += d.Counter.GetValue()
		case d.Gauge != nil:
			out.value += d.Gauge.GetValue()
		case d.Histogram != nil:
			out.count += d.Histogram.GetSampleCount()
			out.sum += d.Histogram.GetSampleSum()
		}
	}
	return out
}

// ShardMap implements admin.ConsoleData: the map this proxy serves.
func (c proxyConsole) ShardMap(context.Context) (admin.ShardMapView, error) {
	m := c.s.topo.store.Current()
	v := admin.ShardMapView{Epoch: m.Epoch, DefaultGroup: m.Groups[m.DefaultGroup].Name}
	for gi, g := range m.Groups {
		gv := admin.GroupView{Name: g.Name, Region: g.Region, Writer: g.Writer, Replicas: append([]string{}, g.Replicas...)}
		for _, sh := range m.OwnedBy(gi).Shards() {
			gv.Shards = append(gv.Shards, int(sh))
		}
		v.Groups = append(v.Groups, gv)
	}
	for sh := range shardmap.NumShards {
		v.Shards = append(v.Shards, admin.ShardView{Shard: sh, Group: m.Groups[m.Owner[sh]].Name, State: string(m.State[sh])})
	}
	v.Lease.Valid = true
	if c.s.lease != nil {
		st := c.s.lease.Status()
		v.Lease = admin.LeaseView{Valid: st.Valid, AgeSeconds: st.Age.Seconds(), TTLSeconds: st.TTL.Seconds()}
	}
	return v, nil
}

// Cluster implements admin.ConsoleData: this node alone, and its view of the backends.
func (c proxyConsole) Cluster(context.Context) (admin.ClusterStatus, error) {
	cfg := c.s.config()
	st := admin.ClusterStatus{Node: cfg.NodeName}
	self := admin.MemberStatus{Name: cfg.NodeName, State: "alive", Region: cfg.Region, PgAddr: cfg.Listen,
		AdminAddr: cfg.AdminListen, LeaseOK: c.s.lease.Valid(), Self: true}
	if cur := c.s.topo.store.Current(); cur != nil {
		self.Epoch = cur.Epoch
	}
	st.Members = []admin.MemberStatus{self}
	st.Endpoints = c.s.EndpointStatuses()
	return st, nil
}

// EndpointStatuses returns the health checker's view of every backend as the admin API and
// the console show it.
func (s *Server) EndpointStatuses() []admin.EndpointStatus {
	var out []admin.EndpointStatus
	for _, e := range s.Endpoints() {
		es := admin.EndpointStatus{Group: e.Group, Addr: e.Addr, Region: e.Region, Role: e.Role, Up: e.Up,
			Banned: !e.BannedUntil.IsZero(), LastError: e.LastError}
		if e.LagKnown {
			lag := e.Lag.Seconds()
			es.LagSeconds = &lag
		}
		out = append(out, es)
	}
	return out
}

// Cache implements admin.ConsoleData: the cache's state and counters.
func (c proxyConsole) Cache(context.Context) (admin.CacheStatus, error) {
	cfg := c.s.config()
	st := admin.CacheStatus{Node: cfg.NodeName}
	stats, on := c.s.CacheStats()
	if !on {
		return st, nil
	}
	st.Enabled, st.Usable, st.RedisUp = true, stats.Usable, stats.RedisUp
	st.Entries, st.Bytes = stats.Entries, stats.Bytes
	st.Misses, st.Fills, st.HitRate = int64(stats.Misses), int64(stats.Fills), stats.HitRate
	st.Layers = []admin.CacheLayerStatus{
		{Layer: "l1", Hits: int64(stats.HitsL1), HitRate: stats.HitRateL1},
		{Layer: "l2", Hits: int64(stats.HitsL2), HitRate: stats.HitRateL2},
	}
	return st, nil
}

// Config implements admin.ConsoleData.
func (c proxyConsole) Config(context.Context) ([]admin.ConfigRow, error) { return c.s.ConsoleConfig() }

// redactedKeys are configuration keys whose values the console never shows.
var redactedKeys = map[string]bool{
	"password": true, "server_password": true, "change_feed_password": true, "secret_key": true, "dsn": true,
}

// ConsoleConfig flattens the running configuration into dotted keys (users[0].name, ...);
// passwords, keys and DSNs show as "(redacted)" when set.
func (s *Server) ConsoleConfig() ([]admin.ConfigRow, error) {
	raw, err := yaml.Marshal(s.config())
	if err != nil {
		return nil, fmt.Errorf("encode configuration: %w", err)
	}
	var tree any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return nil, fmt.Errorf("decode configuration: %w", err)
	}
	var rows []admin.ConfigRow
	var walk func(prefix, key string, v any)
	walk = func(prefix, key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, k, v[k])
			}
		case []any:
			if len(v) == 0 {
				rows = append(rows, admin.ConfigRow{Key: prefix, Value: ""})
			}
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", prefix, i), key, e)
			}
		default:
			val := ""
			if v != nil {
				val = strings.TrimSpace(fmt.Sprint(v))
			}
			if redactedKeys[key] && val != "" {
				val = "(redacted)"
			}
			rows = append(rows, admin.ConfigRow{Key: prefix, Value: val})
		}
	}
	walk("", "", tree)
	return rows, nil
}
