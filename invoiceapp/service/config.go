package service

import (
	"errors"
	"fmt"
	"time"
)

// Config is one invoiced instance's configuration.
type Config struct {
	// DSN is the database URL: a shardwire proxy (or one plain Postgres). Required.
	DSN string
	// Listen is the HTTP address; port 0 picks a free port (see Service.Addr).
	Listen string
	// Redis is the address of the Redis shared by every instance for rate limits, several
	// separated by commas for Redis Cluster; "" limits each instance on its own.
	Redis string
	// RateLimits enables the per-customer limits.
	RateLimits bool
	// Migrate applies the schema migrations and partition maintenance at start.
	Migrate bool
	// MaxConns sizes the pgx pool.
	MaxConns int32
	// ConnectTimeout is how long Start waits for the database to answer at first.
	ConnectTimeout time.Duration
	// MaintenanceInterval is the time between two runs of partition maintenance and
	// idempotency-key pruning (the first runs at start).
	MaintenanceInterval time.Duration
	// MonthsAhead is how many months after the current one have invoices partitions ready.
	MonthsAhead int
	// IdempotencyTTL is how long idempotency keys are kept at least.
	IdempotencyTTL time.Duration
	// ShutdownTimeout bounds the wait for requests in flight at shutdown.
	ShutdownTimeout time.Duration
	// DemoCustomers, when positive, loads that many demo customers at start (LoadDemo).
	DemoCustomers int
}

// DefaultConfig returns the defaults cmd/invoiced's flags start from.
func DefaultConfig() Config {
	return Config{
		Listen:              "127.0.0.1:8080",
		RateLimits:          true,
		Migrate:             true,
		MaxConns:            32,
		ConnectTimeout:      30 * time.Second,
		MaintenanceInterval: 12 * time.Hour,
		MonthsAhead:         3,
		IdempotencyTTL:      24 * time.Hour,
		ShutdownTimeout:     15 * time.Second,
	}
}

// validate checks c.
func (c Config) validate() error {
	switch {
	case c.DSN == "":
		return errors.New("a DSN is required")
	case c.MaxConns < 1:
		return fmt.Errorf("max conns = %d, want >= 1", c.MaxConns)
	case c.MaintenanceInterval <= 0:
		return fmt.Errorf("maintenance interval = %s, want > 0", c.MaintenanceInterval)
	case c.MonthsAhead < 0:
		return fmt.Errorf("months ahead = %d, want >= 0", c.MonthsAhead)
	case c.IdempotencyTTL < time.Hour:
		return fmt.Errorf("idempotency TTL = %s, want >= 1h", c.IdempotencyTTL)
	case c.DemoCustomers < 0:
		return fmt.Errorf("demo customers = %d, want >= 0", c.DemoCustomers)
	}
	return nil
}
