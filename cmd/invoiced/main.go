// Command invoiced is the invoice platform's HTTP JSON API (docs/invoiced.md,
// docs/openapi.yaml), talking to shardwire as if it were one Postgres database.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/internal/buildinfo"
	"github.com/shardwire/shardwire/internal/logging"
	"github.com/shardwire/shardwire/invoiceapp/service"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// envPrefix prefixes the environment variable of every flag: --max-conns is
// INVOICED_MAX_CONNS.
const envPrefix = "INVOICED_"

func main() {
	if err := newRootCmd().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "invoiced:", err)
		os.Exit(1)
	}
}

// newRootCmd returns the invoiced command.
func newRootCmd() *cobra.Command {
	cfg := service.DefaultConfig()
	level := "info"
	cmd := &cobra.Command{
		Use:   "invoiced --dsn URL",
		Short: "invoiced serves the invoice platform's HTTP JSON API over one shardwire DSN",
		Long: `invoiced serves the invoice platform's HTTP JSON API (docs/openapi.yaml) over one
database URL, a shardwire proxy. Every flag may also be set with an environment variable,
INVOICED_ and the flag's name in upper case with underscores (--max-conns: INVOICED_MAX_CONNS);
a flag given on the command line wins. SIGINT or SIGTERM stops it gracefully.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags(), os.LookupEnv)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(level)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return run(cmd.Context(), cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DSN, "dsn", cfg.DSN, "database URL: the shardwire proxy (required)")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP listen address")
	f.StringVar(&cfg.Redis, "redis", cfg.Redis, "Redis address(es, comma-separated) for cluster-wide rate limits; empty: per-instance limits")
	f.StringVar(&level, "log-level", level, "log level: debug, info, warn or error")
	f.BoolVar(&cfg.Migrate, "migrate", cfg.Migrate, "apply schema migrations and create invoices partitions at start")
	f.BoolVar(&cfg.RateLimits, "rate-limits", cfg.RateLimits, "enforce the per-customer rate limits of each tier")
	f.Int32Var(&cfg.MaxConns, "max-conns", cfg.MaxConns, "database pool size")
	f.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long to wait for the database at start")
	f.DurationVar(&cfg.MaintenanceInterval, "maintenance-interval", cfg.MaintenanceInterval, "time between partition maintenance and idempotency-key pruning runs")
	f.IntVar(&cfg.MonthsAhead, "months-ahead", cfg.MonthsAhead, "months after the current one with invoices partitions ready")
	f.DurationVar(&cfg.IdempotencyTTL, "idempotency-ttl", cfg.IdempotencyTTL, "how long idempotency keys are kept at least")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long shutdown waits for requests in flight")
	f.IntVar(&cfg.DemoCustomers, "demo-customers", cfg.DemoCustomers, "load this many demo customers (ids 1..N) at start")
	cmd.AddCommand(buildinfo.Command("invoiced", version))
	return cmd
}

// applyEnv sets every flag not given on the command line from its environment variable.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	return err
}

// run starts the service and stops it on SIGINT or SIGTERM.
func run(parent context.Context, cfg service.Config, log *zap.Logger) error {
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	svc, err := service.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-svc.Done():
		log.Error("HTTP server stopped", zap.Error(err))
		_ = svc.Shutdown(context.Background())
		return fmt.Errorf("http server: %w", err)
	}
	return svc.Shutdown(context.Background())
}
