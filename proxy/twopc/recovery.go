package twopc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/internal/ctxwait"
)

// ErrClosed is returned by Pass after Close.
var ErrClosed = errors.New("two-phase recovery is closed")

// RecoveryConfig configures a Recovery. Zero durations take their defaults.
type RecoveryConfig struct {
	// Interval is the time between two passes of Run. Default 1s.
	Interval time.Duration
	// AbortAfter is how long a record may stay in "prepare" (since Begin, by the catalog's
	// clock) before the recovery takes its coordinator for dead or stuck and aborts it;
	// also how old (by its group's clock) a prepared transaction without a record must be
	// before it is rolled back. It must exceed the longest time a live coordinator takes
	// from Begin to its decision. Default 10s.
	AbortAfter time.Duration
	// Retention is how long an "abort" record is kept after the decision, so that a late
	// PREPARE TRANSACTION (from a killed coordinator's backend) still finds its decision
	// and is rolled back at once. Default 1m.
	Retention time.Duration
	// Timeout bounds each step of a pass on the catalog or on one group (connecting,
	// scanning, finishing one branch). Default 5s.
	Timeout time.Duration
	// Groups returns the names of the shard groups to scan, those of the current shard map;
	// the groups named by records are scanned too. Required; called once per pass.
	Groups func() []string
	// Node is this proxy node's name, for the logs.
	Node string
	// Since, when set, is when this node's process began coordinating, by the catalog's
	// clock (Log.Now before serving): a record of Node created before it belongs to an
	// earlier process of this node, which is dead, so it is aborted at once instead of after
	// AbortAfter. Node names must then be unique among live processes.
	Since time.Time
}

// Defaults of RecoveryConfig.
const (
	DefaultRecoveryInterval = time.Second
	DefaultAbortAfter       = 10 * time.Second
	DefaultRetention        = time.Minute
	DefaultRecoveryTimeout  = 5 * time.Second
)

// Report is what one Pass did.
type Report struct {
	// Leader reports whether this node held the leadership; when false, the pass did
	// nothing else.
	Leader bool `json:"leader"`
	// InDoubt counts the shardwire prepared transactions found on the groups scanned.
	InDoubt int `json:"in_doubt"`
	// Committed and RolledBack count the branches finished with COMMIT PREPARED and
	// ROLLBACK PREPARED.
	Committed  int `json:"committed"`
	RolledBack int `json:"rolled_back"`
	// Aborted counts the records in "prepare" past AbortAfter that this pass decided abort.
	Aborted int `json:"aborted"`
	// Forgotten counts the records deleted from the log, every branch being resolved.
	Forgotten int `json:"forgotten"`
	// Unreachable lists the groups that could not be scanned.
	Unreachable []string `json:"unreachable,omitempty"`
}

// Recovery resolves the prepared transactions that coordinators leave behind. Every proxy
// node runs one; one at a time, the leader, acts. Two recoveries acting at once (a leader
// that lost its catalog connection in the middle of a pass) would not break atomicity —
// decisions are compare-and-set in the log, and finishing a branch twice fails harmlessly
// — only do work twice.
//
// Pass and Close are serialized; InDoubt may run beside them.
type Recovery struct {
	dlog      *Log
	connector Connector
	cfg       RecoveryConfig
	lockKey   int64
	log       *zap.Logger
	metrics   *metrics

	// passMu serializes passes and guards the fields below.
	passMu      sync.Mutex
	leaderConn  *pgx.Conn // catalog connection holding (or trying for) the leader lock; nil when none
	leading     bool
	failing     map[string]bool // groups whose last contact failed, to log only changes
	catalogDown bool            // the last leadership check failed, to log only changes
	closed      bool
}

