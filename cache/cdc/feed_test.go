package cdc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// TestFeedDirectWrites streams direct writes of every kind from a real writer.
func TestFeedDirectWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := h.start()

	// A created slot starts with a whole-table bump of every cacheable table.
	var first bumpCall
	waitFor(t, "the bump of a new slot", func() bool {
		calls := f.rec.snapshot()
		if len(calls) > 0 {
			first = calls[0]
		}
		return len(calls) > 0
	})
	wantFirst := []cache.Touch{wholeTable("audit", true), wholeTable("customers", true), wholeTable("events", true),
		wholeTable("invoice_lines", true), wholeTable("invoices", true), wholeTable("settings", false)}
	if !reflect.DeepEqual(first.touches, wantFirst) {
		t.Fatalf("first bump = %+v\nwant         %+v", first.touches, wantFirst)
	}
	if f.leader() != 1 {
		t.Errorf("leader gauge = %v, want 1", f.leader())
	}

	h.expect(f, []cache.Touch{ofCustomers("customers", 1, 2, 17)},
		"INSERT INTO customers VALUES (17, 'c'), (1, 'a'), (2, 'b')")
	// The trigger's INSERT into audit is seen with the statement's own.
	h.expect(f, []cache.Touch{ofCustomers("audit", 1, 17), ofCustomers("invoices", 1, 17)},
		"INSERT INTO invoices VALUES (1, 1, 10), (17, 1, 5), (1, 2, 7)")
	h.expect(f, []cache.Touch{ofCustomers("invoices", 1)},
		"UPDATE invoices SET amount = amount + 1 WHERE customer_id = 1")
	// Moving a row to another customer touches both.
	h.expect(f, []cache.Touch{ofCustomers("invoices", 2, 17)},
		"UPDATE invoices SET customer_id = 2 WHERE customer_id = 17")
	h.expect(f, []cache.Touch{ofCustomers("invoices", 2)},
		"DELETE FROM invoices WHERE customer_id = 2")
	// audit's replica identity (id) lacks customer_id: an UPDATE could have moved the row
	// away from a customer nobody names, so the whole table is touched.
	h.expect(f, []cache.Touch{wholeTable("audit", true)},
		"UPDATE audit SET note = 'edited' WHERE customer_id = 1")
	h.expect(f, []cache.Touch{ofCustomers("invoice_lines", 1)},
		"INSERT INTO invoice_lines VALUES (1, 1, 1), (1, 1, 2), (1, 2, 1)")
	// ON DELETE CASCADE reaches the children's customers.
	h.expect(f, []cache.Touch{ofCustomers("customers", 1), ofCustomers("invoice_lines", 1), ofCustomers("invoices", 1)},
		"DELETE FROM customers WHERE customer_id = 1")
	// A partitioned table reports its root.
	h.expect(f, []cache.Touch{ofCustomers("events", 3, 150)},
		"INSERT INTO events VALUES (3, 1), (150, 1)")
	h.expect(f, []cache.Touch{wholeTable("settings", false)},
		"INSERT INTO settings VALUES ('a', 'b')")
	h.expect(f, []cache.Touch{wholeTable("events", true), wholeTable("settings", false)},
		"TRUNCATE events, settings")
	// A table that is not cached is not published: nothing is bumped for its commit.
	logsLo, logsHi := h.txn("INSERT INTO logs (customer_id, msg) VALUES (5, 'x')")
	h.expect(f, []cache.Touch{ofCustomers("customers", 50)}, "INSERT INTO customers VALUES (50, 'marker')")
	for _, c := range f.rec.snapshot() {
		if c.lsn > logsLo && c.lsn <= logsHi {
			t.Errorf("bump for a commit of an uncached table: %+v", c)
		}
	}

	// Every streamed commit counts (12 above; the uncached table is not even published).
	if n := testutil.ToFloat64(f.metrics.txns.WithLabelValues("g0")); n < 12 {
		t.Errorf("transactions_total = %v, want >= 12", n)
	}
	if n := histogramCount(t, f.metrics); n < 12 {
		t.Errorf("lag observations = %d, want >= 12 (one per bumped transaction)", n)
	}
	// Confirmation follows the bumps.
	lo, hi := h.txn("INSERT INTO customers VALUES (51, 'last')")
	last := h.successfulCallIn(f, lo, hi)
	waitFor(t, "confirmed_flush_lsn to reach the last commit", func() bool {
		lsn, err := confirmedFlush(context.Background(), h.sql)
		return err == nil && lsn >= last.lsn
	})
}

