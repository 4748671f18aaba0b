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
	// Registerer receives the watcher's metrics:
	//   - shardwire_shardmap_epoch (gauge): the store's epoch;
	//   - shardwire_shardmap_reloads_total{result="ok"|"error"} (counter): maps loaded and
	//     set, and failed polls or loads;
	//   - shardwire_shardmap_polls_total{trigger="timer"|"hint"|"notify"} (counter): polls
	//     made, by what started them (the first poll counts as a timer poll);
	//   - shardwire_shardmap_lease_age_seconds (gauge, only when Lease is set): the lease's
	//     Status().Age.
	// Collectors already registered there by an earlier Watch are reused (so the lease age
	// is the first registering Watch's lease: give each node its own registry). Nil: no
	// metrics.
	Registerer prometheus.Registerer
	// Timeout bounds one poll (the epoch query plus, when needed, the load), and each step of
	// the listener (connect, LISTEN, a liveness probe). Default 5s.
	Timeout time.Duration
	// Lease, when set, is renewed after every poll that succeeded and left the store holding
	// the catalog's current epoch, with the time that poll started. A failed poll, an epoch
	// that failed to load or validate, a catalog holding no epoch, or a catalog behind the
	// store (a restored or rolled-back catalog: the node's map is not the catalog's) renews
	// nothing, so the lease runs out.
	Lease *Lease
	// Hints, when set, asks for a poll now: each value received starts one as soon as the
	// current poll (if any) ends, and hints that pile up meanwhile make one poll, not several.
	// Senders should not block: send into a channel with room for one, with select/default.
	// Watch only receives; a closed channel is ignored from then on.
	Hints <-chan struct{}
	// Listen, when true, makes Watch also LISTEN on EpochChannel over a connection of its own
	// to the catalog's database; every notification starts a poll, as does every (re)opening
	// of that connection, since notifications may have been missed meanwhile. A listener
	// failure is logged once per run of failures, retried with a backoff capped at 2s, and
	// never stops the polls; a connection quiet for 15s is pinged, so that a cut network is
	// noticed too. The listener never renews the lease by itself. Its connection (named
	// after the catalog's application_name plus "-listen") lives until ctx ends, whatever
	// happens to the Catalog.
	Listen bool
}

// DefaultWatchTimeout is WatchOptions.Timeout's default.
const DefaultWatchTimeout = 5 * time.Second

// Reload results, the values of shardwire_shardmap_reloads_total's result label.
const (
	ReloadOK    = "ok"
	ReloadError = "error"
)

// Poll triggers, the values of shardwire_shardmap_polls_total's trigger label.
const (
	// TriggerTimer: the poll interval elapsed (and the first poll, at start).
	TriggerTimer = "timer"
	// TriggerHint: a value on WatchOptions.Hints.
	TriggerHint = "hint"
	// TriggerNotify: a notification on EpochChannel, or the listener (re)connecting.
	TriggerNotify = "notify"
)

