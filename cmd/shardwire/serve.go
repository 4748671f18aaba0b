package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/buildinfo"
	"github.com/shardwire/shardwire/internal/logging"
	"github.com/shardwire/shardwire/node"
	"github.com/shardwire/shardwire/proxy"
)

func newServeCmd() *cobra.Command {
	var path, level string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run one proxy node",
		Long: `Run one proxy node with the configuration in FILE (see docs/config.md).

SIGHUP reloads FILE: users and pool sizes change without dropping clients; a file that does
not load is logged and the running configuration is kept. SIGINT or SIGTERM stops the node.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(level)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return serve(cmd.Context(), path, log)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// crashAtEnv names a step of two-phase commit (proxy.Step*) at which the node kills itself
// with SIGKILL: a test hook for crash recovery, never set in production.
const crashAtEnv = "SHARDWIRE_TEST_CRASH_AT"

func serve(parent context.Context, path string, log *zap.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log = log.With(zap.String("node", cfg.NodeName))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n, err := node.New(cfg, node.Options{Log: log, Registry: reg, Version: buildinfo.Version(version)})
	if err != nil {
		return err
	}
	n.Proxy().SetConfigSource(func() (config.Config, error) { return config.Load(path) }) // the console's RELOAD
	if step := os.Getenv(crashAtEnv); step != "" {
		// Tests of two-phase commit recovery: the node dies as if SIGKILLed at that step.
		log.Warn("test hook: this node kills itself at a step of its first two-phase commit", zap.String("step", step))
		n.Proxy().SetTwoPhaseHook(func(at string) {
			if at == step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		})
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		n.Close()
		return fmt.Errorf("listen: %w", err)
	}
	var adminLn net.Listener
	if cfg.AdminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			_ = ln.Close()
			n.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
	}

	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	errc := make(chan error, 1)
	go func() { errc <- n.Serve(ctx, ln, adminLn) }()
	log.Info("serving", zap.String("listen", ln.Addr().String()), zap.String("admin", cfg.AdminListen),
		zap.String("gossip", cfg.Cluster.Bind), zap.String("version", buildinfo.Version(version)))
	for {
		select {
		case <-hup:
			reload(n.Proxy(), path, log)
		case err := <-errc:
			log.Info("stopped")
			return err
		}
	}
}

// reload loads the configuration file again and applies it; failures are logged and the
// running configuration stays.
func reload(srv *proxy.Server, path string, log *zap.Logger) {
	cfg, err := config.Load(path)
	if err == nil {
		err = srv.Reload(cfg)
	}
	if err != nil {
		log.Error("reload failed; keeping the running configuration", zap.String("config", path), zap.Error(err))
		return
	}
	log.Info("reload done", zap.String("config", path))
}
