package proxy

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// The proxy's part in an online shard move (DESIGN rule 6, issue 7). A move takes its shard
// through map epochs: active → moving (the copy runs) → frozen (the source is fenced, the
// target catches up) → active again, owned by the target (or by the source after an abort).
// While the shard is moving, DDL and TRUNCATE of sharded tables are refused (moves_gate.go).
// While it is frozen, this node holds the shard's new writes that arrive outside a transaction
// until a map ends the freeze, then routes them again (moves_gate.go); transactions already
// open on the shard go on for a grace period. A write that meets the source's fence outside a
// transaction did not run: it is run again once a newer map arrives (moves_fence.go).

// moveState is what the node tracks of moves: when it first saw each shard frozen, and how
// many statements its sessions hold.
type moveState struct {
	held atomic.Int64
	// frozenAt[s] is when this node loaded a map with shard s frozen (unix nanoseconds), or 0
	// while its map does not have s frozen.
	frozenAt [shardmap.NumShards]atomic.Int64
	metrics  *moveMetrics
}

// newMoveState follows store's maps from now on.
func newMoveState(store *shardmap.Store, reg prometheus.Registerer) *moveState {
	ms := &moveState{metrics: newMoveMetrics(reg)}
	store.Subscribe(ms.mapLoaded)
	if m := store.Current(); m != nil {
		ms.mapLoaded(m)
	}
	return ms
}

// mapLoaded notes the freezes of a map the node just took (a store subscriber: it must not
// block).
func (ms *moveState) mapLoaded(m *shardmap.Map) {
	now := time.Now().UnixNano()
	frozen := m.Frozen()
	for sh := range ms.frozenAt {
		if frozen.Has(shardmap.Shard(sh)) {
			ms.frozenAt[sh].CompareAndSwap(0, now)
		} else {
			ms.frozenAt[sh].Store(0)
		}
	}
}

// pastGrace returns a shard of shards that this node has seen frozen for longer than grace.
func (ms *moveState) pastGrace(shards shardmap.ShardSet, grace time.Duration, now time.Time) (shardmap.Shard, bool) {
	for _, sh := range shards.Shards() {
		at := ms.frozenAt[sh].Load()
		if at != 0 && now.Sub(time.Unix(0, at)) > grace {
			return sh, true
		}
	}
	return 0, false
}

// take counts one more held statement when the node holds fewer than limit.
func (ms *moveState) take(limit int) bool {
	if ms.held.Add(1) > int64(limit) {
		ms.held.Add(-1)
		return false
	}
	ms.metrics.buffered.Inc()
	return true
}

// put uncounts a held statement.
func (ms *moveState) put() {
	ms.held.Add(-1)
	ms.metrics.buffered.Dec()
}

// moveMetrics are the node's move instruments (shardwire_move_*).
type moveMetrics struct {
	buffered prometheus.Gauge
	wait     prometheus.Histogram
	held     *prometheus.CounterVec
	fence    *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

// Results of held statements and of fence hits (label values of the counters).
const (
	heldReleased   = "released"    // the freeze ended: routed again
	heldTimeout    = "timeout"     // still frozen after buffer_timeout: 40001
	heldLimit      = "limit"       // the node held buffer_limit statements already: 40001
	heldCancelled  = "cancelled"   // the client cancelled it: 57014
	heldClientGone = "client_gone" // the client disconnected: dropped
	heldShutdown   = "shutdown"    // the node is stopping

	fenceRetried      = "retried"        // a newer map came: the request ran again
	fenceNoNewMap     = "no_new_map"     // no newer map within buffer_timeout: the error passed on
	fenceInTx         = "in_transaction" // inside a transaction: passed on as 40001
	fenceNotRetryable = "not_retryable"  // results already sent, a pipeline, a pinned session, or too many retries: passed on
	fenceCancelled    = "cancelled"      // the client cancelled it while waiting
	fenceClientGone   = "client_gone"    // the client left while waiting
)

func newMoveMetrics(reg prometheus.Registerer) *moveMetrics {
	m := &moveMetrics{
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardwire_move_buffered_statements",
			Help: "Statements held now: writes to a frozen shard waiting for the map that ends the freeze, and writes that met a fence waiting for a newer map."}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shardwire_move_buffer_wait_seconds", Help: "Time statements were held for a frozen shard.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_move_held_statements_total",
			Help: "Statements held for a frozen shard, by how the hold ended: released (routed again), timeout and limit (refused with 40001), cancelled, client_gone, shutdown."},
			[]string{"result"}),
		fence: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_move_fence_retries_total",
			Help: "Writes that met a move's fence (SQLSTATE SW001), by result: retried, no_new_map, in_transaction (passed on as 40001), not_retryable, cancelled, client_gone."},
			[]string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_move_refusals_total",
			Help: "Statements refused because of a move, by reason: grace (an open transaction touched a shard frozen for longer than moves.grace, 40001), ddl (DDL or TRUNCATE of a sharded table during a move, 55000)."},
			[]string{"reason"}),
	}
	reg.MustRegister(m.buffered, m.wait, m.held, m.fence, m.refused)
	return m
}

