package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/proxy"
)

// Client credentials every dev cluster accepts, the same as on the Postgres servers.
const (
	User     = pgtest.User
	Password = pgtest.Password
	Database = pgtest.Database
)

// regions are handed out round-robin to groups and proxy nodes.
var regions = [...]string{"us-east-1", "us-west-2", "eu-west-1"}

// readyTimeout bounds the wait for every proxy to serve its first query.
const readyTimeout = 30 * time.Second

// Options configures Start.
type Options struct {
	// Dir holds the cluster's files; Postgres data directories go to Dir/pg. "" means a
	// temporary directory for Postgres, removed by Stop.
	Dir string
	// Groups is the number of shard groups (default 1); Replicas the streaming replicas per
	// group (default 0); Proxies the proxy nodes (default 1).
	Groups, Replicas, Proxies int
	// Port is the first proxy's client port; node i listens on Port+i. 0 picks free ports.
	Port int
	// Overlay is YAML merged over each node's generated config (see package doc).
	Overlay []byte
	// Log receives the proxies' logs; nil discards them.
	Log *zap.Logger
	// Logf receives Postgres start-up progress; nil discards it.
	Logf func(format string, args ...any)
}

// Node is one running proxy node.
type Node struct {
	Name   string
	Addr   string // client address, host:port
	Admin  string // admin HTTP address, host:port
	Config config.Config
	Proxy  *proxy.Server
	// Registry holds this node's metrics (each node has its own).
	Registry *prometheus.Registry
}

// Cluster is a running dev cluster. Stop it when done.
type Cluster struct {
	PG    *pgtest.Cluster
	Nodes []*Node

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errs     chan error
	stopOnce sync.Once
	stopErr  error
}

