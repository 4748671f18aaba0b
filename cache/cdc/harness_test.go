package cdc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 15 * time.Second

// testRetry is the feeds' Retry in these tests.
const testRetry = 50 * time.Millisecond

const schema = `
CREATE TABLE customers (customer_id bigint PRIMARY KEY, name text);
CREATE TABLE invoices (
	customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
	id bigint NOT NULL, amount int,
	PRIMARY KEY (customer_id, id));
CREATE TABLE invoice_lines (
	customer_id bigint NOT NULL, invoice_id bigint NOT NULL, line int NOT NULL,
	PRIMARY KEY (customer_id, invoice_id, line),
	FOREIGN KEY (customer_id, invoice_id) REFERENCES invoices ON DELETE CASCADE);
CREATE TABLE audit (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, note text);
CREATE FUNCTION audit_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit (customer_id, note) VALUES (NEW.customer_id, 'invoice ' || NEW.id);
	RETURN NULL;
END $$;
CREATE TRIGGER invoices_audit AFTER INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION audit_invoice();
CREATE TABLE events (customer_id bigint NOT NULL, id bigint NOT NULL, PRIMARY KEY (customer_id, id))
	PARTITION BY RANGE (customer_id);
CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE events_high PARTITION OF events FOR VALUES FROM (100) TO (MAXVALUE);
CREATE TABLE settings (k text PRIMARY KEY, v text);
CREATE TABLE logs (id bigserial PRIMARY KEY, customer_id bigint, msg text);
`

// The tables' configuration: sharded tables and their key, cacheable tables.
var (
	feedKeyColumns = map[string]string{
		"customers": "customer_id", "invoices": "customer_id", "invoice_lines": "customer_id",
		"audit": "customer_id", "events": "customer_id", "logs": "customer_id", "cached_later": "customer_id",
	}
	feedCacheable = map[string]bool{
		"customers": true, "invoices": true, "invoice_lines": true, "audit": true, "events": true, "settings": true,
		"cached_later": true,
	}
)

