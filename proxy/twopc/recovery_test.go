package twopc

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// pass runs one Pass that must lead and succeed.
func mustPass(t *testing.T, r *Recovery) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := r.Pass(ctx)
	if err != nil {
		t.Fatalf("Pass: %v (report %+v)", err, rep)
	}
	if !rep.Leader {
		t.Fatal("Pass: not the leader")
	}
	return rep
}

func TestNewRecoveryValidates(t *testing.T) {
	l := &Log{schema: DefaultSchema}
	groups := func() []string { return nil }
	for name, cfg := range map[string]RecoveryConfig{
		"no groups":         {},
		"negative interval": {Groups: groups, Interval: -time.Second},
		"negative abort":    {Groups: groups, AbortAfter: -time.Second},
	} {
		if _, err := NewRecovery(l, &writers{}, cfg, nil, nil); err == nil {
			t.Errorf("NewRecovery with %s: no error", name)
		}
	}
	r, err := NewRecovery(l, &writers{}, RecoveryConfig{Groups: groups}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.Interval != DefaultRecoveryInterval || r.cfg.AbortAfter != DefaultAbortAfter ||
		r.cfg.Retention != DefaultRetention || r.cfg.Timeout != DefaultRecoveryTimeout {
		t.Errorf("defaults not applied: %+v", r.cfg)
	}
	if leaderLockKey(DefaultSchema) == leaderLockKey("other") {
		t.Error("two schemas share a leader lock key")
	}
}

func TestRecoveryCommitsDecided(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	r, reg := e.recovery(t, RecoveryConfig{})

	// The coordinator died after its commit point, before any COMMIT PREPARED.
	gid := e.begin(t, "g0", "g1")
	e.prepare(t, "g0", gid)
	e.prepare(t, "g1", gid)
	if err := e.log.Decide(context.Background(), gid, true); err != nil {
		t.Fatal(err)
	}
	rep := mustPass(t, r)
	if rep.InDoubt != 2 || rep.Committed != 2 || rep.RolledBack != 0 || rep.Forgotten != 1 {
		t.Errorf("report %+v, want 2 in doubt, 2 committed, 1 forgotten", rep)
	}
	for _, g := range e.groups {
		e.checkPrepared(t, g)
		if !e.committedOn(t, g, gid) {
			t.Errorf("%s: the committed transaction's row is missing", g)
		}
	}
	if s := e.state(t, gid); s != "" {
		t.Errorf("record in state %q after the pass, want it forgotten", s)
	}
	if got := testutil.ToFloat64(r.metrics.recovered.WithLabelValues(actionCommit)); got != 2 {
		t.Errorf("recovered{commit} = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "shardwire_twopc_in_doubt", "shardwire_twopc_recovery_leader"); err != nil || n != 2 {
		t.Errorf("gauges gathered: %d, %v", n, err)
	}
	if got := testutil.ToFloat64(r.metrics.inDoubt); got != 2 {
		t.Errorf("in_doubt = %v, want 2 (seen by the pass)", got)
	}

	// The coordinator died midway through its COMMIT PREPAREDs.
	half := e.begin(t, "g0", "g1")
	e.prepare(t, "g0", half)
	e.prepare(t, "g1", half)
	if err := e.log.Decide(context.Background(), half, true); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, e.writers.servers["g0"].AppDSN())
	if _, err := conn.Exec(context.Background(), CommitPreparedSQL(half)); err != nil {
		t.Fatal(err)
	}
	if rep := mustPass(t, r); rep.Committed != 1 || rep.Forgotten != 1 {
		t.Errorf("report %+v, want the remaining branch committed and the record forgotten", rep)
	}
	for _, g := range e.groups {
		if !e.committedOn(t, g, half) {
			t.Errorf("%s: the half-committed transaction's row is missing", g)
		}
	}
}

func TestRecoveryAbortsStalePrepare(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	r, _ := e.recovery(t, RecoveryConfig{AbortAfter: 10 * time.Second, Retention: time.Minute})
	ctx := context.Background()

	stale := e.begin(t, "g0", "g1") // coordinator died after preparing, before deciding
	e.prepare(t, "g0", stale)
	e.prepare(t, "g1", stale)
	e.age(t, stale, time.Hour)
	young := e.begin(t, "g0", "g1") // coordinator still at work
	e.prepare(t, "g0", young)
	e.prepare(t, "g1", young)

	inDoubt, err := r.InDoubt(ctx)
	if err != nil || len(inDoubt) != 4 {
		t.Fatalf("InDoubt = %+v, %v; want 4 branches", inDoubt, err)
	}
	for _, x := range inDoubt {
		if x.State != StatePrepare || x.Owner != pgtest.User || x.Database != pgtest.Database || x.Prepared.IsZero() {
			t.Errorf("InDoubt entry %+v", x)
		}
	}

	rep := mustPass(t, r)
	if rep.Aborted != 1 || rep.RolledBack != 2 || rep.Committed != 0 || rep.Forgotten != 0 {
		t.Errorf("report %+v, want the stale transaction aborted and its 2 branches rolled back, nothing forgotten", rep)
	}
	if s := e.state(t, stale); s != StateAbort {
		t.Errorf("stale record in state %q, want abort (kept for Retention)", s)
	}
	if s := e.state(t, young); s != StatePrepare {
		t.Errorf("young record in state %q, want prepare (left alone)", s)
	}
	for _, g := range e.groups {
		e.checkPrepared(t, g, young)
		if e.committedOn(t, g, stale) {
			t.Errorf("%s: the aborted transaction's row is visible", g)
		}
	}

	// Past Retention, with nothing prepared any more, the abort record goes.
	e.age(t, stale, 2*time.Minute)
	if rep := mustPass(t, r); rep.Forgotten != 1 || rep.RolledBack != 0 {
		t.Errorf("report %+v, want the abort record forgotten", rep)
	}
	if s := e.state(t, stale); s != "" {
		t.Errorf("stale record in state %q, want it forgotten", s)
	}
	if s := e.state(t, young); s != StatePrepare {
		t.Errorf("young record in state %q, want prepare", s)
	}
}

func TestRecoveryStaleLosesToCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	r, _ := e.recovery(t, RecoveryConfig{})

	gid := e.begin(t, "g0", "g1")
	e.prepare(t, "g0", gid)
	e.prepare(t, "g1", gid)
	e.age(t, gid, time.Hour)
	// The slow coordinator reaches its commit point after the pass read the log and before
	// the pass's own decision: the pass must follow the commit.
	e.writers.setOnScan(func(group string) {
		if group == "g0" {
			if err := e.log.Decide(context.Background(), gid, true); err != nil {
				t.Errorf("coordinator Decide: %v", err)
			}
		}
	})
	rep := mustPass(t, r)
	e.writers.setOnScan(nil)
	if rep.Aborted != 0 || rep.Committed != 2 || rep.RolledBack != 0 {
		t.Errorf("report %+v, want both branches committed", rep)
	}
	for _, g := range e.groups {
		if !e.committedOn(t, g, gid) {
			t.Errorf("%s: the committed transaction's row is missing", g)
		}
	}
	if s := e.state(t, gid); s != StateCommit {
		t.Errorf("record in state %q, want commit (forgotten only by a later pass)", s)
	}
	if rep := mustPass(t, r); rep.Forgotten != 1 {
		t.Errorf("second pass %+v, want the record forgotten", rep)
	}
}

