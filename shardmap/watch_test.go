package shardmap

import (
	"context"
	"fmt"
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
