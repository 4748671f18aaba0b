package shardmap

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// waitFor polls cond until it holds, failing the test when ctx ends first.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// metric returns the value of a gauge or counter (with the given label pairs) in reg, or -1.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func TestWatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := pgtest.New(t, pgtest.Options{}).Groups[0].Writer

	// The node starts from its configuration's map and a catalog bootstrapped by another node.
	boot := configMap(t, w.Addr())
	admin := openCatalog(ctx, t, w.AppDSN(), "shardwire")
	if _, err := admin.Bootstrap(ctx, boot, "p1"); err != nil {
		t.Fatal(err)
	}
	store := NewStore(boot)
	var seen []int64
	store.Subscribe(func(m *Map) { seen = append(seen, m.Epoch) })
	epoch := func() int64 { return store.Current().Epoch }

	node := openCatalog(ctx, t, w.AppDSN(), "shardwire")
	reg := prometheus.NewRegistry()
	const every = 20 * time.Millisecond
	watchCtx, stopWatch := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Watch(watchCtx, node, store, every, zaptest.NewLogger(t), WatchOptions{Registerer: reg, Timeout: time.Second})
	}()
	defer func() {
		stopWatch()
		<-done
	}()

	waitFor(ctx, t, "the catalog's epoch 1 replacing the bootstrap map", func() bool { return epoch() == 1 })

	// An epoch published by another catalog arrives within a few polls.
	if _, err := admin.Publish(ctx, 1, moved(boot, "g-two"), "shardctl", "test"); err != nil {
		t.Fatal(err)
	}
	deadline, cancelDeadline := context.WithTimeout(ctx, 50*every)
	waitFor(deadline, t, "epoch 2", func() bool { return epoch() == 2 })
	cancelDeadline()
	if got := store.Current().GroupIndex("g-two"); got < 0 {
		t.Errorf("the store's epoch-2 map lacks the new group: %+v", store.Current())
	}
	waitFor(ctx, t, "the epoch gauge at 2", func() bool { return metric(t, reg, "shardwire_shardmap_epoch") == 2 })
	if ok := metric(t, reg, "shardwire_shardmap_reloads_total", "result", "ok"); ok != 2 {
		t.Errorf("reloads ok = %v, want 2", ok)
	}

	// The catalog server goes away: polls fail, are counted, and the map stays.
	failedBefore := metric(t, reg, "shardwire_shardmap_reloads_total", "result", "error")
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "failed polls to be counted", func() bool {
		return metric(t, reg, "shardwire_shardmap_reloads_total", "result", "error") >= failedBefore+3
	})
	if epoch() != 2 {
		t.Errorf("epoch %d after the catalog went away, want 2", epoch())
	}

	// It comes back; a new epoch published there reaches the node.
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Publish(ctx, 2, moved(boot, "g-three"), "shardctl", "after restart"); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	waitFor(ctx, t, "epoch 3 after the restart", func() bool { return epoch() == 3 })
	if got := store.Current().GroupIndex("g-three"); got < 0 {
		t.Errorf("the store's epoch-3 map lacks the new group: %+v", store.Current())
	}

	// A map in the catalog that fails validation is refused and counted; the next good one
	// is taken.
	failedBefore = metric(t, reg, "shardwire_shardmap_reloads_total", "result", "error")
	bad := fmt.Sprintf(`INSERT INTO shardwire.map_epochs (epoch, created_by, reason, map) VALUES (4, 'test', 'bad', %s)`,
		`'{"groups": []}'`)
	if err := admin.read(ctx, func(conn *pgx.Conn) error { _, err := conn.Exec(ctx, bad); return err }); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the invalid epoch 4 to be counted as a failure", func() bool {
		return metric(t, reg, "shardwire_shardmap_reloads_total", "result", "error") > failedBefore
	})
	if epoch() != 3 {
		t.Errorf("epoch %d after an invalid epoch 4, want 3", epoch())
	}
	if _, err := admin.Publish(ctx, 4, moved(boot, "g-five"), "shardctl", "fix"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "epoch 5", func() bool { return epoch() == 5 })

	stopWatch()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v, want nil", err)
		}
		done <- nil // for the deferred receive
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
	if want := []int64{1, 2, 3, 5}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("subscriber saw epochs %v, want %v", seen, want)
	}
}