func TestRecoveryLatePrepareAfterAbort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	r, _ := e.recovery(t, RecoveryConfig{})
	ctx := context.Background()

	// The coordinator gave up (a prepare timed out) and decided abort; the backend of the
	// prepare that timed out completes it later.
	gid := e.begin(t, "g0", "g1")
	e.prepare(t, "g0", gid)
	if err := e.log.Decide(ctx, gid, false); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, e.writers.servers["g0"].AppDSN())
	if _, err := conn.Exec(ctx, RollbackPreparedSQL(gid)); err != nil {
		t.Fatal(err)
	}
	if rep := mustPass(t, r); rep.RolledBack != 0 || rep.Forgotten != 0 {
		t.Errorf("report %+v, want nothing done (abort record kept for Retention)", rep)
	}
	e.prepare(t, "g1", gid)
	if rep := mustPass(t, r); rep.RolledBack != 1 || rep.Forgotten != 0 {
		t.Errorf("report %+v, want the late branch rolled back at once", rep)
	}
	for _, g := range e.groups {
		e.checkPrepared(t, g)
		if e.committedOn(t, g, gid) {
			t.Errorf("%s: the aborted transaction's row is visible", g)
		}
	}
	if s := e.state(t, gid); s != StateAbort {
		t.Errorf("record in state %q, want abort", s)
	}
}

func TestRecoveryOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	// Long enough for the young orphan below to stay young through a pass on a busy machine.
	const abortAfter = 3 * time.Second
	r, _ := e.recovery(t, RecoveryConfig{AbortAfter: abortAfter})
	ctx := context.Background()
	mustPass(t, r) // takes the leadership, so that the pass below is quick

	// A shardwire prepared transaction without a record (a coordinator writes its record
	// before preparing and forgets it only once every branch is finished) is presumed
	// aborted once older than AbortAfter; a younger one is left alone.
	old := NewGID(testNode)
	e.prepare(t, "g0", old)
	// Recorded only after the pass first read the log: the pass must read it again before
	// taking it for an orphan.
	late := NewGID(testNode)
	e.prepare(t, "g0", late)
	// A foreign prepared transaction (not shardwire's) is never touched.
	conn := pgtest.Connect(t, e.writers.servers["g0"].AppDSN())
	for _, sql := range []string{"BEGIN", "INSERT INTO twopc_probe VALUES ('foreign', 'g0')", "PREPARE TRANSACTION 'foreign:1'"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "ROLLBACK PREPARED 'foreign:1'") })
	waitFor(t, 20*time.Second, "the orphans to age", func() bool {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE now() - prepared >= $1::interval", abortAfter).Scan(&n)
		return err == nil && n == 3
	})

	young := NewGID(testNode)
	e.prepare(t, "g1", young)
	e.writers.setOnScan(func(group string) {
		if group == "g0" {
			err := e.log.Begin(ctx, Record{GID: late, Node: testNode, Database: pgtest.Database, User: pgtest.User, Groups: []string{"g0"}})
			if err != nil {
				t.Errorf("Begin: %v", err)
			}
		}
	})
	rep := mustPass(t, r)
	e.writers.setOnScan(nil)
	if rep.RolledBack != 1 || rep.InDoubt != 3 {
		t.Errorf("report %+v, want the old orphan rolled back", rep)
	}
	e.checkPrepared(t, "g0", late)
	e.checkPrepared(t, "g1", young)
	if got := testutil.ToFloat64(r.metrics.recovered.WithLabelValues(actionRollback)); got != 1 {
		t.Errorf("recovered{rollback} = %v, want 1", got)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'foreign:1'").Scan(&n); err != nil || n != 1 {
		t.Errorf("foreign prepared transaction: %d left (%v), want it untouched", n, err)
	}
}