// Start starts Postgres and the proxy nodes and returns once every node has served a query
// as User. On error, everything started is stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Groups <= 0 {
		opts.Groups = 1
	}
	if opts.Proxies <= 0 {
		opts.Proxies = 1
	}
	if opts.Replicas < 0 {
		return nil, fmt.Errorf("devcluster: replicas = %d, want >= 0", opts.Replicas)
	}
	if opts.Port < 0 || opts.Port+opts.Proxies-1 > 65535 {
		return nil, fmt.Errorf("devcluster: port %d does not fit %d proxies", opts.Port, opts.Proxies)
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	// Check the overlay before starting anything, against a placeholder of the generated config.
	if _, err := applyOverlay(placeholderConfig(), opts.Overlay); err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	pgOpts := pgtest.Options{Groups: opts.Groups, Replicas: opts.Replicas, Logf: opts.Logf}
	if opts.Dir != "" {
		pgOpts.Dir = filepath.Join(opts.Dir, "pg")
		if err := clearStaleData(pgOpts.Dir); err != nil {
			return nil, fmt.Errorf("devcluster: %w", err)
		}
	}
	pg, err := pgtest.Start(ctx, pgOpts)
	if err != nil {
		return nil, fmt.Errorf("devcluster: start postgres: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c := &Cluster{PG: pg, cancel: cancel, errs: make(chan error, 2*opts.Proxies)}
	for i := range opts.Proxies {
		if err := c.startNode(runCtx, opts, i); err != nil {
			return nil, errors.Join(err, c.Stop())
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// placeholderConfig has the shape of a generated config, for checking an overlay early.
func placeholderConfig() config.Config {
	c := &Cluster{PG: &pgtest.Cluster{Groups: []*pgtest.Group{{Name: "g0", Writer: &pgtest.Server{Host: "127.0.0.1", Port: 5432}}}}}
	return c.baseConfig(0, "127.0.0.1:6432", "127.0.0.1:9930")
}

// baseConfig is the generated configuration of proxy node i, before the overlay.
func (c *Cluster) baseConfig(i int, listen, adminListen string) config.Config {
	cfg := config.Default()
	cfg.NodeName = fmt.Sprintf("p%d", i)
	cfg.Region = regions[i%len(regions)]
	cfg.Listen = listen
	cfg.AdminListen = adminListen
	cfg.Users = []config.User{{Name: User, Password: Password}}
	for gi, g := range c.PG.Groups {
		grp := config.Group{Name: g.Name, Region: regions[gi%len(regions)], Writer: g.Writer.Addr()}
		for _, r := range g.Replicas {
			grp.Replicas = append(grp.Replicas, r.Addr())
		}
		cfg.Groups = append(cfg.Groups, grp)
	}
	// The shard map catalog lives in its own schema on the first group's writer.
	cfg.Catalog.DSN = c.PG.Groups[0].Writer.AppDSN()
	return cfg
}

// startNode listens for node i's clients and admin requests and starts serving both.
func (c *Cluster) startNode(ctx context.Context, opts Options, i int) error {
	port := 0
	if opts.Port != 0 {
		port = opts.Port + i
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("devcluster: proxy p%d: %w", i, err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("devcluster: proxy p%d admin: %w", i, err)
	}
	closeBoth := func() { _ = ln.Close(); _ = adminLn.Close() }
	cfg, err := applyOverlay(c.baseConfig(i, ln.Addr().String(), adminLn.Addr().String()), opts.Overlay)
	if err != nil {
		closeBoth()
		return fmt.Errorf("devcluster: proxy p%d config: %w", i, err)
	}
	if cfg.Listen != ln.Addr().String() || cfg.AdminListen != adminLn.Addr().String() {
		closeBoth()
		return fmt.Errorf("devcluster: proxy p%d: the overlay must not set listen or admin_listen (use --port)", i)
	}
	log := opts.Log.With(zap.String("node", cfg.NodeName))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := proxy.New(cfg, log, reg)
	if err != nil {
		closeBoth()
		return fmt.Errorf("devcluster: proxy p%d: %w", i, err)
	}
	n := &Node{Name: cfg.NodeName, Addr: ln.Addr().String(), Admin: adminLn.Addr().String(),
		Config: cfg, Proxy: srv, Registry: reg}
	c.Nodes = append(c.Nodes, n)
	adm := admin.New(admin.Config{Addr: n.Admin}, log, reg, srv.Ready)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if err := srv.Serve(ctx, ln); err != nil {
			c.errs <- fmt.Errorf("proxy %s: %w", n.Name, err)
		}
	}()
	go func() {
		defer c.wg.Done()
		if err := adm.Serve(ctx, adminLn); err != nil {
			c.errs <- fmt.Errorf("proxy %s: %w", n.Name, err)
		}
	}()
	return nil
}

// waitReady waits until every node answers a query through the proxy.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for _, n := range c.Nodes {
		var last error
		for {
			if last = queryOnce(ctx, n.DSN()); last == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("devcluster: proxy %s at %s not ready: %w", n.Name, n.Addr, last)
			case err := <-c.errs:
				return fmt.Errorf("devcluster: %w", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func queryOnce(ctx context.Context, dsn string) error {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(qctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(qctx, "select 1").ReadAll()
	return err
}

// DSN returns the URL clients use to connect to the node as User.
func (n *Node) DSN() string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", User, Password, n.Addr, Database)
}

// Errors delivers errors from nodes that stopped serving on their own (not via Stop).
func (c *Cluster) Errors() <-chan error { return c.errs }

// Stop stops the proxy nodes, then Postgres. It is idempotent; later calls return the first
// result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.cancel()
		var wg sync.WaitGroup
		for _, n := range c.Nodes {
			wg.Go(n.Proxy.Close)
		}
		wg.Wait()
		c.wg.Wait()
		c.stopErr = c.PG.Stop()
	})
	return c.stopErr
}

// Info is the cluster.json contract other tools read. Keep existing fields stable.
type Info struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Database string `json:"database"`
	// Catalog is the shard map catalog's DSN (schema "shardwire").
	Catalog string      `json:"catalog"`
	Proxies []ProxyInfo `json:"proxies"`
	Groups  []GroupInfo `json:"groups"`
}

// ProxyInfo is one proxy node in cluster.json.
type ProxyInfo struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Admin string `json:"admin"`
}

// GroupInfo is one shard group in cluster.json; servers are postgres:// URLs as User.
type GroupInfo struct {
	Name     string   `json:"name"`
	Writer   string   `json:"writer"`
	Replicas []string `json:"replicas"`
}

// Info describes the running cluster.
func (c *Cluster) Info() Info {
	info := Info{User: User, Password: Password, Database: Database,
		Catalog: c.PG.Groups[0].Writer.AppDSN(), Proxies: []ProxyInfo{}, Groups: []GroupInfo{}}
	for _, n := range c.Nodes {
		info.Proxies = append(info.Proxies, ProxyInfo{Name: n.Name, Addr: n.Addr, Admin: n.Admin})
	}
	for _, g := range c.PG.Groups {
		gi := GroupInfo{Name: g.Name, Writer: g.Writer.AppDSN(), Replicas: []string{}}
		for _, r := range g.Replicas {
			gi.Replicas = append(gi.Replicas, r.AppDSN())
		}
		info.Groups = append(info.Groups, gi)
	}
	return info
}

// WriteInfo writes Info as indented JSON to path atomically (via a temporary file and
// rename), so a reader never sees a partial file.
func (c *Cluster) WriteInfo(path string) error {
	data, err := json.MarshalIndent(c.Info(), "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write cluster file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write cluster file: %w", err)
	}
	return nil
}

// clearStaleData removes the Postgres data a previous, stopped dev cluster left in dir, and
// refuses when a server still runs from it. The dev cluster's data is not meant to outlive it.
func clearStaleData(dir string) error {
	pids, _ := filepath.Glob(filepath.Join(dir, "*", "postmaster.pid"))
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("a Postgres server (pid %d) still runs from %s: stop the other dev cluster first", pid, filepath.Dir(f))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove stale data in %s: %w", dir, err)
	}
	return nil
}
