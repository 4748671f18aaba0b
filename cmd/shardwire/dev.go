package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/devcluster"
	"github.com/shardwire/shardwire/internal/buildinfo"
	"github.com/shardwire/shardwire/internal/logging"
)

// devStartTimeout bounds bringing the local cluster up.
const devStartTimeout = 5 * time.Minute

func newDevCmd() *cobra.Command {
	var (
		opts    devcluster.Options
		overlay string
		level   string
	)
	cmd := &cobra.Command{
		Use:   "dev --dir DIR",
		Short: "Run a local cluster: Postgres groups and proxy nodes on loopback",
		Long: `Run a local cluster in the foreground: G shard groups of real Postgres (a writer and R
streaming replicas each, from the binaries on PATH) and P proxy nodes gossiping with each other
on loopback. Each node is a child process running "shardwire serve" with a generated
configuration, DIR/proxies/pN.yaml, and logs to DIR/proxies/pN.log. Node i takes client port
--port+i and gossip port --gossip-port+i (0: free ports); admin ports are free ports. When
every node answers a query, is ready and sees all the others alive, it writes
DIR/cluster.json and prints one line. SIGINT or SIGTERM stops everything.

Beside the proxies it starts Redis (when redis-server is installed; DIR/redis) and the invoice
service invoiced on --invoiced-port, pointed at the first node, with --demo-customers demo
customers; cluster.json lists both ("redis", "invoiced").

--config FILE is YAML merged over the generated proxy configuration (maps merge key by key,
lists replace), e.g. "pool: {mode: session, default_pool_size: 10}". It must not set listen,
admin_listen or cluster.bind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(level)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			if overlay != "" {
				if opts.Overlay, err = os.ReadFile(overlay); err != nil {
					return fmt.Errorf("--config: %w", err)
				}
			}
			if opts.Exec, err = os.Executable(); err != nil {
				return fmt.Errorf("find the shardwire binary to run nodes: %w", err)
			}
			opts.Version = buildinfo.Version(version)
			opts.Log = log
			opts.Logf = func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) }
			return runDev(cmd.Context(), opts, cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "directory for the cluster's files (Postgres data in DIR/pg, node configs and logs in DIR/proxies, DIR/cluster.json)")
	f.IntVar(&opts.Groups, "groups", 1, "shard groups")
	f.IntVar(&opts.Replicas, "replicas", 0, "streaming replicas per group")
	f.IntVar(&opts.Proxies, "proxies", 3, "proxy nodes, each a child process")
	f.IntVar(&opts.Port, "port", 6432, "first proxy node's client port")
	f.IntVar(&opts.GossipPort, "gossip-port", 0, "first proxy node's gossip port (TCP and UDP); 0 picks free ports")
	f.BoolVar(&opts.Redis, "redis", true, "start redis-server beside the proxies when it is installed")
	f.BoolVar(&opts.Invoiced, "invoiced", true, "run the invoice service against the first proxy node")
	f.IntVar(&opts.InvoicedPort, "invoiced-port", 8080, "the invoice service's HTTP port (0: a free port)")
	f.IntVar(&opts.DemoCustomers, "demo-customers", 200, "demo customers the invoice service loads at start")
	f.StringVar(&overlay, "config", "", "YAML overlay merged into the generated proxy configuration")
	f.StringVar(&level, "log-level", "warn", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func runDev(parent context.Context, opts devcluster.Options, cmd *cobra.Command) error {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	opts.Dir = dir
	infoPath := filepath.Join(dir, "cluster.json")
	// A stale file from an earlier run must not look like a ready cluster.
	if err := os.Remove(infoPath); err != nil && !os.IsNotExist(err) {
		return err
	}

	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, devStartTimeout)
	c, err := devcluster.Start(startCtx, opts)
	cancel()
	if err != nil {
		return err
	}
	if err := c.WriteInfo(infoPath); err != nil {
		return joinStop(err, c)
	}
	proxies := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		proxies[i] = fmt.Sprintf("%s=%s (pid %d, gossip %s)", n.Name, n.Addr, n.PID(), n.Gossip)
	}
	opts.Log.Info("dev cluster ready", zap.Strings("proxies", proxies), zap.String("cluster_file", infoPath),
		zap.String("node_logs", filepath.Join(dir, "proxies")))
	fmt.Fprintf(cmd.OutOrStdout(), "shardwire dev: ready, %d group(s), %d proxy node(s); psql %q; cluster file %s\n",
		len(c.PG.Groups), len(c.Nodes), strings.TrimSuffix(c.Nodes[0].DSN(), "?sslmode=disable"), infoPath)
	if c.Invoiced != nil {
		fmt.Fprintf(cmd.OutOrStdout(), "shardwire dev: invoiced on http://%s (try GET /v1/customers/1/summary)\n", c.Invoiced.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-c.Errors():
		if ctx.Err() != nil {
			// Ctrl-C in a terminal reaches the nodes too (they share its process group), and
			// one may have stopped before this process saw the signal: that is no failure.
			runErr = nil
		}
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "shardwire dev: stopping")
	_ = os.Remove(infoPath)
	return joinStop(runErr, c)
}

func joinStop(err error, c *devcluster.Cluster) error {
	if serr := c.Stop(); serr != nil {
		if err == nil {
			return fmt.Errorf("stop: %w", serr)
		}
		return fmt.Errorf("%w; stop: %v", err, serr)
	}
	return err
}