// TestFeedRetriesBump checks that a failing Bump is retried and that the commit is not
// confirmed to the server until it succeeds.
func TestFeedRetriesBump(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := h.start()
	f.waitStarted(t)

	// The fake Bump fails the first three attempts for customer 77, checking each time
	// that the server was not told the commit is done.
	probe := pgtest.Connect(t, h.w.SuperDSN(pgtest.Database)) // used by the feed's goroutine only
	const failures = 3
	var (
		attempts   int
		violations []string
	)
	f.rec.setFail(func(c bumpCall) error {
		if len(c.touches) != 1 || !slices.Equal(c.touches[0].Customers, []int64{77}) {
			return nil
		}
		attempts++
		if attempts > failures {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		confirmed, err := confirmedFlush(ctx, probe)
		switch {
		case err != nil:
			violations = append(violations, err.Error())
		case confirmed >= c.lsn:
			violations = append(violations, fmt.Sprintf("attempt %d: confirmed_flush_lsn %s passed the unbumped commit %s",
				attempts, pglogrepl.LSN(confirmed), pglogrepl.LSN(c.lsn)))
		}
		return errors.New("redis is down")
	})

	lo, hi := h.txn("INSERT INTO customers VALUES (77, 'x')")
	call := h.successfulCallIn(f, lo, hi)
	var tries int
	for _, c := range f.rec.snapshot() {
		if c.lsn == call.lsn {
			tries++
			if !reflect.DeepEqual(c.touches, []cache.Touch{ofCustomers("customers", 77)}) {
				t.Errorf("attempt with touches %+v", c.touches)
			}
		}
	}
	if tries != failures+1 {
		t.Errorf("Bump called %d times for the commit, want %d", tries, failures+1)
	}
	f.rec.setFail(nil) // the feed's goroutine is done with the probe and the counters
	for _, v := range violations {
		t.Error(v)
	}
	if n := testutil.ToFloat64(f.metrics.bumpErrs.WithLabelValues("g0")); n != failures {
		t.Errorf("bump_errors_total = %v, want %d", n, failures)
	}
	waitFor(t, "confirmed_flush_lsn to reach the commit once bumped", func() bool {
		lsn, err := confirmedFlush(context.Background(), h.sql)
		return err == nil && lsn >= call.lsn
	})
}

// TestFeedElectionAndFailover runs two feeds on one writer: one leads while the other
// keeps campaigning; when the leader stops, the other takes over from the slot and misses
// no commit, not even one the old leader received but never bumped.
func TestFeedElectionAndFailover(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	feeds := []*feedRun{h.start(), h.start()}

	var leader, follower *feedRun
	waitFor(t, "a leader", func() bool {
		for i, f := range feeds {
			if f.leader() == 1 {
				leader, follower = f, feeds[1-i]
				return true
			}
		}
		return false
	})
	// The follower campaigns several times and never wins while the leader holds the lock.
	start := follower.connects.Load()
	waitFor(t, "the follower to campaign again", func() bool {
		if leader.leader() != 1 || follower.leader() != 0 {
			t.Fatalf("leader gauges: %v and %v", leader.leader(), follower.leader())
		}
		return follower.connects.Load() >= start+3
	})
	if pids := h.advisoryLockHolders(); len(pids) != 1 {
		t.Fatalf("advisory lock holders = %v, want exactly one", pids)
	}
	leader.waitStarted(t)
	if len(follower.rec.snapshot()) != 0 {
		t.Fatalf("the follower bumped: %+v", follower.rec.snapshot())
	}
	h.expect(leader, []cache.Touch{ofCustomers("customers", 1)}, "INSERT INTO customers VALUES (1, 'a')")

	// The leader receives this commit but cannot bump it, so never confirms it.
	leader.rec.setFail(func(c bumpCall) error {
		if len(c.touches) == 1 && slices.Equal(c.touches[0].Customers, []int64{666}) {
			return errors.New("bump fails on the old leader")
		}
		return nil
	})
	unbumpedLo, unbumpedHi := h.txn("INSERT INTO customers VALUES (666, 'received, never bumped')")
	waitFor(t, "the leader to try the commit", func() bool {
		for _, c := range leader.rec.snapshot() {
			if c.err != nil && c.lsn > unbumpedLo && c.lsn <= unbumpedHi {
				return true
			}
		}
		return false
	})

	leader.stop()
	stopped := time.Now()
	if leader.err != nil {
		t.Errorf("Run returned %v", leader.err)
	}
	if leader.leader() != 0 {
		t.Errorf("stopped leader's gauge = %v", leader.leader())
	}
	// Committed while the old leader is gone and (most likely) before the new one streams.
	gapLo, gapHi := h.txn("INSERT INTO customers VALUES (667, 'between leaders')")

	waitFor(t, "the follower to lead", func() bool { return follower.leader() == 1 })
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("takeover took %v", took)
	}
	if got := h.successfulCallIn(follower, unbumpedLo, unbumpedHi).touches; !reflect.DeepEqual(got,
		[]cache.Touch{ofCustomers("customers", 666)}) {
		t.Errorf("unbumped commit replayed as %+v", got)
	}
	if got := h.successfulCallIn(follower, gapLo, gapHi).touches; !reflect.DeepEqual(got,
		[]cache.Touch{ofCustomers("customers", 667)}) {
		t.Errorf("commit between leaders bumped as %+v", got)
	}
	h.expect(follower, []cache.Touch{ofCustomers("customers", 668)}, "INSERT INTO customers VALUES (668, 'c')")
	// The follower resumed the existing slot: no whole-table bump.
	for _, c := range follower.rec.snapshot() {
		for _, touch := range c.touches {
			if len(touch.Customers) == 0 {
				t.Errorf("new leader bumped a whole table (slot recreated?): %+v", c)
			}
		}
	}
	if pids := h.advisoryLockHolders(); len(pids) != 1 {
		t.Errorf("advisory lock holders after failover = %v, want exactly one", pids)
	}
}

