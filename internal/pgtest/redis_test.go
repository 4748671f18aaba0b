package pgtest_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardwire/shardwire/internal/pgtest"
)

func TestRedisKillAndRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := pgtest.NewRedis(t)
	if !r.Running() {
		t.Fatal("Running() = false after NewRedis")
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })

	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := r.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("Start while running: err = %v, want 'already running'", err)
	}

	port := r.Port
	if err := r.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if r.Running() {
		t.Fatal("Running() = true after Kill")
	}
	err := rdb.Ping(ctx).Err()
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// The pooled connection may report the reset first; a fresh dial is refused.
		err = rdb.Ping(ctx).Err()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("PING after Kill: err = %v, want connection refused", err)
	}

	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if r.Port != port {
		t.Fatalf("port changed across restart: %d -> %d", port, r.Port)
	}
	waitFor(ctx, t, "PING after restart", func(ctx context.Context) (bool, error) {
		err := rdb.Ping(ctx).Err()
		return err == nil, err
	})
	// Nothing is persisted: a restarted server is empty.
	if n, err := rdb.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after restart = %d, %v; want 0 (no persistence)", n, err)
	}

	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if r.Running() {
		t.Fatal("Running() = true after Stop")
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Stop succeeded")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		// The pool may hold a connection to the stopped server; retry once.
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING after Start: %v", err)
		}
	}
}

func TestStartRedisFixedPortAndErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pgtest.StartRedis(ctx, pgtest.RedisOptions{}); err == nil {
		t.Fatal("StartRedis without Dir succeeded")
	}

	first := pgtest.NewRedis(t)
	// A second server on a taken port fails with the server's log in the error.
	_, err := pgtest.StartRedis(ctx, pgtest.RedisOptions{Dir: t.TempDir(), Port: first.Port})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("StartRedis on a taken port: err = %v, want 'Address already in use'", err)
	}
}

func TestStartRedisMissingBinary(t *testing.T) {
	// Not parallel: it changes PATH for the process.
	t.Setenv("PATH", t.TempDir())
	_, err := pgtest.StartRedis(context.Background(), pgtest.RedisOptions{Dir: t.TempDir()})
	if !errors.Is(err, pgtest.ErrNoRedisServer) || !strings.Contains(err.Error(), "apt-get install -y redis-server") {
		t.Fatalf("StartRedis without redis-server: err = %v, want the apt command", err)
	}
}