// NewRecovery returns a Recovery resolving the transactions of the decision log l on the
// groups c connects to. It registers its metrics in reg unless reg is nil; log may be nil.
// It fails when cfg has no Groups or a negative duration, or the metrics cannot be
// registered.
func NewRecovery(l *Log, c Connector, cfg RecoveryConfig, reg prometheus.Registerer, log *zap.Logger) (*Recovery, error) {
	if l == nil || c == nil || cfg.Groups == nil {
		return nil, errors.New("two-phase recovery: a log, a connector and RecoveryConfig.Groups are required")
	}
	for _, d := range []*struct {
		name  string
		value *time.Duration
		def   time.Duration
	}{
		{"Interval", &cfg.Interval, DefaultRecoveryInterval},
		{"AbortAfter", &cfg.AbortAfter, DefaultAbortAfter},
		{"Retention", &cfg.Retention, DefaultRetention},
		{"Timeout", &cfg.Timeout, DefaultRecoveryTimeout},
	} {
		if *d.value < 0 {
			return nil, fmt.Errorf("two-phase recovery: %s is negative (%v)", d.name, *d.value)
		}
		if *d.value == 0 {
			*d.value = d.def
		}
	}
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("two-phase recovery: %w", err)
	}
	return &Recovery{
		dlog:      l,
		connector: c,
		cfg:       cfg,
		lockKey:   leaderLockKey(l.Schema()),
		log:       log.With(zap.String("node", cfg.Node), zap.String("catalog_schema", l.Schema())),
		metrics:   m,
		failing:   make(map[string]bool),
	}, nil
}

// Run competes for the leadership and, while it holds it, makes a pass every Interval,
// until ctx ends; then it resigns. Failures are logged and counted, never fatal.
func (r *Recovery) Run(ctx context.Context) {
	defer func() {
		r.passMu.Lock()
		r.resign()
		r.passMu.Unlock()
	}()
	for {
		if _, err := r.Pass(ctx); errors.Is(err, ErrClosed) {
			return
		}
		if ctxwait.Sleep(ctx, r.cfg.Interval) != nil {
			return
		}
	}
}

// Close resigns the leadership; later passes return ErrClosed. It waits for a pass in
// progress.
func (r *Recovery) Close() {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	r.closed = true
	r.resign()
}

// Pass makes one recovery pass now if this node is (or becomes) the leader; otherwise it
// returns a Report with Leader false. It returns what it did and, joined, every failure it
// met; a failure on one group or transaction does not stop the rest of the pass.
//
// A pass reads the log, then scans every group's pg_prepared_xacts — in that order, so
// that the scan is complete for every "commit" record read: its branches were all prepared
// before its decision, hence before the read — and then:
//   - commit record: COMMIT PREPARED on each group where it is prepared; forgotten once no
//     group has it;
//   - prepare record older than AbortAfter: decided abort (when the compare-and-set loses
//     to the coordinator's commit, handled as a commit record), then as an abort record,
//     but not forgotten in the same pass;
//   - abort record: ROLLBACK PREPARED on each group where it is prepared; forgotten once no
//     group has it and its decision is older than Retention;
//   - a prepared transaction without a record, older than AbortAfter: rolled back, after
//     reading the log again to be sure no record appeared since the first read.
//
// A record is never forgotten while any group it names (or holds a branch on) could not
// be scanned.
func (r *Recovery) Pass(ctx context.Context) (Report, error) {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	if r.closed {
		return Report{}, ErrClosed
	}
	leading, err := r.lead(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		r.metrics.errors.WithLabelValues(catalogLabel).Inc()
		if r.catalogDown {
			r.log.Debug("two-phase recovery: leadership check still failing", zap.Error(err))
		} else {
			r.catalogDown = true
			r.log.Warn("two-phase recovery: leadership check failed", zap.Error(err))
		}
	case err == nil && r.catalogDown:
		r.catalogDown = false
		r.log.Info("two-phase recovery: catalog reachable again")
	}
	if err != nil {
		err = fmt.Errorf("two-phase recovery: %w", err)
	}
	if !leading {
		r.metrics.inDoubt.Set(0)
		return Report{}, err
	}
	p := &pass{r: r, report: Report{Leader: true}, conns: make(map[branchKey]*pgx.Conn)}
	defer p.close()
	p.run(ctx)
	if err := errors.Join(p.errs...); err != nil {
		return p.report, fmt.Errorf("two-phase recovery: %w", err)
	}
	return p.report, nil
}
