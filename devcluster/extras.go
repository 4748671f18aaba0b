package devcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/invoiceapp/service"
)

// invoicedStopTimeout bounds the graceful stop of the invoice service.
const invoicedStopTimeout = 10 * time.Second

// startRedis starts Redis, when asked and installed, before the proxies (their cache uses it).
func (c *Cluster) startRedis(ctx context.Context, opts Options) error {
	if opts.Redis {
		dir := filepath.Join(opts.Dir, "redis")
		if opts.Dir == "" {
			tmp, err := os.MkdirTemp("", "devcluster-redis-")
			if err != nil {
				return fmt.Errorf("devcluster: redis: %w", err)
			}
			dir, c.redisTemp = tmp, tmp
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("devcluster: redis: %w", err)
		}
		r, err := pgtest.StartRedis(ctx, pgtest.RedisOptions{Dir: dir})
		switch {
		case errors.Is(err, pgtest.ErrNoRedisServer):
			c.log.Warn("redis-server is not installed: running without Redis (no result cache; rate limits per invoiced instance)", zap.Error(err))
		case err != nil:
			return fmt.Errorf("devcluster: %w", err)
		default:
			c.Redis = r
		}
	}
	return nil
}

// startInvoiced starts the invoice service, when asked, once the proxies are ready, pointed
// at the first node.
func (c *Cluster) startInvoiced(ctx context.Context, opts Options) error {
	if opts.Invoiced {
		cfg := service.DefaultConfig()
		cfg.DSN = c.Nodes[0].DSN()
		cfg.Listen = fmt.Sprintf("127.0.0.1:%d", opts.InvoicedPort)
		cfg.DemoCustomers = opts.DemoCustomers
		if c.Redis != nil {
			cfg.Redis = c.Redis.Addr()
		}
		svc, err := service.Start(ctx, cfg, opts.Log.Named("invoiced"))
		if err != nil {
			return fmt.Errorf("devcluster: %w", err)
		}
		c.Invoiced = svc
		go func() {
			if err := <-svc.Done(); err != nil {
				c.report(fmt.Errorf("invoiced: %w", err))
			}
		}()
	}
	return nil
}

// stopExtras stops the invoice service, then Redis.
func (c *Cluster) stopExtras() error {
	var errs []error
	if c.Invoiced != nil {
		ctx, cancel := context.WithTimeout(context.Background(), invoicedStopTimeout)
		errs = append(errs, c.Invoiced.Shutdown(ctx))
		cancel()
	}
	if c.Redis != nil {
		ctx, cancel := context.WithTimeout(context.Background(), invoicedStopTimeout)
		errs = append(errs, c.Redis.Stop(ctx))
		cancel()
	}
	if c.redisTemp != "" {
		errs = append(errs, os.RemoveAll(c.redisTemp))
	}
	return errors.Join(errs...)
}
