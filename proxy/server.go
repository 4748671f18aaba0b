package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/auth"
	"github.com/shardwire/shardwire/proxy/health"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// Server is one proxy node's client-facing side.
type Server struct {
	log        *zap.Logger
	cfg        atomic.Pointer[config.Config]
	creds      atomic.Pointer[map[string]*auth.Credential]
	decoyKey   []byte
	tlsConfig  *tls.Config
	metrics    *metrics
	statements *statementRegistry
	cancels    *cancelRegistry
	nodeTag    uint32
	// forwardCancel sends cancel requests for other nodes' keys there; nil alone.
	forwardCancel CancelForwarder
	// lease is the node's lease on its shard map; nil (always valid) without a catalog.
	lease *shardmap.Lease
	// hints wakes the catalog watcher for an immediate poll (an epoch announced by a peer).
	hints chan struct{}
	// catalog is the shard map catalog; nil without one, or before Start.
	catalog atomic.Pointer[shardmap.Catalog]
	topo    *topology
	// moves tracks frozen shards and the statements held for them.
	moves *moveState
	// twoPhase serves transactions spanning shard groups; nil when no database has
	// two_phase_commit (set by Start, before any client). twoPhaseHook is its test hook.
	twoPhase     *twoPhase
	twoPhaseHook func(step string)
	multi        *multiGroupMetrics
	// cache is the read-through cache; nil when no table is cacheable. cacheHook is a test
	// hook (SetCacheHook); keyBuilders recycles cache key hashers.
	cache       *cache.Cache
	cacheHook   func(stage, sql string)
	keyBuilders sync.Pool
	bgOnce      sync.Once
	reg         prometheus.Registerer

	readBuffers  *wire.BufferPool
	writeBuffers *wire.BufferPool

	clients atomic.Int64
	// console is the SQL admin console's state (consolestats.go).
	console consoleState

	mu       sync.Mutex
	pools    map[poolKey]*poolEntry
	sessions map[*session]struct{}
	closed   bool
	wg       sync.WaitGroup
}

type poolKey struct{ addr, database, user string }

// poolEntry is a pool and the server parameters its clients are greeted with.
type poolEntry struct {
	pool   *pool.Pool
	mu     sync.Mutex
	params map[string]string
}

// release returns a backend to its pool, closing it when it is broken.
func (e *poolEntry) release(sc *pool.Conn) {
	if sc.Broken() {
		e.pool.Discard(sc)
		return
	}
	e.pool.Release(sc)
}

// welcome returns the ParameterStatus values of the pool's backends, connecting once if needed.
func (e *poolEntry) welcome(ctx context.Context) (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.params != nil {
		return e.params, nil
	}
	sc, err := e.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	e.params = sc.Params()
	e.pool.Release(sc)
	return e.params, nil
}

// New builds a Server from a validated configuration.
func New(cfg config.Config, log *zap.Logger, reg prometheus.Registerer) (*Server, error) {
	s := &Server{
		log:        log,
		statements: newStatementRegistry(100_000),
		cancels:    newCancelRegistry(),
		pools:      make(map[poolKey]*poolEntry),
		sessions:   make(map[*session]struct{}),
		decoyKey:   make([]byte, 32),

		readBuffers:  wire.NewBufferPool(clientReadBuffer),
		writeBuffers: wire.NewBufferPool(clientWriteBuffer),
	}
	_, _ = rand.Read(s.decoyKey)
	s.nodeTag = NodeTag(cfg.NodeName)
	if err := s.apply(cfg); err != nil {
		return nil, err
	}
	s.hints = make(chan struct{}, 1)
	if cfg.Catalog.DSN != "" {
		s.lease = shardmap.NewLease(cfg.Catalog.LeaseTTL.D())
	}
	checker := health.New(healthConfig(&cfg), log.Named("health"), reg)
	topo, err := newTopology(&cfg, log, checker)
	if err != nil {
		return nil, err
	}
	s.topo = topo
	s.reg = reg
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.metrics = newMetrics(reg, s.poolList)
	s.moves = newMoveState(topo.store, reg)
	s.multi = newMultiGroupMetrics(reg)
	if cfg.Cache.Enabled() {
		c, err := cache.New(cache.Options{Config: cfg.Cache, Log: log.Named("cache"), Registry: reg, Clustered: cfg.Cluster.Bind != ""})
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		s.cache = c
		s.keyBuilders.New = func() any { return cache.NewKeyBuilder() }
	}
	return s, nil
}

