package cdc

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shardwire/shardwire/cache"
)

func TestDefaultSlotName(t *testing.T) {
	long := strings.Repeat("x", 80)
	cases := []struct {
		db, want string
	}{
		{"app", "shardwire_cache_app"},
		{"invoice_2", "shardwire_cache_invoice_2"},
		{"App", "shardwire_cache_app_"},     // hash appended
		{"my-db", "shardwire_cache_my_db_"}, // hash appended
		{long, "shardwire_cache_" + long[:63-9-16] + "_"},
	}
	for _, tc := range cases {
		got := DefaultSlotName(tc.db)
		if strings.HasSuffix(tc.want, "_") {
			if !strings.HasPrefix(got, tc.want) || len(got) != len(tc.want)+8 {
				t.Errorf("DefaultSlotName(%q) = %q, want %q followed by 8 hex digits", tc.db, got, tc.want)
			}
		} else if got != tc.want {
			t.Errorf("DefaultSlotName(%q) = %q, want %q", tc.db, got, tc.want)
		}
		if !validName(got) {
			t.Errorf("DefaultSlotName(%q) = %q is not a valid slot name", tc.db, got)
		}
	}
	// Names that sanitize alike stay distinct.
	if a, b := DefaultSlotName("a-b"), DefaultSlotName("a.b"); a == b {
		t.Errorf("DefaultSlotName(a-b) = DefaultSlotName(a.b) = %q", a)
	}
	if a, b := DefaultSlotName("App"), DefaultSlotName("app"); a == b {
		t.Errorf("DefaultSlotName(App) = DefaultSlotName(app) = %q", a)
	}
}

func TestLockKey(t *testing.T) {
	a := lockKey("app", "shardwire_cache_app")
	if a != lockKey("app", "shardwire_cache_app") {
		t.Fatal("lockKey is not deterministic")
	}
	for _, other := range []int64{lockKey("app2", "shardwire_cache_app"), lockKey("app", "other"), lockKey("ap", "pshardwire_cache_app")} {
		if other == a {
			t.Errorf("lockKey collision: %d", a)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	valid := func() Config {
		return Config{
			Group: "g0", Database: "app",
			Connect:            func(context.Context) (*pgconn.PgConn, error) { return nil, nil },
			ConnectReplication: func(context.Context) (*pgconn.PgConn, error) { return nil, nil },
			KeyColumn:          func(string) (string, bool) { return "", false },
			Cacheable:          func(string) bool { return false },
			Bump:               func(context.Context, string, uint64, []cache.Touch) error { return nil },
		}
	}
	cfg, err := valid().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SlotName != "shardwire_cache_app" || cfg.PublicationName != DefaultPublicationName ||
		cfg.Retry != DefaultRetry || cfg.Log == nil || cfg.Metrics == nil {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	cases := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no group", func(c *Config) { c.Group = "" }, "Group"},
		{"no database", func(c *Config) { c.Database = "" }, "Database"},
		{"no connect", func(c *Config) { c.Connect = nil }, "Connect"},
		{"no replication connect", func(c *Config) { c.ConnectReplication = nil }, "ConnectReplication"},
		{"no key column", func(c *Config) { c.KeyColumn = nil }, "KeyColumn"},
		{"no cacheable", func(c *Config) { c.Cacheable = nil }, "Cacheable"},
		{"no bump", func(c *Config) { c.Bump = nil }, "Bump"},
		{"negative retry", func(c *Config) { c.Retry = -1 }, "Retry"},
		{"bad slot", func(c *Config) { c.SlotName = "Slot" }, "SlotName"},
		{"quote in publication", func(c *Config) { c.PublicationName = "a'b" }, "PublicationName"},
		{"long slot", func(c *Config) { c.SlotName = strings.Repeat("s", 64) }, "SlotName"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.modify(&cfg)
			_, err := cfg.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
			if err := Run(context.Background(), cfg); err == nil {
				t.Fatal("Run accepted an invalid config")
			}
		})
	}
}

func TestNewMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := NewMetrics(reg), NewMetrics(reg)
	a.txns.WithLabelValues("g0").Inc()
	b.txns.WithLabelValues("g0").Inc()
	if got := testutil.ToFloat64(a.txns.WithLabelValues("g0")); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
	b.leader.WithLabelValues("g0", "app").Set(1)
	n, err := testutil.GatherAndCount(reg, "shardwire_cache_feed_leader", "shardwire_cache_feed_transactions_total")
	if err != nil || n != 2 {
		t.Fatalf("gathered %d series (err %v), want 2", n, err)
	}
}
