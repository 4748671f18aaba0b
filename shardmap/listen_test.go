package shardmap

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// listeners counts the catalog's listening connections (by their application_name).
func listeners(ctx context.Context, t *testing.T, cat *Catalog) int {
	t.Helper()
	var n int
	err := cat.read(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
			cat.cfg.RuntimeParams["application_name"]+"-listen").Scan(&n)
	})
	if err != nil {
		t.Fatalf("count listeners: %v", err)
	}
	return n
}

// notify sends a notification on EpochChannel through cat, as Publish does.
func notify(ctx context.Context, t *testing.T, cat *Catalog, payload string) {
	t.Helper()
	err := cat.read(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", EpochChannel, payload)
		return err
	})
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
}

// received waits up to within for a wake-up on wake.
func received(t *testing.T, wake <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-wake:
	case <-time.After(within):
		t.Fatalf("no wake-up within %v for %s", within, what)
	}
}

func TestListener(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	admin := openCatalog(ctx, t, srv.AppDSN(), "")
	cat := openCatalog(ctx, t, srv.AppDSN(), "")

	core, logs := observer.New(zapcore.DebugLevel)
	wake := make(chan struct{}, 1)
	l := newListener(cat, zap.New(core), wake, time.Second)
	l.probe = 20 * time.Millisecond // so that the quiet connection is probed while we wait
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(runCtx)
	}()
	defer func() {
		stop()
		<-done
	}()

	// Opening the connection wakes the watcher (it may have missed notifications), and so
	// does every notification after that.
	received(t, wake, 5*time.Second, "the listener connecting")
	notify(ctx, t, admin, "7")
	received(t, wake, time.Second, "a notification")

	// A quiet connection is probed, and probing leaves it listening.
	waitFor(ctx, t, "a few probes", func() bool {
		return logs.FilterMessage("probing the quiet listening connection").Len() >= 3
	})
	notify(ctx, t, admin, "probed")
	received(t, wake, time.Second, "a notification after probes")
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
		t.Errorf("warnings while the catalog is up: %v", logs.FilterLevelExact(zapcore.WarnLevel).All())
	}

	// Several notifications while the watcher is busy leave one wake-up, and sending never
	// blocks the listener.
	for range 5 {
		notify(ctx, t, admin, "burst")
	}
	waitFor(ctx, t, "the burst to be heard", func() bool {
		return logs.FilterMessage("shard map epoch notified").FilterField(zap.String("payload", "burst")).Len() == 5
	})
	received(t, wake, time.Second, "the burst")
	select {
	case <-wake:
		t.Error("a burst of notifications left more than one wake-up")
	default:
	}

	// The catalog server goes away: the failure is logged once as a warning however many
	// retries fail, and listening resumes when it is back.
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "several failed reconnections", func() bool {
		return logs.FilterMessage("shard map epoch listener failed again").Len() >= 3
	})
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("%d warnings for one run of listener failures, want 1: %v", n, logs.FilterLevelExact(zapcore.WarnLevel).All())
	}
	select {
	case <-wake:
	default:
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	received(t, wake, 5*time.Second, "the listener reconnecting after the restart")
	if n := logs.FilterMessage("listening for shard map epochs again").Len(); n != 1 {
		t.Errorf("%d 'listening again' logs after the restart, want 1", n)
	}
	notify(ctx, t, admin, "8")
	received(t, wake, time.Second, "a notification after the restart")
	if got := listeners(ctx, t, admin); got != 1 {
		t.Errorf("%d listening sessions, want 1", got)
	}

	// Stopping closes the connection and ends run.
	stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener did not stop when its context ended")
	}
	waitFor(ctx, t, "the listening session to end", func() bool { return listeners(ctx, t, admin) == 0 })
}

func TestListenerBackoff(t *testing.T) {
	t.Parallel()
	// A catalog on a port nobody listens on: every attempt fails at once, so only the
	// backoff spaces the attempts.
	cfg, err := pgx.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	cat := &Catalog{cfg: cfg, schema: DefaultSchema, log: zap.NewNop(), turn: make(chan struct{}, 1)}
	core, logs := observer.New(zapcore.DebugLevel)
	wake := make(chan struct{}, 1)
	l := newListener(cat, zap.New(core), wake, time.Second)
	l.backoffMin, l.backoffMax = time.Millisecond, 8*time.Millisecond

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(runCtx)
	}()
	waitFor(ctx, t, "seven failed attempts", func() bool { return logs.Len() >= 7 })
	stop()
	<-done

	var got []time.Duration
	for _, e := range logs.All()[:7] {
		got = append(got, e.ContextMap()["backoff"].(time.Duration))
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8, 8}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backoffs %v, want %v (doubling, capped)", got, want)
	}
	if warns := logs.FilterLevelExact(zapcore.WarnLevel).Len(); warns != 1 {
		t.Errorf("%d warnings for one run of failures, want 1", warns)
	}
	select {
	case <-wake:
		t.Error("a listener that never connected woke the watcher")
	default:
	}
}