// TestFeedLockConnectionLost checks that a leader whose lock connection dies stops
// streaming, campaigns again and resumes.
func TestFeedLockConnectionLost(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := h.start()
	f.waitStarted(t)
	h.expect(f, []cache.Touch{ofCustomers("customers", 1)}, "INSERT INTO customers VALUES (1, 'a')")
	holders := h.advisoryLockHolders()
	walsender := h.slotActivePID()
	if len(holders) != 1 || walsender == 0 {
		t.Fatalf("lock holders %v, walsender %d", holders, walsender)
	}
	connects := f.connects.Load()

	if _, err := h.sql.Exec(context.Background(), "SELECT pg_terminate_backend($1)", holders[0]); err != nil {
		t.Fatal(err)
	}
	// The feed notices within about a second, drops its stream and leads again.
	waitFor(t, "a new stream", func() bool {
		pid := h.slotActivePID()
		return pid != 0 && pid != walsender && f.connects.Load() > connects
	})
	if got := h.advisoryLockHolders(); len(got) != 1 || got[0] == holders[0] {
		t.Errorf("lock holders after the loss = %v (before %v)", got, holders)
	}
	h.expect(f, []cache.Touch{ofCustomers("customers", 2)}, "INSERT INTO customers VALUES (2, 'b')")
}

// TestFeedDropsUnaccountedSlot checks that a slot whose whole-table bump never succeeded
// does not survive its leader, so that the next leader creates it again and bumps.
func TestFeedDropsUnaccountedSlot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := h.startWith(&recorder{fail: func(bumpCall) error { return errors.New("redis is down") }})
	waitFor(t, "a failed whole-table bump", func() bool { return len(f.rec.snapshot()) > 0 })
	if h.slotActivePID() != 0 {
		t.Fatal("streaming before the whole-table bump succeeded")
	}
	f.stop()
	var n int
	if err := h.sql.QueryRow(context.Background(), "SELECT count(*) FROM pg_replication_slots").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d slots left by a leader that never accounted for the writes before its slot", n)
	}
	h.txn("INSERT INTO customers VALUES (5, 'written while no slot exists')")

	g := h.start()
	g.waitStarted(t)
	if got := g.rec.snapshot()[0].touches; len(got) != 6 || len(got[0].Customers) != 0 {
		t.Fatalf("first bump of the new slot = %+v, want every cacheable table whole", got)
	}
}

// TestFeedSyncsPublication checks that the feed publishes exactly the cacheable tables: an
// existing publication with other tables and options is brought in line, and a cacheable
// table created later is added while the feed streams, its changes then seen.
func TestFeedSyncsPublication(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.sql.Exec(ctx, "CREATE PUBLICATION "+DefaultPublicationName+" FOR TABLE customers WITH (publish = 'insert')"); err != nil {
		t.Fatal(err)
	}
	f := h.start()
	f.waitStarted(t)
	published := func() string {
		var tables string
		err := h.sql.QueryRow(ctx, `SELECT coalesce(string_agg(c.relname, ',' ORDER BY c.relname), '')
			FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid JOIN pg_class c ON c.oid = pr.prrelid
			WHERE p.pubname = $1`, DefaultPublicationName).Scan(&tables)
		if err != nil {
			t.Fatal(err)
		}
		return tables
	}
	var opts bool
	if err := h.sql.QueryRow(ctx, `SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate AND pubviaroot
		FROM pg_publication WHERE pubname = $1`, DefaultPublicationName).Scan(&opts); err != nil || !opts {
		t.Fatalf("publication options not fixed: %v %v", opts, err)
	}
	before := published()
	if strings.Contains(before, "logs") || !strings.Contains(before, "customers") {
		t.Fatalf("published tables %q: want the cacheable ones only", before)
	}
	if _, err := h.sql.Exec(ctx, "CREATE TABLE cached_later (customer_id bigint, id bigint, PRIMARY KEY (customer_id, id))"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new cacheable table to be published", func() bool { return strings.Contains(published(), "cached_later") })
	h.txn("INSERT INTO cached_later VALUES (77, 1)")
	waitFor(t, "the new table's change to be bumped", func() bool {
		for _, c := range f.rec.snapshot() {
			for _, tc := range c.touches {
				if tc.Table == "cached_later" && slices.Contains(tc.Customers, 77) {
					return true
				}
			}
		}
		return false
	})
}
