package move

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// TestCatchUp: writes of the shard run on the source until the fence stops them; once
// CatchUp returns, the target holds exactly the source's rows of the shard, every
// acknowledged write included, without waiting any further. With the subscription disabled
// the proof cannot be made and CatchUp says why when its context ends.
func TestCatchUp(t *testing.T) {
	const shard = 5
	p := newMovePair(t, moveSchemaDDL)
	exec(t, p.source, fillKeys(-40, 60, -1))
	ctx := testCtx(t, 45*time.Second)
	spec := p.forward(1, shard, moveTables)
	if _, err := Fence(ctx, p.target, FenceOptions{Shard: shard, Move: 1, Tables: moveTables, Reason: ReasonArrivingFrom("g0")}); err != nil {
		t.Fatal(err)
	}
	if err := Replicate(ctx, p.source, p.target, spec); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p, spec)

	// The application: an insert and a counter increment per round, until the fence.
	app := pgtest.Connect(t, p.srcSrv.DSN(pgtest.User, pgtest.Password, p.db))
	var rounds atomic.Int64
	stopped := make(chan error, 1)
	wctx, wcancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	t.Cleanup(func() { wcancel(); <-finished }) // before app is closed
	go func() {
		defer close(finished)
		for i := int64(0); ; i++ {
			if _, err := app.Exec(wctx, "INSERT INTO billing.invoices VALUES (5, $1, 1)", 1000+i); err != nil {
				stopped <- err
				return
			}
			if _, err := app.Exec(wctx, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 21"); err != nil {
				stopped <- err
				return
			}
			rounds.Add(1)
		}
	}()
	waitFor(t, 10*time.Second, "writes before the fence", func() (bool, string, error) {
		return rounds.Load() >= 30, "", nil
	})
	lsn, err := Fence(ctx, p.source, FenceOptions{Shard: shard, Move: 1, Tables: moveTables, Reason: ReasonMovingTo("g1"), Marker: true,
		LockTimeout: 50 * time.Millisecond, Deadline: time.Now().Add(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := CatchUp(ctx, p.target, spec, lsn); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if ok, why := sameShardRows(t, p.source, p.target, moveTables, shard); !ok {
		t.Fatalf("right after CatchUp: %s", why)
	}
	werr := <-stopped
	if pgtest.SQLState(werr) != shardmap.CodeShardFenced {
		t.Fatalf("the application stopped on %v, want the fence", werr)
	}
	acked := rounds.Load()
	inserted := countWhere(t, p.target, moveTables[1], "customer_id = 5 AND id >= 1000")
	var balance int64
	if err := p.target.QueryRow(ctx, "SELECT abalance FROM pgbench_accounts WHERE aid = 21").Scan(&balance); err != nil {
		t.Fatal(err)
	}
	// A round whose update failed had its insert acknowledged.
	if inserted < acked || inserted > acked+1 || balance != 210+acked {
		t.Errorf("target: %d inserts and balance %d; acknowledged %d rounds (want balance %d)", inserted, balance, acked, 210+acked)
	}
	var marker bool
	if err := p.target.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM shardwire_move.markers WHERE move_id = 1 AND shard_key = 5)").Scan(&marker); err != nil || !marker {
		t.Errorf("marker on the target: %v, %v", marker, err)
	}

	// Fencing again is harmless and can be proven again.
	lsn2, err := Fence(ctx, p.source, FenceOptions{Shard: shard, Move: 1, Tables: moveTables, Reason: ReasonMovingTo("g1"), Marker: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := CatchUp(ctx, p.target, spec, lsn2); err != nil {
		t.Fatalf("CatchUp after a second fence: %v", err)
	}

	// A disabled subscription applies nothing: no proof.
	exec(t, p.target, "ALTER SUBSCRIPTION "+pgx.Identifier{spec.Name}.Sanitize()+" DISABLE")
	waitFor(t, 10*time.Second, "the apply worker to stop", func() (bool, string, error) {
		var running bool
		err := p.target.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL)", spec.Name).Scan(&running)
		return !running, "", err
	})
	second := spec
	second.Move = 2
	lsn3, err := Fence(ctx, p.source, FenceOptions{Shard: shard, Move: 2, Tables: moveTables, Reason: ReasonMovingTo("g1"), Marker: true})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err = CatchUp(short, p.target, second, lsn3)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "marker row of move 2") || !strings.Contains(err.Error(), "is disabled") {
		t.Fatalf("CatchUp with the subscription disabled: %v", err)
	}

	// Replicate enables it again, and the proof follows.
	if err := Replicate(ctx, p.source, p.target, spec); err != nil {
		t.Fatal(err)
	}
	if err := CatchUp(ctx, p.target, second, lsn3); err != nil {
		t.Fatalf("CatchUp after Replicate re-enabled the subscription: %v", err)
	}
	if err := CatchUp(ctx, p.target, second, "not an lsn"); err == nil {
		t.Error("CatchUp accepted a malformed position")
	}
}