func TestRecoveryLeadership(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, _ := e.recovery(t, RecoveryConfig{Node: "a"})
	b, _ := e.recovery(t, RecoveryConfig{Node: "b"})

	repA, errA := a.Pass(ctx)
	repB, errB := b.Pass(ctx)
	if errA != nil || errB != nil || !repA.Leader || repB.Leader {
		t.Fatalf("first passes: a %+v %v, b %+v %v; want a leading, b not", repA, errA, repB, errB)
	}
	if testutil.ToFloat64(a.metrics.leader) != 1 || testutil.ToFloat64(b.metrics.leader) != 0 {
		t.Error("leader gauges: want a 1, b 0")
	}
	if rep, err := b.Pass(ctx); err != nil || rep.Leader {
		t.Fatalf("b's second pass: %+v %v, want it still not leading", rep, err)
	}

	// a's catalog session dies: its lock goes with it, and b takes over.
	super := pgtest.Connect(t, e.cl.Groups[0].Writer.SuperDSN(pgtest.Database))
	key := uint64(leaderLockKey(testSchema))
	var killed int
	err := super.QueryRow(ctx,
		`SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		  WHERE locktype = 'advisory' AND granted AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`,
		int64(key>>32), int64(key&0xffffffff)).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminating the leader's session: %d terminated, %v", killed, err)
	}
	waitFor(t, 10*time.Second, "b to take over", func() bool {
		rep, err := b.Pass(ctx)
		return err == nil && rep.Leader
	})
	if rep, _ := a.Pass(ctx); rep.Leader {
		t.Error("a still leads after losing its catalog session")
	}
	if testutil.ToFloat64(a.metrics.leader) != 0 || testutil.ToFloat64(b.metrics.leader) != 1 {
		t.Error("leader gauges: want a 0, b 1")
	}
	if rep, err := a.Pass(ctx); err != nil || rep.Leader {
		t.Errorf("a's pass with b leading: %+v %v", rep, err)
	}

	// Close resigns: its session ends, and with it the lock.
	b.Close()
	waitFor(t, 10*time.Second, "a to take over after b closed", func() bool {
		rep, err := a.Pass(ctx)
		return err == nil && rep.Leader
	})
	if _, err := b.Pass(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Pass after Close = %v, want ErrClosed", err)
	}
}

func TestRecoveryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	r, _ := e.recovery(t, RecoveryConfig{Interval: 50 * time.Millisecond})
	other, _ := e.recovery(t, RecoveryConfig{})

	gid := e.begin(t, "g0", "g1")
	e.prepare(t, "g0", gid)
	e.prepare(t, "g1", gid)
	if err := e.log.Decide(context.Background(), gid, true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	waitFor(t, 10*time.Second, "Run to resolve the transaction", func() bool { return e.state(t, gid) == "" })
	for _, g := range e.groups {
		if !e.committedOn(t, g, gid) {
			t.Errorf("%s: the committed transaction's row is missing", g)
		}
	}
	cancel()
	<-done
	if testutil.ToFloat64(r.metrics.leader) != 0 {
		t.Error("leader gauge still 1 after Run returned")
	}
	waitFor(t, 10*time.Second, "the leadership to be free after Run returned", func() bool {
		rep, err := other.Pass(context.Background())
		return err == nil && rep.Leader
	})
}

func TestRecoveryUnreachableGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	r, _ := e.recovery(t, RecoveryConfig{Retention: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	committed := e.begin(t, "g0", "g1")
	e.prepare(t, "g0", committed)
	e.prepare(t, "g1", committed)
	if err := e.log.Decide(ctx, committed, true); err != nil {
		t.Fatal(err)
	}
	aborted := e.begin(t, "g1")
	if err := e.log.Decide(ctx, aborted, false); err != nil {
		t.Fatal(err)
	}
	e.age(t, aborted, time.Hour)

	g1 := e.writers.servers["g1"]
	if err := g1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Pass(ctx)
	if err == nil {
		t.Error("Pass with a group down: no error")
	}
	if !rep.Leader || rep.Committed != 1 || rep.Forgotten != 0 || !slices.Equal(rep.Unreachable, []string{"g1"}) {
		t.Errorf("report %+v, want g0's branch committed, g1 unreachable, nothing forgotten", rep)
	}
	if s := e.state(t, committed); s != StateCommit {
		t.Errorf("committed record in state %q, want it kept", s)
	}
	if s := e.state(t, aborted); s != StateAbort {
		t.Errorf("aborted record in state %q, want it kept while its group is unchecked", s)
	}
	if got := testutil.ToFloat64(r.metrics.errors.WithLabelValues("g1")); got < 1 {
		t.Errorf("errors{group=g1} = %v, want at least 1", got)
	}
	if _, err := r.InDoubt(ctx); err == nil {
		t.Error("InDoubt with a group down: no error")
	}

	if err := g1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rep = mustPass(t, r)
	if rep.Committed != 1 || rep.Forgotten != 2 {
		t.Errorf("report %+v, want g1's branch committed and both records forgotten", rep)
	}
	for _, g := range e.groups {
		e.checkPrepared(t, g)
		if !e.committedOn(t, g, committed) {
			t.Errorf("%s: the committed transaction's row is missing", g)
		}
	}
}
