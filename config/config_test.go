package config

import (
	"strings"
	"testing"
	"time"
)

const minimal = `
users: [{name: app, password: app}]
groups: [{name: g0, writer: "127.0.0.1:5432"}]
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pool.Mode != PoolModeTransaction || c.Pool.DefaultPoolSize != 25 || c.MaxClientConn != 10000 ||
		c.Pool.QueryWaitTimeout.D() != 120*time.Second || c.AuthType != "scram-sha-256" || c.Listen != "127.0.0.1:6432" {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestParseOverrides(t *testing.T) {
	c, err := Parse([]byte(minimal + `
pool: {mode: session, default_pool_size: 10, query_wait_timeout: 5s, reserve_pool_size: 2}
databases: [{name: app, pool_mode: statement, pool_size: 3}, {name: other, backend_name: real}]
`))
	if err != nil {
		t.Fatal(err)
	}
	db, ok := c.Database("app")
	if !ok || db.BackendName != "app" || c.PoolSizeFor(db) != 3 {
		t.Fatalf("database app: %+v", db)
	}
	u, _ := c.User("app")
	if m := c.ModeFor(db, u); m != PoolModeStatement {
		t.Fatalf("mode for app = %s", m)
	}
	other, _ := c.Database("other")
	if other.BackendName != "real" || c.PoolSizeFor(other) != 10 || c.ModeFor(other, u) != PoolModeSession {
		t.Fatalf("database other: %+v", other)
	}
	if _, ok := c.Database("missing"); ok {
		t.Fatal("unknown database accepted although databases are listed")
	}
	if c.Pool.QueryWaitTimeout.D() != 5*time.Second {
		t.Fatal("duration not parsed")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", minimal + "listn: x\n", "listn"},
		{"unknown nested key", minimal + "pool: {default_pool_sise: 3}\n", "default_pool_sise"},
		{"bad duration", minimal + "pool: {query_wait_timeout: soon}\n", "soon"},
		{"bad pool mode", minimal + "pool: {mode: bursty}\n", "bursty"},
		{"no users", `groups: [{name: g0, writer: "127.0.0.1:5432"}]`, "users"},
		{"no groups", `users: [{name: app, password: app}]`, "groups"},
		{"writer without port", "users: [{name: app, password: app}]\ngroups: [{name: g0, writer: db}]\n", "writer"},
		{"duplicate user", "users: [{name: a, password: x}, {name: a, password: y}]\ngroups: [{name: g0, writer: \"h:1\"}]\n", "duplicate"},
		{"verifier without server password", "users: [{name: a, password: \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"}]\ngroups: [{name: g0, writer: \"h:1\"}]\n", "server_password"},
		{"min above size", minimal + "pool: {default_pool_size: 2, min_pool_size: 3}\n", "min_pool_size"},
		{"tls half set", minimal + "tls: {cert_file: a.pem}\n", "tls"},
		{"bad auth type", minimal + "auth_type: trust\n", "auth_type"},
		{"tiny message limit", minimal + "max_message_size: 10\n", "max_message_size"},
		{"region of an unknown replica", "users: [{name: a, password: x}]\ngroups: [{name: g0, writer: \"h:1\", replicas: [\"h:2\"], replica_regions: {\"h:3\": west}}]\n", "replica_regions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestMoves(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Moves.BufferTimeout.D() != 10*time.Second || c.Moves.BufferLimit != 10000 || c.Moves.Grace.D() != time.Second {
		t.Fatalf("moves defaults not applied: %+v", c.Moves)
	}
	c, err = Parse([]byte(minimal + "moves: {buffer_timeout: 3s, buffer_limit: 50, grace: 250ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Moves.BufferTimeout.D() != 3*time.Second || c.Moves.BufferLimit != 50 || c.Moves.Grace.D() != 250*time.Millisecond {
		t.Fatalf("moves overrides not applied: %+v", c.Moves)
	}
	if c, err = Parse([]byte(minimal + "moves: {grace: 0s}\n")); err != nil || c.Moves.Grace != 0 {
		t.Fatalf("grace 0 (fail open transactions at once) refused: %v", err)
	}
	cases := []struct{ name, yaml, want string }{
		{"zero buffer timeout", "moves: {buffer_timeout: 0s}\n", "buffer_timeout"},
		{"negative buffer timeout", "moves: {buffer_timeout: -1s}\n", "buffer_timeout"},
		{"zero buffer limit", "moves: {buffer_limit: 0}\n", "buffer_limit"},
		{"negative grace", "moves: {grace: -5ms}\n", "grace"},
		{"unknown key", "moves: {buffer_size: 3}\n", "buffer_size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