func TestWatchSetupErrors(t *testing.T) {
	ctx := context.Background()
	if err := Watch(ctx, nil, NewStore(nil), 0, nil, WatchOptions{}); err == nil {
		t.Error("Watch with no interval: no error")
	}
	// A registry holding a different collector under the watcher's metric name.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "shardwire_shardmap_epoch", Help: "x"}))
	if err := Watch(ctx, nil, NewStore(nil), time.Second, nil, WatchOptions{Registerer: reg}); err == nil {
		t.Error("Watch with a clashing metric: no error")
	}
	// A second Watch on the same registry reuses the first one's collectors.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	reg = prometheus.NewRegistry()
	for i := range 2 {
		if err := Watch(ended, nil, NewStore(nil), time.Second, nil, WatchOptions{Registerer: reg}); err != nil {
			t.Errorf("Watch #%d on a shared registry: %v", i+1, err)
		}
	}
	if v := metric(t, reg, "shardwire_shardmap_reloads_total", "result", "error"); v != 0 {
		t.Errorf("reloads error = %v on a fresh registry, want 0", v)
	}
}

// watchNode runs Watch for one node in the background until the test ends, and returns its
// store, registry and a function that stops it and reports how Watch returned.
type watchNode struct {
	store *Store
	reg   *prometheus.Registry
	stop  func() error
}

func startWatch(ctx context.Context, t *testing.T, cat *Catalog, store *Store, every time.Duration, opts WatchOptions) *watchNode {
	t.Helper()
	n := &watchNode{store: store, reg: prometheus.NewRegistry()}
	opts.Registerer = n.reg
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	watchCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Watch(watchCtx, cat, store, every, zaptest.NewLogger(t), opts) }()
	var once sync.Once
	var err error
	n.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				err = fmt.Errorf("Watch did not return within 5s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = n.stop() })
	return n
}

func (n *watchNode) epoch() int64 { return n.store.Current().Epoch }

func (n *watchNode) polls(t *testing.T, trigger string) float64 {
	t.Helper()
	return metric(t, n.reg, "shardwire_shardmap_polls_total", "trigger", trigger)
}

// within waits for cond for at most d.
func within(ctx context.Context, t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	waitFor(ctx, t, what+" within "+d.String(), cond)
}

// bootstrapped returns the configuration map and a catalog bootstrapped with it at epoch 1.
func bootstrapped(ctx context.Context, t *testing.T, srv *pgtest.Server) (*Map, *Catalog) {
	t.Helper()
	boot := configMap(t, srv.Addr())
	admin := openCatalog(ctx, t, srv.AppDSN(), "")
	if _, err := admin.Bootstrap(ctx, boot, "p1"); err != nil {
		t.Fatal(err)
	}
	return boot, admin
}