// harness is one writer with the test schema.
type harness struct {
	t   *testing.T
	w   *pgtest.Server
	sql *pgx.Conn // superuser on pgtest.Database; the test goroutine's only
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c := pgtest.New(t, pgtest.Options{})
	h := &harness{t: t, w: c.Groups[0].Writer}
	h.sql = pgtest.Connect(t, h.w.SuperDSN(pgtest.Database))
	if _, err := h.sql.Exec(context.Background(), schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	// The slot and publication are permanent by design; drop them once the feeds stopped
	// (cleanups run in reverse order, and every feed registers its own after this).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		// A stopped feed's walsender exits on its own a moment later.
		waitFor(t, "the slot to be released", func() bool { return h.slotActivePID() == 0 })
		_, err := h.sql.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE slot_name = $1`, DefaultSlotName(pgtest.Database))
		if err == nil {
			_, err = h.sql.Exec(ctx, "DROP PUBLICATION IF EXISTS "+DefaultPublicationName)
		}
		if err != nil {
			t.Errorf("drop slot and publication: %v", err)
		}
	})
	return h
}

// bumpCall is one call of a recorder's Bump.
type bumpCall struct {
	group   string
	lsn     uint64
	touches []cache.Touch
	err     error // what the recorder returned
}

// recorder is a fake Bump that records its calls and fails when fail says so.
type recorder struct {
	mu    sync.Mutex
	calls []bumpCall
	fail  func(bumpCall) error // nil: succeed
}

func (r *recorder) bump(_ context.Context, group string, lsn uint64, touches []cache.Touch) error {
	c := bumpCall{group: group, lsn: lsn}
	for _, t := range touches {
		t.Customers = slices.Clone(t.Customers)
		c.touches = append(c.touches, t)
	}
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		c.err = fail(c)
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return c.err
}

func (r *recorder) setFail(f func(bumpCall) error) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

// snapshot returns the calls so far.
func (r *recorder) snapshot() []bumpCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// feedRun is one running Run.
type feedRun struct {
	rec      *recorder
	metrics  *Metrics
	connects atomic.Int64 // calls of Connect: campaigns
	cancel   context.CancelFunc
	done     chan struct{}
	err      error // Run's result, once done is closed
}

// start runs a feed on the harness's writer until the test ends.
func (h *harness) start() *feedRun { return h.startWith(&recorder{}) }

// startWith runs a feed that bumps through rec.
func (h *harness) startWith(rec *recorder) *feedRun {
	f := &feedRun{rec: rec, metrics: NewMetrics(prometheus.NewRegistry()), done: make(chan struct{})}
	dsn := h.w.SuperDSN(pgtest.Database)
	cfg := Config{
		Group:    "g0",
		Database: pgtest.Database,
		Connect: func(ctx context.Context) (*pgconn.PgConn, error) {
			f.connects.Add(1)
			return pgconn.Connect(ctx, dsn)
		},
		ConnectReplication: func(ctx context.Context) (*pgconn.PgConn, error) {
			pc, err := pgconn.ParseConfig(dsn)
			if err != nil {
				return nil, err
			}
			pc.RuntimeParams["replication"] = "database"
			return pgconn.ConnectConfig(ctx, pc)
		},
		KeyColumn: func(t string) (string, bool) {
			c, ok := feedKeyColumns[t]
			return c, ok
		},
		Cacheable: func(t string) bool { return feedCacheable[t] },
		Bump:      f.rec.bump,
		Log:       zaptest.NewLogger(h.t),
		Metrics:   f.metrics,
		Retry:     testRetry,
		// The publication follows new tables quickly here.
		PublicationSync: 200 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		defer close(f.done)
		f.err = Run(ctx, cfg)
	}()
	h.t.Cleanup(f.stop)
	return f
}

// waitStarted waits for f's first bump: the whole-table bump that follows the creation of
// the slot, after which every commit is streamed.
func (f *feedRun) waitStarted(t *testing.T) {
	t.Helper()
	waitFor(t, "the feed to create its slot", func() bool { return len(f.rec.snapshot()) > 0 })
}

// stop cancels the feed and waits for Run to return.
func (f *feedRun) stop() {
	f.cancel()
	<-f.done
}

func (f *feedRun) leader() float64 {
	return testutil.ToFloat64(f.metrics.leader.WithLabelValues("g0", pgtest.Database))
}

// waitFor polls cond every 10 ms until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// txn runs stmts in one transaction on the writer and returns bounds of its commit's end
// LSN: lo (the WAL insert position before COMMIT) < end <= hi (after it).
func (h *harness) txn(stmts ...string) (lo, hi uint64) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	tx, err := h.sql.Begin(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			h.t.Fatalf("%s: %v", s, err)
		}
	}
	lo = h.lsn(tx, "SELECT pg_current_wal_insert_lsn()::text")
	if err := tx.Commit(ctx); err != nil {
		h.t.Fatal(err)
	}
	hi = h.lsn(h.sql, "SELECT pg_current_wal_insert_lsn()::text")
	return lo, hi
}

// lsn returns the LSN sql yields.
func (h *harness) lsn(q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string) uint64 {
	h.t.Helper()
	var s string
	if err := q.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		h.t.Fatal(err)
	}
	return uint64(lsn)
}

// confirmedFlush returns the slot's confirmed_flush_lsn on conn (0 without the slot).
func confirmedFlush(ctx context.Context, conn *pgx.Conn) (uint64, error) {
	var s *string
	err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
		DefaultSlotName(pgtest.Database)).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && s == nil {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	return uint64(lsn), err
}

// successfulCallIn waits for f's successful Bump of the commit ending in (lo, hi] and
// returns it; more than one is an error.
func (h *harness) successfulCallIn(f *feedRun, lo, hi uint64) bumpCall {
	h.t.Helper()
	var found []bumpCall
	waitFor(h.t, fmt.Sprintf("a bump in (%s, %s]", pglogrepl.LSN(lo), pglogrepl.LSN(hi)), func() bool {
		found = found[:0]
		for _, c := range f.rec.snapshot() {
			if c.err == nil && c.lsn > lo && c.lsn <= hi {
				found = append(found, c)
			}
		}
		return len(found) > 0
	})
	if len(found) > 1 {
		h.t.Fatalf("%d successful bumps of one commit: %+v", len(found), found)
	}
	if found[0].group != "g0" {
		h.t.Errorf("bump of group %q, want g0", found[0].group)
	}
	return found[0]
}

// expect runs stmts in one transaction and checks f bumps exactly want for it.
func (h *harness) expect(f *feedRun, want []cache.Touch, stmts ...string) {
	h.t.Helper()
	lo, hi := h.txn(stmts...)
	if got := h.successfulCallIn(f, lo, hi).touches; !reflect.DeepEqual(got, want) {
		h.t.Errorf("touches = %+v\nwant      %+v", got, want)
	}
}

func wholeTable(table string, sharded bool) cache.Touch {
	return cache.Touch{DB: pgtest.Database, Table: table, Sharded: sharded}
}

func ofCustomers(table string, cs ...int64) cache.Touch {
	return cache.Touch{DB: pgtest.Database, Table: table, Sharded: true, Customers: cs}
}

// advisoryLockHolders returns the pids holding advisory locks on the writer.
func (h *harness) advisoryLockHolders() []int32 {
	h.t.Helper()
	rows, err := h.sql.Query(context.Background(),
		"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted ORDER BY pid")
	if err != nil {
		h.t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		h.t.Fatal(err)
	}
	return pids
}

// slotActivePID returns the pid of the walsender streaming the slot, 0 when none.
func (h *harness) slotActivePID() int32 {
	h.t.Helper()
	var pid *int32
	err := h.sql.QueryRow(context.Background(), "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
		DefaultSlotName(pgtest.Database)).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		h.t.Fatal(err)
	}
	if pid == nil {
		return 0
	}
	return *pid
}

// histogramCount returns how many lags m observed for group g0.
func histogramCount(t *testing.T, m *Metrics) uint64 {
	t.Helper()
	var out dto.Metric
	if err := m.lag.WithLabelValues("g0").(prometheus.Histogram).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}
