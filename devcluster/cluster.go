package devcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/buildinfo"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/invoiceapp/service"
)

// Client credentials every dev cluster accepts, the same as on the Postgres servers.
const (
	User     = pgtest.User
	Password = pgtest.Password
	Database = pgtest.Database
)

// errorsPerNode sizes the Errors channel: room for this many reports per node before further
// ones are only logged.
const errorsPerNode = 8

// Options configures Start.
type Options struct {
	// Dir holds the cluster's files; Postgres data directories go to Dir/pg, child nodes'
	// configuration and log files to Dir/proxies. "" means a temporary directory for
	// Postgres, removed by Stop; it is required with Exec.
	Dir string
	// Groups is the number of shard groups (default 1); Replicas the streaming replicas per
	// group (default 0); Proxies the proxy nodes (default 1).
	Groups, Replicas, Proxies int
	// Port is the first proxy's client port; node i listens on Port+i. 0 picks free ports.
	Port int
	// GossipPort is the first proxy's gossip port (TCP and UDP); node i gossips on
	// GossipPort+i. 0 picks free ports.
	GossipPort int
	// Exec is the path of a shardwire binary. When set, each node runs as a child process
	// `Exec serve --config Dir/proxies/pN.yaml --log-level info`, its output appended to
	// Dir/proxies/pN.log. "" runs the nodes in this process.
	Exec string
	// Version is the build version in-process nodes publish; default: this binary's.
	Version string
	// Overlay is YAML merged over each node's generated config (see package doc).
	Overlay []byte
	// NodeConfig, when set, changes node i's configuration last, after the overlay (tests
	// give one node a different catalog address, say).
	NodeConfig func(i int, cfg *config.Config)
	// Log receives in-process nodes' logs and devcluster's own; nil discards them.
	Log *zap.Logger
	// Logf receives Postgres start-up progress; nil discards it.
	Logf func(format string, args ...any)
	// Redis starts a redis-server beside the proxies when one is installed (without one the
	// cluster runs without Redis and says so in the log).
	Redis bool
	// Invoiced runs the invoice service in this process against the first node, on
	// InvoicedPort (0: a free port), with DemoCustomers demo customers loaded at start.
	Invoiced      bool
	InvoicedPort  int
	DemoCustomers int
}

// Cluster is a running dev cluster. Stop it when done.
type Cluster struct {
	PG    *pgtest.Cluster
	Nodes []*Node
	// Redis is the cluster's Redis, nil without one.
	Redis *pgtest.Redis
	// Invoiced is the invoice service, nil unless Options.Invoiced.
	Invoiced *service.Service

	redisTemp string // a temporary directory for Redis, removed by Stop

	log      *zap.Logger
	cancel   context.CancelFunc // ends in-process nodes
	wg       sync.WaitGroup     // in-process nodes' Serve calls
	errs     chan error
	stopOnce sync.Once
	stopErr  error
}

// Start starts Postgres and the proxy nodes and returns once every node is ready: it serves a
// query as User, its admin /readyz answers 200, and with several nodes each lists all of them
// alive in GET /api/v1/cluster. On error, everything started is stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := normalize(&opts); err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	// Check the overlay before starting anything.
	if err := checkOverlay(opts.Overlay); err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	addrs, err := pickAddrs(opts)
	if err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	secret, err := newSecretKey()
	if err != nil {
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
	c := &Cluster{PG: pg, log: opts.Log, cancel: cancel, errs: make(chan error, errorsPerNode*opts.Proxies)}
	if err := c.startRedis(ctx, opts); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	if err := c.startNodes(runCtx, opts, addrs, secret); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	for _, n := range c.Nodes {
		if n.childNode() {
			if err := n.watch(); err != nil {
				return nil, errors.Join(fmt.Errorf("devcluster: %w", err), c.Stop())
			}
		}
	}
	if err := c.startInvoiced(ctx, opts); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// normalize fills defaults into opts and checks it.
func normalize(opts *Options) error {
	if opts.Groups <= 0 {
		opts.Groups = 1
	}
	if opts.Proxies <= 0 {
		opts.Proxies = 1
	}
	if opts.Replicas < 0 {
		return fmt.Errorf("replicas = %d, want >= 0", opts.Replicas)
	}
	if opts.Port < 0 || opts.Port+opts.Proxies-1 > 65535 {
		return fmt.Errorf("port %d does not fit %d proxies", opts.Port, opts.Proxies)
	}
	if opts.GossipPort < 0 || opts.GossipPort+opts.Proxies-1 > 65535 {
		return fmt.Errorf("gossip port %d does not fit %d proxies", opts.GossipPort, opts.Proxies)
	}
	if opts.Exec != "" {
		if opts.Dir == "" {
			return errors.New("Dir is required to run nodes as child processes (Exec)")
		}
		if _, err := os.Stat(opts.Exec); err != nil {
			return fmt.Errorf("shardwire binary: %w", err)
		}
	}
	if opts.Version == "" {
		opts.Version = buildinfo.Version("")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	return nil
}

// pickAddrs chooses every node's client, admin and gossip address on loopback.
func pickAddrs(opts Options) ([]nodeAddrs, error) {
	ports := newPortSet()
	addrs := make([]nodeAddrs, opts.Proxies)
	for i := range addrs {
		want := func(first int) int {
			if first == 0 {
				return 0
			}
			return first + i
		}
		pgPort, err := ports.tcp(want(opts.Port))
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", nodeName(i), err)
		}
		adminPort, err := ports.tcp(0)
		if err != nil {
			return nil, fmt.Errorf("proxy %s admin: %w", nodeName(i), err)
		}
		gossipPort, err := ports.gossip(want(opts.GossipPort))
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", nodeName(i), err)
		}
		addrs[i] = nodeAddrs{listen: hostPort(pgPort), admin: hostPort(adminPort), gossip: hostPort(gossipPort)}
	}
	return addrs, nil
}