func TestWatchHints(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	boot, admin := bootstrapped(ctx, t, srv)

	// A hint before Watch starts: ten of them pile up while the first poll runs.
	hints := make(chan struct{}, 10)
	for range 10 {
		hints <- struct{}{}
	}
	node := startWatch(ctx, t, openCatalog(ctx, t, srv.AppDSN(), ""), NewStore(boot), time.Minute, WatchOptions{Hints: hints})
	waitFor(ctx, t, "the piled-up hints to be taken", func() bool { return len(hints) == 0 && node.polls(t, TriggerHint) >= 1 })
	if got := node.polls(t, TriggerHint); got != 1 {
		t.Errorf("ten piled-up hints made %v polls, want 1", got)
	}
	if node.epoch() != 1 {
		t.Fatalf("epoch %d after the first polls, want 1", node.epoch())
	}

	// With a poll interval of a minute, only the hint can bring epoch 2 in within a second.
	if _, err := admin.Publish(ctx, 1, moved(boot, "g-two"), "shardctl", "hint"); err != nil {
		t.Fatal(err)
	}
	select {
	case hints <- struct{}{}:
	default:
		t.Fatal("hint channel full")
	}
	within(ctx, t, time.Second, "epoch 2 after a hint", func() bool { return node.epoch() == 2 })
	if got := node.polls(t, TriggerTimer); got != 1 {
		t.Errorf("%v timer polls, want 1 (the first)", got)
	}
	if err := node.stop(); err != nil {
		t.Errorf("Watch: %v", err)
	}

	// A closed hint channel is ignored: it neither spins the loop nor stops the watch.
	closed := make(chan struct{})
	close(closed)
	other := startWatch(ctx, t, openCatalog(ctx, t, srv.AppDSN(), ""), NewStore(boot), time.Minute,
		WatchOptions{Hints: closed, Listen: true})
	waitFor(ctx, t, "the listener's first poll", func() bool { return other.polls(t, TriggerNotify) >= 1 })
	if _, err := admin.Publish(ctx, 2, moved(boot, "g-three"), "shardctl", "closed hints"); err != nil {
		t.Fatal(err)
	}
	within(ctx, t, time.Second, "epoch 3 with closed hints", func() bool { return other.epoch() == 3 })
	if got := other.polls(t, TriggerHint); got != 0 {
		t.Errorf("a closed hint channel made %v polls, want 0", got)
	}
}

func TestWatchListen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	boot, admin := bootstrapped(ctx, t, srv)

	node := startWatch(ctx, t, openCatalog(ctx, t, srv.AppDSN(), ""), NewStore(boot), time.Minute, WatchOptions{Listen: true})
	// The listener's connecting makes one poll; after it, only a notification can start
	// another within the minute.
	waitFor(ctx, t, "the listener's first poll", func() bool { return node.polls(t, TriggerNotify) == 1 })
	if node.epoch() != 1 {
		t.Fatalf("epoch %d, want 1", node.epoch())
	}
	if _, err := admin.Publish(ctx, 1, moved(boot, "g-two"), "shardctl", "listen"); err != nil {
		t.Fatal(err)
	}
	within(ctx, t, time.Second, "epoch 2 through LISTEN", func() bool { return node.epoch() == 2 })
	if got := node.polls(t, TriggerNotify); got != 2 {
		t.Errorf("%v notify polls, want 2 (connect, notification)", got)
	}

	// The catalog restarts: the listener reconnects (one poll), and then hears the next
	// epoch's notification.
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the listener to reconnect", func() bool { return node.polls(t, TriggerNotify) == 3 })
	if _, err := admin.Publish(ctx, 2, moved(boot, "g-three"), "shardctl", "after restart"); err != nil {
		t.Fatal(err)
	}
	within(ctx, t, time.Second, "epoch 3 through LISTEN after the restart", func() bool { return node.epoch() == 3 })
	if got := node.polls(t, TriggerTimer); got != 1 {
		t.Errorf("%v timer polls, want 1 (the first)", got)
	}

	// Watch ends cleanly and takes its listening connection with it.
	if n := listeners(ctx, t, admin); n != 1 {
		t.Errorf("%d listening connections while watching, want 1", n)
	}
	if err := node.stop(); err != nil {
		t.Errorf("Watch: %v", err)
	}
	waitFor(ctx, t, "the listening session to end", func() bool { return listeners(ctx, t, admin) == 0 })
}