func (s *Server) config() *config.Config { return s.cfg.Load() }

// apply installs a configuration: users' credentials and pool sizes. Clients stay connected.
func (s *Server) apply(cfg config.Config) error {
	creds := make(map[string]*auth.Credential, len(cfg.Users))
	for _, u := range cfg.Users {
		c, err := auth.ParseSecret(u.Name, u.Password)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
		creds[u.Name] = c
	}
	s.creds.Store(&creds)
	s.cfg.Store(&cfg)
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range s.pools {
		db, _ := cfg.Database(key.database)
		e.pool.Resize(cfg.PoolSizeFor(db), cfg.Pool.ReservePoolSize, min(cfg.Pool.MinPoolSize, cfg.PoolSizeFor(db)))
	}
	return nil
}

// Reload validates and applies a new configuration (SIGHUP): users and pool sizes change
// without dropping clients. Listen addresses and backends need a restart.
func (s *Server) Reload(cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if err := s.apply(cfg); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.log.Info("configuration reloaded", zap.Int("users", len(cfg.Users)))
	return nil
}

// healthConfig derives the health checker's settings; credentials default to the first
// user's server login.
func healthConfig(cfg *config.Config) health.Config {
	h := health.Config{
		Region: cfg.Region, Interval: cfg.Health.Interval.D(), MaxReplicaLag: cfg.Health.MaxReplicaLag.D(),
		BanTime: cfg.Health.BanTime.D(), MaxBanTime: cfg.Health.MaxBanTime.D(),
		ConnectTimeout: cfg.Pool.ServerConnectTimeout.D(),
		User:           cfg.Health.User, Password: cfg.Health.Password, Database: cfg.Health.Database,
	}
	if h.User == "" && len(cfg.Users) > 0 {
		u := cfg.Users[0]
		h.User, h.Password = u.Name, u.Password
		if u.ServerUser != "" {
			h.User = u.ServerUser
		}
		if u.ServerPassword != "" {
			h.Password = u.ServerPassword
		}
	}
	return h
}

// Start loads the shard map from the catalog (creating it from the configuration the first
// time) and starts the background work: catalog polling and health checks. Serve calls it;
// it runs once, until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	var err error
	s.bgOnce.Do(func() { err = s.start(ctx) })
	return err
}

func (s *Server) start(ctx context.Context) error {
	cfg := s.config()
	if cfg.Catalog.DSN != "" {
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cat, m, err := openCatalog(bctx, cfg, s.topo.store.Current(), s.log)
		if err != nil {
			return err
		}
		s.topo.store.Set(m)
		s.lease.Renew(time.Now())
		s.catalog.Store(cat)
		go func() {
			err := shardmap.Watch(ctx, cat, s.topo.store, cfg.Catalog.PollInterval.D(), s.log.Named("shardmap"),
				shardmap.WatchOptions{Registerer: s.reg, Lease: s.lease, Hints: s.hints, Listen: true})
			if err != nil {
				s.log.Error("shard map watch stopped", zap.Error(err))
			}
			s.catalog.Store(nil)
			cat.Close()
		}()
	}
	if err := s.startTwoPhase(ctx, cfg); err != nil {
		return err
	}
	s.topo.health.CheckNow(ctx)
	go s.topo.health.Run(ctx)
	if s.cache != nil {
		go s.cache.Run(ctx)
		if cfg.Cache.ChangeFeedEnabled() {
			s.startChangeFeeds(ctx)
		}
	}
	return nil
}

// HintEpoch asks the catalog watcher to look for a new epoch now (a peer announced one). It
// never blocks; hints that arrive while one is pending merge into it.
func (s *Server) HintEpoch() {
	select {
	case s.hints <- struct{}{}:
	default:
	}
}

// Catalog returns the shard map catalog, or nil when the node has none or has not started.
func (s *Server) Catalog() *shardmap.Catalog { return s.catalog.Load() }

// MapStore returns the store holding the node's current shard map.
func (s *Server) MapStore() *shardmap.Store { return s.topo.store }