// SQLSTATEs of move refusals.
const (
	// codeSerializationFailure (40001) is what clients' retry loops retry.
	codeSerializationFailure = "40001"
	// codeObjectNotInPrerequisiteState (55000) refuses DDL during a move.
	codeObjectNotInPrerequisiteState = "55000"
)

// heldTimeoutError refuses a statement held longer than buffer_timeout.
func heldTimeoutError(shard shardmap.Shard, timeout time.Duration) *clientError {
	return newClientError(codeSerializationFailure, fmt.Sprintf(
		"shard %d is being moved to another group; the statement was not run; retry", shard)).
		withHint(fmt.Sprintf("the move did not switch the shard within moves.buffer_timeout (%s)", timeout))
}

// heldLimitError refuses a statement when the node holds buffer_limit statements already.
func heldLimitError(shard shardmap.Shard, limit int) *clientError {
	return newClientError(codeSerializationFailure, fmt.Sprintf(
		"shard %d is being moved to another group; the statement was not run; retry", shard)).
		withHint(fmt.Sprintf("this node already holds moves.buffer_limit (%d) statements for shards being moved", limit))
}

// graceError fails an open transaction that touches a shard frozen for longer than grace.
func graceError(shard shardmap.Shard, grace time.Duration) *clientError {
	return newClientError(codeSerializationFailure, fmt.Sprintf(
		"shard %d is being moved to another group; the transaction is aborted; retry it", shard)).
		withHint(fmt.Sprintf("a transaction may touch a shard for moves.grace (%s) after the move froze it; keep transactions short", grace))
}

// moveDDLError refuses DDL (TRUNCATE included) naming a sharded table while any shard is
// moving or frozen: the move's row-filtered logical replication would not carry it, so the
// shard's copy would silently differ. Nil when the statement may run.
func moveDDLError(plan *router.Plan, m *shardmap.Map) *clientError {
	if plan.Kind != router.KindDDL {
		return nil
	}
	moving := m.Moving()
	if moving.Empty() {
		return nil
	}
	var sharded []string
	for _, t := range plan.Tables {
		if _, ok := m.KeyColumn(t); ok {
			sharded = append(sharded, t)
		}
	}
	if len(sharded) == 0 {
		return nil
	}
	what := "shard " + strings.Trim(moving.String(), "{}") + " is"
	if moving.Len() > 1 {
		what = "shards " + strings.Trim(moving.String(), "{}") + " are"
	}
	return newClientError(codeObjectNotInPrerequisiteState, fmt.Sprintf(
		"TRUNCATE and other DDL on sharded tables (%s) are refused while %s being moved; retry after the move",
		strings.Join(sharded, ", "), what)).
		withHint("a move copies rows by logical replication, which does not carry DDL or TRUNCATE; `shardctl moves` shows when it ends")
}
