package pool

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/internal/pgtest"
)

func newTestPool(t *testing.T, cl *pgtest.Cluster, tweak func(*Config)) *Pool {
	t.Helper()
	cfg := Config{
		Addr: cl.Groups[0].Writer.Addr(), Database: pgtest.Database, User: pgtest.User, Password: pgtest.Password,
		Size: 2, ConnectTimeout: 5 * time.Second, MaxPrepared: 10, ReserveTimeout: time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func waitStats(t *testing.T, p *Pool, what string, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(p.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPoolKnobs(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 1})
	ctx := context.Background()

	t.Run("min_pool_size is kept open", func(t *testing.T) {
		p := newTestPool(t, cl, func(c *Config) { c.MinSize = 2 })
		waitStats(t, p, "two idle connections", func(s Stats) bool { return s.Idle == 2 })
	})

	t.Run("wait timeout", func(t *testing.T) {
		p := newTestPool(t, cl, func(c *Config) { c.Size = 1 })
		c1, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := p.Acquire(wctx); !errors.Is(err, ErrWaitTimeout) {
			t.Fatalf("got %v, want ErrWaitTimeout", err)
		}
		// A waiter gets the connection handed over on release.
		got := make(chan *Conn, 1)
		go func() {
			c, _ := p.Acquire(ctx)
			got <- c
		}()
		waitStats(t, p, "a waiter", func(s Stats) bool { return s.Waiting == 1 })
		p.Release(c1)
		select {
		case c := <-got:
			if c != c1 {
				t.Fatal("waiter did not get the released connection")
			}
			p.Release(c)
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not served")
		}
	})

	t.Run("reserve opens after reserve_pool_timeout", func(t *testing.T) {
		p := newTestPool(t, cl, func(c *Config) {
			c.Size, c.ReserveSize, c.ReserveTimeout = 1, 1, 150*time.Millisecond
		})
		c1, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c2, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("reserve used after %s, before reserve_pool_timeout", d)
		}
		if s := p.Stats(); s.Active != 2 {
			t.Fatalf("stats %+v", s)
		}
		p.Release(c1)
		p.Release(c2) // over the base size: closed, not kept
		waitStats(t, p, "back to the base size", func(s Stats) bool { return s.Active == 0 && s.Idle == 1 })
	})

	t.Run("idle timeout and lifetime close connections", func(t *testing.T) {
		p := newTestPool(t, cl, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.Release(c)
		waitStats(t, p, "the idle connection closed", func(s Stats) bool { return s.Idle == 0 && s.Closed == 1 })

		q := newTestPool(t, cl, func(c *Config) { c.Lifetime = 200 * time.Millisecond })
		c, err = q.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
		q.Release(c) // too old: closed at release
		if s := q.Stats(); s.Idle != 0 || s.Closed != 1 {
			t.Fatalf("old connection kept: %+v", s)
		}
	})

	t.Run("a dead idle connection is not handed out", func(t *testing.T) {
		p := newTestPool(t, cl, nil)
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pid := c.PID()
		p.Release(c)
		admin, err := pgconnConnect(ctx, cl.Groups[0].Writer.SuperDSN(pgtest.Database))
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		if err := admin.Exec(ctx, "select pg_terminate_backend("+itoa(pid)+")").Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the liveness check applies to connections idle over 1s
		c2, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c2.PID() == pid {
			t.Fatal("pool handed out a connection whose backend was terminated")
		}
		p.Release(c2)
	})

	t.Run("resize", func(t *testing.T) {
		p := newTestPool(t, cl, func(c *Config) { c.Size = 1 })
		c1, _ := p.Acquire(ctx)
		got := make(chan error, 1)
		go func() {
			c, err := p.Acquire(ctx)
			if err == nil {
				p.Release(c)
			}
			got <- err
		}()
		waitStats(t, p, "a waiter", func(s Stats) bool { return s.Waiting == 1 })
		p.Resize(2, 0, 0)
		if err := <-got; err != nil {
			t.Fatalf("waiter after resize: %v", err)
		}
		p.Release(c1)
	})
}