// Lease returns the node's lease on its map; nil when the node has no catalog (its map never
// changes and needs no lease).
func (s *Server) Lease() *shardmap.Lease { return s.lease }

// Endpoints returns the health checker's view of every backend.
func (s *Server) Endpoints() []health.EndpointStatus { return s.topo.health.Snapshot() }

// leaseError is the error for a statement routed by the shard map (to shards, the default
// group, or every group) while the node's lease on the map has expired: the map may be stale,
// so the node refuses rather than risk writing to a group that no longer owns the shard.
// Statements that touch no table run on.
func (s *Server) leaseError(plan *router.Plan) *clientError {
	if plan.Target == router.TargetAny || s.lease.Valid() {
		return nil
	}
	st := s.lease.Status()
	s.metrics.leaseRefusals.Inc()
	return newClientError(codeCannotConnectNow, fmt.Sprintf(
		"shard map lease expired: this node has not reached the shard map catalog for %s (lease %s)",
		st.Age.Round(time.Millisecond), st.TTL)).
		withHint("retry, on another shardwire node if this persists; the node serves again once it reaches the catalog")
}

// Serve accepts clients on ln until ctx is done or Close is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Start(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return nil
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, nc)
		}()
	}
}

// Close disconnects every client, closes the pools and waits for sessions to end.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for sess := range s.sessions {
		_ = sess.conn.Close()
		sess.mu.Lock()
		if sess.server != nil { // a client loop may be reading its backend's reply
			_ = sess.server.SetDeadline(time.Now())
		}
		sess.mu.Unlock()
	}
	s.mu.Unlock()
	s.wg.Wait()
	for _, e := range s.poolList() {
		e.pool.Close()
	}
	if s.cache != nil {
		_ = s.cache.Close()
	}
}

// Ready reports whether the node can serve: its lease on the shard map is valid and the
// default group's writer accepts a connection.
func (s *Server) Ready(ctx context.Context) error {
	if !s.lease.Valid() {
		st := s.lease.Status()
		return fmt.Errorf("shard map lease expired %s ago: the catalog is unreachable", (st.Age - st.TTL).Round(time.Millisecond))
	}
	m := s.topo.store.Current()
	writer := s.topo.health.Writer(m.Groups[m.DefaultGroup].Name)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", writer)
	if err != nil {
		return fmt.Errorf("default group writer %s: %w", writer, err)
	}
	return c.Close()
}

func (s *Server) poolList() []*poolEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*poolEntry, 0, len(s.pools))
	for _, e := range s.pools {
		out = append(out, e)
	}
	return out
}

// PoolStats returns a snapshot of every pool.
func (s *Server) PoolStats() []pool.Stats {
	var out []pool.Stats
	for _, e := range s.poolList() {
		out = append(out, e.pool.Stats())
	}
	return out
}

// poolFor returns the pool for a backend endpoint, database and user, creating it.
func (s *Server) poolFor(addr string, db config.Database, u config.User) (*poolEntry, error) {
	serverUser := u.Name
	if u.ServerUser != "" {
		serverUser = u.ServerUser
	}
	key := poolKey{addr: addr, database: db.BackendName, user: serverUser}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.pools[key]; ok {
		return e, nil
	}
	cfg := s.config()
	password := u.ServerPassword
	if password == "" {
		password = u.Password
	}
	size := cfg.PoolSizeFor(db)
	p, err := pool.New(pool.Config{
		Addr: addr, Database: db.BackendName, User: serverUser, Password: password,
		Size: size, ReserveSize: cfg.Pool.ReservePoolSize, ReserveTimeout: cfg.Pool.ReservePoolTimeout.D(),
		MinSize: min(cfg.Pool.MinPoolSize, size), IdleTimeout: cfg.Pool.ServerIdleTimeout.D(),
		Lifetime: cfg.Pool.ServerLifetime.D(), ConnectTimeout: cfg.Pool.ServerConnectTimeout.D(),
		MaxPrepared: cfg.Pool.MaxPreparedStatements,
	}, s.log)
	if err != nil {
		return nil, err
	}
	e := &poolEntry{pool: p}
	s.pools[key] = e
	return e, nil
}

func (s *Server) track(sess *session, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.sessions[sess] = struct{}{}
	} else {
		delete(s.sessions, sess)
	}
}
