package shardmap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Listener timings.
const (
	// listenBackoffMin and listenBackoffMax bound the wait between two attempts to (re)open
	// the listening connection; the wait doubles after each failed attempt.
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 2 * time.Second
	// listenProbeEvery is how long the listening connection may stay quiet before it is
	// pinged: a cut network shows no error by itself, and a dead connection hears nothing.
	listenProbeEvery = 15 * time.Second
)

// listener keeps a LISTEN on EpochChannel open on a connection of its own to the catalog
// database, and wakes the watcher for every notification. It only says "look now": it never
// reads the map and never renews a lease; the poll it triggers does both.
type listener struct {
	cat     *Catalog
	log     *zap.Logger
	wake    chan<- struct{} // room for one; sends never block
	timeout time.Duration   // bounds connecting, LISTEN and a probe
	probe   time.Duration   // quiet time before a probe

	backoffMin, backoffMax time.Duration // the wait between attempts
}

// newListener returns a listener with the package's timings.
func newListener(cat *Catalog, log *zap.Logger, wake chan<- struct{}, timeout time.Duration) *listener {
	return &listener{
		cat: cat, log: log, wake: wake, timeout: timeout, probe: listenProbeEvery,
		backoffMin: listenBackoffMin, backoffMax: listenBackoffMax,
	}
}

// run listens until ctx ends, reopening the connection after any failure with a backoff that
// doubles up to backoffMax. A run of failures is logged once as a warning when it begins
// and once when listening works again. run returns after closing its connection.
func (l *listener) run(ctx context.Context) {
	backoff := l.backoffMin
	failing := false
	established := func() {
		backoff = l.backoffMin
		if failing {
			failing = false
			l.log.Info("listening for shard map epochs again", zap.String("channel", EpochChannel))
		}
	}
	for {
		err := l.session(ctx, established)
		if ctx.Err() != nil {
			return
		}
		if !failing {
			failing = true
			l.log.Warn("shard map epoch listener failed; polling continues, retrying",
				zap.String("channel", EpochChannel), zap.Error(err), zap.Duration("backoff", backoff))
		} else {
			l.log.Debug("shard map epoch listener failed again", zap.Error(err), zap.Duration("backoff", backoff))
		}
		wait := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
		backoff = min(2*backoff, l.backoffMax)
	}
}

// session opens a connection, listens on EpochChannel, calls established, and then wakes the
// watcher once (notifications may have been missed while nobody listened) and again for each
// notification, until the connection fails or ctx ends. It returns why it stopped.
func (l *listener) session(ctx context.Context, established func()) error {
	step, cancel := context.WithTimeout(ctx, l.timeout)
	conn, err := l.cat.listenConn(step)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closing, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closing)
	}()
	step, cancel = context.WithTimeout(ctx, l.timeout)
	_, err = conn.Exec(step, "LISTEN "+pgx.Identifier{EpochChannel}.Sanitize())
	cancel()
	if err != nil {
		return fmt.Errorf("listen on %s: %w", EpochChannel, err)
	}
	established()
	l.signal()
	for {
		quiet, cancel := context.WithTimeout(ctx, l.probe)
		n, err := conn.WaitForNotification(quiet)
		cancel()
		switch {
		case err == nil:
			l.log.Debug("shard map epoch notified", zap.String("payload", n.Payload))
			l.signal()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			l.log.Debug("probing the quiet listening connection")
			probe, cancel := context.WithTimeout(ctx, l.timeout)
			err := conn.Ping(probe)
			cancel()
			if err != nil {
				return fmt.Errorf("probe the listening connection: %w", err)
			}
		default:
			return fmt.Errorf("wait for notifications on %s: %w", EpochChannel, err)
		}
	}
}

// signal wakes the watcher, or does nothing when a wake-up is already pending.
func (l *listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}