// Watch keeps store up to date with the catalog until ctx ends: right away and then every
// `every`, it asks the catalog for its highest epoch (one cheap query) and, when that is
// higher than the store's (or the store holds the epoch-0 bootstrap map or none), loads that
// map and sets it. Hints and, with opts.Listen, notifications on EpochChannel start extra
// polls at once; they do not move the timer. A failure — catalog down, a map that fails
// validation — is logged and counted, and the next poll tries again; a catalog server that
// restarts is reconnected to. opts.Lease, when set, is renewed by the polls that confirm the
// store holds the catalog's epoch (see WatchOptions.Lease).
//
// Watch returns nil when ctx ends, after its listener (if any) has closed its connection, and
// an error only when it cannot start (every not positive, metrics that cannot be registered).
// log may be nil.
func Watch(ctx context.Context, cat *Catalog, store *Store, every time.Duration, log *zap.Logger, opts WatchOptions) error {
	if every <= 0 {
		return fmt.Errorf("shard map watch: poll interval %v must be positive", every)
	}
	if log == nil {
		log = zap.NewNop()
	}
	w := &watcher{cat: cat, store: store, log: log, timeout: opts.Timeout, lease: opts.Lease}
	if w.timeout <= 0 {
		w.timeout = DefaultWatchTimeout
	}
	if err := w.metrics(opts.Registerer); err != nil {
		return fmt.Errorf("shard map watch: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}
	var notified chan struct{}
	if opts.Listen {
		notified = make(chan struct{}, 1)
		l := newListener(cat, log, notified, w.timeout)
		listening := make(chan struct{})
		go func() {
			defer close(listening)
			l.run(ctx)
		}()
		defer func() { <-listening }()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	triggers := &triggers{tick: tick.C, hints: opts.Hints, notified: notified}
	for trigger := TriggerTimer; ; {
		w.step(ctx, trigger)
		var ok bool
		if trigger, ok = triggers.next(ctx); !ok {
			return nil
		}
	}
}

// triggers are what starts a poll.
type triggers struct {
	tick     <-chan time.Time
	hints    <-chan struct{} // nil: none, or closed
	notified <-chan struct{} // nil: not listening
}

// next waits for the next poll's trigger and returns it, or reports false when ctx ended.
func (t *triggers) next(ctx context.Context) (string, bool) {
	for {
		select {
		case <-ctx.Done():
			return "", false
		case <-t.tick:
			return TriggerTimer, true
		case _, ok := <-t.hints:
			if !ok {
				t.hints = nil // closed: nothing more will come
				continue
			}
			drain(t.hints)
			return TriggerHint, true
		case <-t.notified:
			return TriggerNotify, true
		}
	}
}

// drain empties ch of the values already in it, so that a burst of hints makes one poll.
func drain(ch <-chan struct{}) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// watchWarnEvery spaces out the warnings of a catalog that keeps failing.
const watchWarnEvery = time.Minute

// watcher is one Watch's state; only its goroutine touches it.
type watcher struct {
	cat     *Catalog
	store   *Store
	log     *zap.Logger
	timeout time.Duration
	lease   *Lease // nil: none

	epoch   prometheus.Gauge
	ok, bad prometheus.Counter
	polls   *prometheus.CounterVec

	failures     int       // consecutive failed polls
	lastWarn     time.Time // of the current run of failures
	behindWarned int64     // catalog epoch last warned about as behind the store
	leaseLapsed  bool      // the lapse of the lease has been logged
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
	polls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardwire_shardmap_polls_total",
		Help: "Shard map catalog polls made, by trigger: timer (the poll interval), hint (a peer announced an epoch), notify (a catalog notification or the listener reconnecting).",
	}, []string{"trigger"})
	if reg != nil {
		var err error
		if epoch, err = register(reg, epoch); err != nil {
			return err
		}
		if reloads, err = register(reg, reloads); err != nil {
			return err
		}
		if polls, err = register(reg, polls); err != nil {
			return err
		}
		if w.lease != nil {
			lease := w.lease
			age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "shardwire_shardmap_lease_age_seconds",
				Help: "Time since this node last confirmed its shard map against the catalog (since start when it never did); routed work is refused once it reaches the lease TTL.",
			}, func() float64 { return lease.Status().Age.Seconds() })
			if _, err = register[prometheus.Collector](reg, age); err != nil {
				return err
			}
		}
	}
	for _, t := range []string{TriggerTimer, TriggerHint, TriggerNotify} {
		polls.WithLabelValues(t) // present from the start, at 0
	}
	w.epoch = epoch
	w.ok = reloads.WithLabelValues(ReloadOK)
	w.bad = reloads.WithLabelValues(ReloadError)
	w.polls = polls
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

// step polls once, renews the lease when the poll confirmed the store, and records the
// outcome.
func (w *watcher) step(ctx context.Context, trigger string) {
	started := time.Now()
	catalogEpoch, err := w.poll(ctx)
	if err != nil && ctx.Err() != nil {
		return // shutting down: not a catalog failure
	}
	w.polls.WithLabelValues(trigger).Inc()
	cur := w.store.Current()
	if cur != nil {
		w.epoch.Set(float64(cur.Epoch))
	}
	if err == nil && cur != nil && catalogEpoch > 0 && cur.Epoch == catalogEpoch {
		w.lease.Renew(started)
	}
	w.watchLease()
	if err == nil {
		if w.failures > 0 {
			w.log.Info("shard map catalog polls succeed again", zap.Int("failed_polls", w.failures))
			w.failures = 0
		}
		return
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

// watchLease logs the lease lapsing and being regained, once each.
func (w *watcher) watchLease() {
	if w.lease == nil {
		return
	}
	st := w.lease.Status()
	switch {
	case !st.Valid && !w.leaseLapsed:
		w.leaseLapsed = true
		w.log.Warn("shard map lease lapsed: routed work is refused until the catalog confirms the map",
			zap.Duration("ttl", st.TTL), zap.Duration("age", st.Age))
	case st.Valid && w.leaseLapsed:
		w.leaseLapsed = false
		w.log.Info("shard map lease renewed", zap.Time("renewed_at", st.RenewedAt))
	}
}

// poll asks the catalog for its epoch and loads and sets the map when it is newer. It returns
// the catalog's highest epoch as the poll saw it (that of the map loaded, when one was).
func (w *watcher) poll(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	latest, err := w.cat.Epoch(ctx)
	if err != nil {
		return 0, err
	}
	var have int64
	if cur := w.store.Current(); cur != nil {
		have = cur.Epoch
	}
	if latest <= have {
		if latest < have && latest != w.behindWarned {
			w.behindWarned = latest
			w.log.Warn("shard map catalog is behind this node; keeping the current map, not renewing the lease",
				zap.Int64("catalog_epoch", latest), zap.Int64("node_epoch", have))
		}
		return latest, nil
	}
	m, err := w.cat.Load(ctx)
	if err != nil {
		return 0, err
	}
	if w.store.Set(m) {
		w.log.Info("loaded shard map", zap.Int64("epoch", m.Epoch), zap.Int64("previous_epoch", have))
	}
	w.ok.Inc()
	return m.Epoch, nil
}
