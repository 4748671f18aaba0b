package shardmap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// WatchOptions holds Watch's optional settings.
type WatchOptions struct {
	// Registerer receives the watcher's metrics: shardwire_shardmap_epoch (gauge, the store's
	// epoch) and shardwire_shardmap_reloads_total{result="ok"|"error"} (counter: maps loaded
	// and set, and failed polls or loads). Collectors already registered there by an earlier
	// Watch are reused. Nil: no metrics.
	Registerer prometheus.Registerer
	// Timeout bounds one poll (the epoch query plus, when needed, the load). Default 5s.
	Timeout time.Duration
}

// DefaultWatchTimeout is WatchOptions.Timeout's default.
const DefaultWatchTimeout = 5 * time.Second

// Reload results, the values of shardwire_shardmap_reloads_total's result label.
const (
	ReloadOK    = "ok"
	ReloadError = "error"
)

// Watch keeps store up to date with the catalog until ctx ends: right away and then every
// `every`, it asks the catalog for its highest epoch (one cheap query) and, when that is
// higher than the store's (or the store holds the epoch-0 bootstrap map or none), loads that
// map and sets it. A failure — catalog down, a map that fails validation — is logged and
// counted, and the next poll tries again; a catalog server that restarts is reconnected to.
//
// Watch returns nil when ctx ends, and an error only when it cannot start (every not positive,
// metrics that cannot be registered). log may be nil.
func Watch(ctx context.Context, cat *Catalog, store *Store, every time.Duration, log *zap.Logger, opts WatchOptions) error {
	if every <= 0 {
		return fmt.Errorf("shard map watch: poll interval %v must be positive", every)
	}
	if log == nil {
		log = zap.NewNop()
	}
	w := &watcher{cat: cat, store: store, log: log, timeout: opts.Timeout}
	if w.timeout <= 0 {
		w.timeout = DefaultWatchTimeout
	}
	if err := w.metrics(opts.Registerer); err != nil {
		return fmt.Errorf("shard map watch: %w", err)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for ctx.Err() == nil {
		w.step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	return nil
}

// watchWarnEvery spaces out the warnings of a catalog that keeps failing.
const watchWarnEvery = time.Minute

// watcher is one Watch's state; only its goroutine touches it.
type watcher struct {
	cat     *Catalog
	store   *Store
	log     *zap.Logger
	timeout time.Duration

	epoch   prometheus.Gauge
	ok, bad prometheus.Counter

	failures     int       // consecutive failed polls
	lastWarn     time.Time // of the current run of failures
	behindWarned int64     // catalog epoch last warned about as behind the store
}

// metrics creates (or reuses) the watcher's collectors in reg; with a nil reg they count
// into the void.
func (w *watcher) metrics(reg prometheus.Registerer) error {
	epoch := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shardwire_shardmap_epoch",
		Help: "Epoch of the shard map this node holds (0: the bootstrap map from the configuration).",
	})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardwire_shardmap_reloads_total",
		Help: "Shard map reloads from the catalog by result: ok (a newer map loaded and set), error (a failed poll or load).",
	}, []string{"result"})
	if reg != nil {
		var err error
		if epoch, err = register(reg, epoch); err != nil {
			return err
		}
		if reloads, err = register(reg, reloads); err != nil {
			return err
		}
	}
	w.epoch = epoch
	w.ok = reloads.WithLabelValues(ReloadOK)
	w.bad = reloads.WithLabelValues(ReloadError)
	return nil
}

// register registers c, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if prev, ok := already.ExistingCollector.(C); ok {
			return prev, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

// step polls once and records the outcome.
func (w *watcher) step(ctx context.Context) {
	err := w.poll(ctx)
	if cur := w.store.Current(); cur != nil {
		w.epoch.Set(float64(cur.Epoch))
	}
	if err == nil {
		if w.failures > 0 {
			w.log.Info("shard map catalog polls succeed again", zap.Int("failed_polls", w.failures))
			w.failures = 0
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down: not a catalog failure
	}
	w.bad.Inc()
	w.failures++
	if w.failures == 1 || time.Since(w.lastWarn) >= watchWarnEvery {
		w.lastWarn = time.Now()
		w.log.Warn("shard map catalog poll failed; keeping the current map", zap.Error(err), zap.Int("failed_polls", w.failures))
	} else {
		w.log.Debug("shard map catalog poll failed", zap.Error(err), zap.Int("failed_polls", w.failures))
	}
}

// poll asks the catalog for its epoch and loads and sets the map when it is newer.
func (w *watcher) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	latest, err := w.cat.Epoch(ctx)
	if err != nil {
		return err
	}
	var have int64
	if cur := w.store.Current(); cur != nil {
		have = cur.Epoch
	}
	if latest <= have {
		if latest < have && latest != w.behindWarned {
			w.behindWarned = latest
			w.log.Warn("shard map catalog is behind this node; keeping the current map",
				zap.Int64("catalog_epoch", latest), zap.Int64("node_epoch", have))
		}
		return nil
	}
	m, err := w.cat.Load(ctx)
	if err != nil {
		return err
	}
	if w.store.Set(m) {
		w.log.Info("loaded shard map", zap.Int64("epoch", m.Epoch), zap.Int64("previous_epoch", have))
	}
	w.ok.Inc()
	return nil
}