// startNodes builds every node's configuration and starts the nodes, in this process or as
// children, without waiting for them.
func (c *Cluster) startNodes(ctx context.Context, opts Options, addrs []nodeAddrs, secret string) error {
	var proxiesDir string
	if opts.Exec != "" {
		proxiesDir = filepath.Join(opts.Dir, "proxies")
		if err := os.MkdirAll(proxiesDir, 0o755); err != nil {
			return fmt.Errorf("devcluster: %w", err)
		}
	}
	for i, a := range addrs {
		cfg, err := nodeConfig(c.PG, i, addrs, secret, opts.Overlay)
		if err != nil {
			return fmt.Errorf("devcluster: proxy %s config: %w", nodeName(i), err)
		}
		if c.Redis != nil {
			withDevCache(&cfg, c.Redis.Addr())
		}
		if opts.NodeConfig != nil {
			opts.NodeConfig(i, &cfg)
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("devcluster: proxy %s config: %w", nodeName(i), err)
			}
		}
		n := &Node{Name: cfg.NodeName, Addr: a.listen, Admin: a.admin, Gossip: a.gossip, Config: cfg, report: c.report}
		c.Nodes = append(c.Nodes, n)
		if opts.Exec == "" {
			if err := c.startInProcess(ctx, n, opts.Log, opts.Version); err != nil {
				return err
			}
			continue
		}
		n.exec = opts.Exec
		n.configPath = filepath.Join(proxiesDir, n.Name+".yaml")
		n.logPath = filepath.Join(proxiesDir, n.Name+".log")
		if err := writeConfigFile(n.configPath, cfg); err != nil {
			return fmt.Errorf("devcluster: proxy %s: %w", n.Name, err)
		}
		if err := n.start(); err != nil {
			return err
		}
	}
	return nil
}

// report delivers err on Errors, or logs it when nobody has drained the channel.
func (c *Cluster) report(err error) {
	select {
	case c.errs <- err:
	default:
		c.log.Error("devcluster: error not delivered, Errors() is full", zap.Error(err))
	}
}

// Errors delivers errors from nodes that stopped serving on their own (not via Stop, Kill or
// Cluster.Stop): an in-process node whose listener failed, a child process that exited,
// with the end of its log.
func (c *Cluster) Errors() <-chan error { return c.errs }

// Stop stops the proxy nodes (child processes with SIGTERM, waiting for each to exit), then
// Postgres. It is idempotent; later calls return the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		extrasErr := c.stopExtras()
		errs := make([]error, len(c.Nodes)+1)
		var wg sync.WaitGroup
		for i, n := range c.Nodes {
			if n.childNode() {
				wg.Go(func() { errs[i] = n.Stop() })
			}
		}
		c.cancel()
		wg.Wait()
		c.wg.Wait()
		errs[len(c.Nodes)] = c.PG.Stop()
		c.stopErr = errors.Join(append(errs, extrasErr)...)
	})
	return c.stopErr
}