func TestWatchLease(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	boot, admin := bootstrapped(ctx, t, srv)

	const (
		every = 25 * time.Millisecond
		ttl   = 400 * time.Millisecond
	)
	lease := NewLease(ttl)
	node := startWatch(ctx, t, openCatalog(ctx, t, srv.AppDSN(), ""), NewStore(boot), every, WatchOptions{Lease: lease, Listen: true})
	waitFor(ctx, t, "the lease to be granted", lease.Valid)
	if node.epoch() != 1 {
		t.Fatalf("epoch %d with a valid lease, want 1", node.epoch())
	}
	if age := metric(t, node.reg, "shardwire_shardmap_lease_age_seconds"); age < 0 || age >= ttl.Seconds() {
		t.Errorf("lease age metric %v with a valid lease, want within [0, %v)", age, ttl.Seconds())
	}

	// A node whose store is ahead of the catalog (a catalog restored from a backup) polls
	// successfully but never holds a lease.
	ahead := NewLease(time.Hour)
	aheadNode := startWatch(ctx, t, openCatalog(ctx, t, srv.AppDSN(), ""), NewStore(withEpoch(boot, 99)), every, WatchOptions{Lease: ahead})
	waitFor(ctx, t, "a few polls", func() bool { return aheadNode.polls(t, TriggerTimer) >= 3 })
	if ahead.Valid() || aheadNode.epoch() != 99 {
		t.Errorf("a store ahead of the catalog: lease %+v, epoch %d; want no lease, epoch 99", ahead.Status(), aheadNode.epoch())
	}
	if err := aheadNode.stop(); err != nil {
		t.Error(err)
	}

	// A newer epoch that fails validation: polls reach the catalog, but the lease lapses
	// and the map stays.
	bad := `INSERT INTO shardwire.map_epochs (epoch, created_by, reason, map) VALUES (2, 'test', 'bad', '{"groups": []}')`
	if err := admin.read(ctx, func(conn *pgx.Conn) error { _, err := conn.Exec(ctx, bad); return err }); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the lease to lapse behind an invalid epoch", func() bool { return !lease.Valid() })
	if node.epoch() != 1 {
		t.Errorf("epoch %d after an invalid epoch 2, want 1", node.epoch())
	}
	if _, err := admin.Publish(ctx, 2, moved(boot, "g-three"), "shardctl", "fix"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "epoch 3 and the lease back", func() bool { return node.epoch() == 3 && lease.Valid() })

	// The catalog goes away: the lease runs out, the map stays (the listener, failing,
	// renews nothing).
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now() // no poll starting after this can succeed
	waitFor(ctx, t, "the lease to expire with the catalog down", func() bool { return !lease.Valid() })
	st := lease.Status()
	if st.Valid || st.RenewedAt.After(stopped) || st.Age < ttl {
		t.Errorf("lease status with the catalog down %+v, want lapsed, renewed before %v", st, stopped)
	}
	if age := metric(t, node.reg, "shardwire_shardmap_lease_age_seconds"); age < ttl.Seconds() {
		t.Errorf("lease age metric %v with a lapsed lease, want >= %v", age, ttl.Seconds())
	}
	if node.epoch() != 3 {
		t.Errorf("epoch %d with the catalog down, want 3 (kept)", node.epoch())
	}

	// It comes back: the lease is renewed, and an epoch published then is loaded.
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if _, err := admin.Publish(ctx, 3, moved(boot, "g-four"), "shardctl", "after restart"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "epoch 4 and the lease back after the restart", func() bool { return node.epoch() == 4 && lease.Valid() })
	if st := lease.Status(); st.RenewedAt.Before(restarted.Add(-time.Second)) {
		t.Errorf("lease renewed at %v, before the restart at %v", st.RenewedAt, restarted)
	}
	if err := node.stop(); err != nil {
		t.Errorf("Watch: %v", err)
	}
}

func TestWatchSharedRegistryWithLease(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	reg := prometheus.NewRegistry()
	lease := NewLease(time.Hour)
	lease.Renew(time.Now().Add(-time.Minute))
	for i := range 2 {
		opts := WatchOptions{Registerer: reg, Lease: NewLease(time.Hour)}
		if i == 0 {
			opts.Lease = lease
		}
		if err := Watch(ended, nil, NewStore(nil), time.Second, nil, opts); err != nil {
			t.Errorf("Watch #%d with a lease on a shared registry: %v", i+1, err)
		}
	}
	if age := metric(t, reg, "shardwire_shardmap_lease_age_seconds"); age < 60 || age > 120 {
		t.Errorf("lease age %v, want the first lease's age (about 60s)", age)
	}
	for _, trigger := range []string{TriggerTimer, TriggerHint, TriggerNotify} {
		if v := metric(t, reg, "shardwire_shardmap_polls_total", "trigger", trigger); v != 0 {
			t.Errorf("polls_total{trigger=%q} = %v on a watch that never polled, want 0", trigger, v)
		}
	}
}
