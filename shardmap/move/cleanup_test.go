package move

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// TestDropReplication: both directions of a move, dropped twice each, leave nothing on
// either server; Leftovers lists exactly what exists before.
func TestDropReplication(t *testing.T) {
	const shard = 3
	p := newMovePair(t, moveSchemaDDL)
	exec(t, p.source, fillKeys(-40, 60, -1))
	ctx := testCtx(t, 45*time.Second)
	fwd, rev := p.forward(4, shard, moveTables), p.reverse(4, shard, moveTables)
	if err := Replicate(ctx, p.source, p.target, fwd); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p, fwd)
	if err := Replicate(ctx, p.target, p.source, rev); err != nil {
		t.Fatal(err)
	}
	src, tgt := leftovers(t, p.source), leftovers(t, p.target)
	wantSrc := []string{"publication shardwire_move_4", "slot shardwire_move_4 (database " + p.db + ")", "subscription shardwire_move_4_rev"}
	wantTgt := []string{"publication shardwire_move_4_rev", "slot shardwire_move_4_rev (database " + p.db + ")", "subscription shardwire_move_4"}
	if !slices.Equal(src, wantSrc) || !slices.Equal(tgt, wantTgt) {
		t.Fatalf("Leftovers before the drop:\nsource %q\nwant   %q\ntarget %q\nwant   %q", src, wantSrc, tgt, wantTgt)
	}

	// The source's side dropped alone (the target unreachable): the subscription left on the
	// target has lost its slot, which Replicate refuses to paper over.
	exec(t, p.target, "ALTER SUBSCRIPTION shardwire_move_4 DISABLE")
	if err := DropReplication(ctx, p.source, nil, fwd); err != nil {
		t.Fatalf("DropReplication without the target: %v", err)
	}
	if l := leftovers(t, p.source); slices.Contains(l, wantSrc[0]) || slices.Contains(l, wantSrc[1]) {
		t.Fatalf("source leftovers after dropping its side: %q", l)
	}
	if err := Replicate(ctx, p.source, p.target, fwd); err == nil || !strings.Contains(err.Error(), "slot shardwire_move_4 is gone") {
		t.Fatalf("Replicate with the slot gone: %v, want a refusal", err)
	}

	for range 2 {
		if err := DropReplication(ctx, p.source, p.target, fwd); err != nil {
			t.Fatalf("DropReplication forward: %v", err)
		}
		if err := DropReplication(ctx, p.target, p.source, rev); err != nil {
			t.Fatalf("DropReplication reverse: %v", err)
		}
	}
	if src, tgt := leftovers(t, p.source), leftovers(t, p.target); len(src)+len(tgt) != 0 {
		t.Fatalf("Leftovers after the drop: source %q, target %q", src, tgt)
	}
}

// TestDropReplicationSourceKilled: the source dies while a table is being copied (its
// table-copy slot exists); the target's side is dropped without it, and once the source is
// back a second call removes the slot, the orphan table-copy slot and the publication.
func TestDropReplicationSourceKilled(t *testing.T) {
	const shard = 5
	p := newMovePair(t, moveSchemaDDL)
	exec(t, p.source, fillKeys(-40, 60, -1))
	ctx := testCtx(t, 45*time.Second)
	spec := p.forward(5, shard, moveTables)

	// An uncommitted row on the target with a key the copy brings holds the copy of
	// customers after its slot was made on the source.
	blocker := pgtest.Connect(t, p.tgtSrv.SuperDSN(p.db))
	btx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = btx.Rollback(context.Background()) }()
	exec(t, blocker, "INSERT INTO customers VALUES (5, 'blocker')")

	if err := Replicate(ctx, p.source, p.target, spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a table copy blocked on the target", func() (bool, string, error) {
		var waiting bool
		err := p.target.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy c
			JOIN pg_locks l ON l.pid = c.pid AND NOT l.granted WHERE c.relid = 'customers'::regclass)`).Scan(&waiting)
		return waiting, "", err
	})
	if l := leftovers(t, p.source); !containsAll(l, "slot shardwire_move_5 ", "_sync_") {
		t.Fatalf("source leftovers during the copy: %q, want the slot and a table-copy slot", l)
	}
	prog, err := Progress(ctx, p.source, p.target, spec)
	if err != nil {
		t.Fatal(err)
	}
	if c := prog.Tables[0]; prog.Ready || c.State != SyncDataCopy || c.Rows != 0 || c.Copying <= 0 || prog.Copying < c.Copying {
		t.Errorf("progress during the copy: %+v, want customers copying, rows not yet visible", prog)
	}

	srv := p.srcSrv
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := DropReplication(ctx, nil, p.target, spec); err != nil {
		t.Fatalf("DropReplication without the source: %v", err)
	}
	if l := leftovers(t, p.target); len(l) != 0 {
		t.Errorf("target leftovers: %q", l)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	source := pgtest.Connect(t, srv.SuperDSN(p.db))
	if l := leftovers(t, source); !containsAll(l, "publication shardwire_move_5", "slot shardwire_move_5 ", "_sync_") {
		t.Fatalf("source leftovers after the restart: %q, want the publication, slot and table-copy slot", l)
	}
	for range 2 {
		if err := DropReplication(ctx, source, p.target, spec); err != nil {
			t.Fatalf("DropReplication: %v", err)
		}
	}
	if src, tgt := leftovers(t, source), leftovers(t, p.target); len(src)+len(tgt) != 0 {
		t.Fatalf("leftovers: source %q, target %q", src, tgt)
	}
}
