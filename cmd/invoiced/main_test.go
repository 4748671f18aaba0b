package main

import (
	"testing"
	"time"

	"github.com/shardwire/shardwire/invoiceapp/service"
)

func TestFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{
		"INVOICED_DSN":                  "postgres://from-env",
		"INVOICED_LISTEN":               "127.0.0.1:9999",
		"INVOICED_MAX_CONNS":            "7",
		"INVOICED_MIGRATE":              "false",
		"INVOICED_MAINTENANCE_INTERVAL": "1h",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cmd := newRootCmd()
	// The command line wins over the environment.
	if err := cmd.Flags().Parse([]string{"--listen", ":7000", "--redis", "r1:6379,r2:6379"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd.Flags(), lookup); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	want := map[string]string{
		"dsn": "postgres://from-env", "listen": ":7000", "redis": "r1:6379,r2:6379", "max-conns": "7",
		"migrate": "false", "maintenance-interval": "1h0m0s", "rate-limits": "true", "log-level": "info",
		"idempotency-ttl": (24 * time.Hour).String(), "months-ahead": "3", "demo-customers": "0",
	}
	for name, v := range want {
		if got := get(name); got != v {
			t.Errorf("--%s = %q, want %q", name, got, v)
		}
	}
	env["INVOICED_MAX_CONNS"] = "many"
	cmd = newRootCmd()
	if err := applyEnv(cmd.Flags(), lookup); err == nil {
		t.Error("a bad INVOICED_MAX_CONNS was accepted")
	}
	def := service.DefaultConfig()
	if def.Listen != "127.0.0.1:8080" || !def.Migrate || !def.RateLimits {
		t.Errorf("defaults %+v", def)
	}
}

func TestRunNeedsDSN(t *testing.T) {
	cmd := newRootCmd()
	cmd.SetArgs([]string{"--log-level", "error"})
	t.Setenv("INVOICED_DSN", "")
	if err := cmd.Execute(); err == nil {
		t.Fatal("ran without a DSN")
	}
}
