package move

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestReplicate: a fenced target receives exactly the shard's rows of every table (keyed by
// customer_id or aid, plain, schema-qualified or partitioned), then the source's live changes
// of the shard, and never a row of another shard; a table added to the spec later is
// published, refreshed and copied; every call may be repeated.
func TestReplicate(t *testing.T) {
	const shard = 5
	p := newMovePair(t, moveSchemaDDL)
	exec(t, p.source, fillKeys(-40, 60, -1))
	exec(t, p.target, fillKeys(1000, 1100, shard)) // the target's own shards
	ctx := testCtx(t, 45*time.Second)

	// The target is fenced against application writes before the copy starts.
	if _, err := Fence(ctx, p.target, FenceOptions{Shard: shard, Move: 1, Tables: moveTables, Reason: ReasonArrivingFrom("g0")}); err != nil {
		t.Fatal(err)
	}

	first := p.forward(1, shard, moveTables[:3])
	for range 2 {
		if err := Replicate(ctx, p.source, p.target, first); err != nil {
			t.Fatalf("Replicate: %v", err)
		}
	}
	waitReady(t, p, first)

	all := p.forward(1, shard, moveTables)
	for range 2 {
		if err := Replicate(ctx, p.source, p.target, all); err != nil {
			t.Fatalf("Replicate with a table more: %v", err)
		}
	}
	prog := waitReady(t, p, all)
	if ok, why := sameShardRows(t, p.source, p.target, moveTables, shard); !ok {
		t.Fatalf("after the copy: %s", why)
	}
	var want int64
	for i, tb := range moveTables {
		n := countWhere(t, p.source, tb, shardFilter("r."+tb.keyIdent(), shard))
		if n == 0 || prog.Tables[i].Rows != n || prog.Tables[i].State != SyncReady {
			t.Errorf("progress of %s: %+v, want %d rows, ready", tb.Name, prog.Tables[i], n)
		}
		want += n
	}
	if prog.Rows != want || prog.Copying != 0 || prog.LagBytes < 0 || !prog.Enabled {
		t.Errorf("progress %+v: want %d rows, none copying, a lag", prog, want)
	}
	if len(prog.Tables) != len(moveTables)+1 || prog.Tables[len(moveTables)].Table != markerTable || prog.Tables[len(moveTables)].State != SyncReady {
		t.Errorf("progress tables %+v: want the marker table last, ready", prog.Tables)
	}
	assertOnlyOwnRows(t, p, shard)

	// Live changes, of the shard and of others.
	exec(t, p.source, fillKeys(101, 140, -1)+`
		UPDATE billing.invoices SET amount = amount + 1000 WHERE customer_id IN (5, -27, 37);
		DELETE FROM events WHERE customer_id = 21 AND id = 1;
		DELETE FROM billing.invoices WHERE customer_id = 53 AND id = 2;
		UPDATE pgbench_accounts SET aid = 1022 WHERE aid = 21;  -- leaves the shard
		UPDATE pgbench_accounts SET aid = 1029 WHERE aid = 22;  -- enters it
		UPDATE customers SET name = 'other shard' WHERE customer_id = 6;`)
	waitFor(t, 15*time.Second, "the live changes", func() (bool, string, error) {
		ok, why := sameShardRows(t, p.source, p.target, moveTables, shard)
		return ok, why, nil
	})
	acc := moveTables[2]
	if n := countWhere(t, p.target, acc, "aid IN (21, 1029)"); n != 1 || countWhere(t, p.target, acc, "aid = 1029") != 1 {
		t.Errorf("accounts moved across the shard's edge: want only 1029 on the target")
	}
	assertOnlyOwnRows(t, p, shard)

	// A subscription left detached (a drop interrupted half-way) is attached and enabled
	// again, and resumes from its slot: nothing written meanwhile is missed.
	exec(t, p.target, "ALTER SUBSCRIPTION shardwire_move_1 DISABLE; ALTER SUBSCRIPTION shardwire_move_1 SET (slot_name = NONE)")
	exec(t, p.source, fillKeys(141, 180, -1))
	if err := Replicate(ctx, p.source, p.target, all); err != nil {
		t.Fatalf("Replicate of a detached subscription: %v", err)
	}
	waitFor(t, 15*time.Second, "the changes made while detached", func() (bool, string, error) {
		ok, why := sameShardRows(t, p.source, p.target, moveTables, shard)
		return ok, why, nil
	})
}

// waitReady waits until Progress says every table of spec is ready and returns it.
func waitReady(t *testing.T, p *movePair, spec Spec) *ReplicationProgress {
	t.Helper()
	var prog *ReplicationProgress
	waitFor(t, 20*time.Second, "every table ready", func() (bool, string, error) {
		var err error
		prog, err = Progress(context.Background(), p.source, p.target, spec)
		if err != nil {
			return false, "", err
		}
		return prog.Ready, fmt.Sprintf("%+v", prog), nil
	})
	return prog
}

// assertOnlyOwnRows checks that the target holds, of shards other than shard, only its own
// rows (keys from 1000 on, plus 1022 which left the shard on the source after the copy and
// so was deleted, not inserted): none of the source's.
func assertOnlyOwnRows(t *testing.T, p *movePair, shard int) {
	t.Helper()
	for _, tb := range moveTables {
		cond := fmt.Sprintf("%s <> %d AND r.%s < 1000", ShardExpr("r."+tb.keyIdent()), shard, tb.keyIdent())
		if n := countWhere(t, p.target, tb, cond); n != 0 {
			t.Errorf("%s: %d rows of other shards came from the source", tb.Name, n)
		}
	}
}
