package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/httpapi"
	"github.com/shardwire/shardwire/invoiceapp/migrations"
	"github.com/shardwire/shardwire/invoiceapp/ratelimit"
)

// Service is a running invoiced.
type Service struct {
	cfg    Config
	log    *zap.Logger
	pool   *pgxpool.Pool
	rdb    redis.UniversalClient
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc // ends the maintenance loop
	wg     sync.WaitGroup
	served chan error // Serve's result

	stopOnce sync.Once
	stopErr  error
}

// Start connects to the database, migrates it (when cfg.Migrate), loads demo data (when
// asked), and serves HTTP; it returns once the listener is open. Stop it with Shutdown.
// log may be nil. Metrics go to a registry of the Service's own, served at /metrics.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invoiced: %w", err)
	}
	s := &Service{cfg: cfg, log: log, served: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			s.closeClients()
		}
	}()
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("invoiced: dsn: %w", err)
	}
	pcfg.MaxConns = cfg.MaxConns
	if s.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("invoiced: pool: %w", err)
	}
	if err := s.waitForDatabase(ctx); err != nil {
		return nil, err
	}
	if cfg.Migrate {
		applied, err := migrations.Apply(ctx, s.pool, log)
		if err != nil {
			return nil, fmt.Errorf("invoiced: %w", err)
		}
		log.Info("schema up to date", zap.Ints("applied", applied))
		if err := invoiceapp.MaintainPartitions(ctx, s.pool, time.Now(), cfg.MonthsAhead); err != nil {
			return nil, fmt.Errorf("invoiced: %w", err)
		}
	}
	if cfg.DemoCustomers > 0 {
		start := time.Now()
		if err := invoiceapp.LoadDemo(ctx, s.pool, cfg.DemoCustomers); err != nil {
			return nil, fmt.Errorf("invoiced: %w", err)
		}
		log.Info("demo data loaded", zap.Int("customers", cfg.DemoCustomers), zap.Duration("took", time.Since(start)))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var limiter httpapi.Limiter
	if cfg.RateLimits {
		if cfg.Redis != "" {
			s.rdb = redis.NewUniversalClient(&redis.UniversalOptions{
				Addrs: strings.Split(cfg.Redis, ","), ContextTimeoutEnabled: true,
			})
		}
		limiter = ratelimit.New(s.rdb, ratelimit.Options{Logger: log, Registerer: reg})
	}
	store := invoiceapp.NewStore(s.pool, invoiceapp.StoreOptions{Log: log})
	api, err := httpapi.New(httpapi.Options{
		Store: store, Limiter: limiter, Registerer: reg, Log: log, Health: s.ping,
	})
	if err != nil {
		return nil, fmt.Errorf("invoiced: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", api)
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("invoiced: listen: %w", err)
	}
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.served <- err
	}()
	mctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.maintain(mctx) })
	log.Info("invoiced listening", zap.String("addr", s.Addr()), zap.Bool("rate_limits", cfg.RateLimits),
		zap.Bool("redis", s.rdb != nil))
	ok = true
	return s, nil
}

// Addr returns the address the HTTP server listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Pool returns the Service's database pool.
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// Done delivers Serve's error if the HTTP server stops on its own (nil after Shutdown).
func (s *Service) Done() <-chan error { return s.served }

// Shutdown stops accepting requests, waits up to cfg.ShutdownTimeout (or ctx) for those in
// flight, stops maintenance and closes the pool and Redis client. It is idempotent.
func (s *Service) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if err != nil {
			err = errors.Join(fmt.Errorf("invoiced: shutdown: %w", err), s.srv.Close())
		}
		s.cancel()
		s.wg.Wait()
		s.closeClients()
		s.stopErr = err
	})
	return s.stopErr
}

// closeClients closes the pool and the Redis client.
func (s *Service) closeClients() {
	if s.pool != nil {
		s.pool.Close()
	}
	if s.rdb != nil {
		if err := s.rdb.Close(); err != nil {
			s.log.Warn("closing the redis client", zap.Error(err))
		}
	}
}

// ping checks that the database answers through the proxy.
func (s *Service) ping(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "SELECT 1")
	return err
}

// waitForDatabase retries ping until it succeeds or cfg.ConnectTimeout passes: at start the
// proxy may still be coming up.
func (s *Service) waitForDatabase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	for {
		err := s.ping(ctx)
		if err == nil {
			return nil
		}
		s.log.Info("waiting for the database", zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("invoiced: database did not answer within %s: %w", s.cfg.ConnectTimeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// maintain runs partition maintenance and idempotency-key pruning every
// cfg.MaintenanceInterval until ctx ends (the partitions of the first run were made by Start).
func (s *Service) maintain(ctx context.Context) {
	t := time.NewTicker(s.cfg.MaintenanceInterval)
	defer t.Stop()
	first := true
	for {
		if !first || !s.cfg.Migrate {
			if err := invoiceapp.MaintainPartitions(ctx, s.pool, time.Now(), s.cfg.MonthsAhead); err != nil && ctx.Err() == nil {
				s.log.Error("partition maintenance failed", zap.Error(err))
			}
		}
		first = false
		if n, err := invoiceapp.PruneIdempotencyKeys(ctx, s.pool, s.cfg.IdempotencyTTL); err != nil && ctx.Err() == nil {
			s.log.Error("pruning idempotency keys failed", zap.Error(err))
		} else if n > 0 {
			s.log.Info("pruned idempotency keys", zap.Int64("deleted", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
