package shardmap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// TestCatalogMoves checks the move records: creation refusals, the compare-and-set of phases
// with the map published in the same transaction, the driver lock, and a reversal's bookkeeping.
func TestCatalogMoves(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	cat := openCatalog(ctx, t, w.AppDSN(), "moves test")
	boot := configMap(t, w.Addr())
	if _, err := cat.Bootstrap(ctx, boot, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Update(ctx, "test", "second group", func(m *Map) (*Map, error) {
		return AddGroup(m, Group{Name: "g1", Region: "r", Writer: "127.0.0.1:1"})
	}); err != nil {
		t.Fatal(err)
	}
	src := boot.Groups[0].Name

	for _, tt := range []struct {
		req  MoveRequest
		want string
	}{
		{MoveRequest{Shard: 3, Target: "nope", By: "t"}, "unknown shard group"},
		{MoveRequest{Shard: 3, Target: src, By: "t"}, "already owned"},
		{MoveRequest{Shard: 16, Target: "g1", By: "t"}, "shards are 0..15"},
	} {
		if _, err := cat.CreateMove(ctx, tt.req); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CreateMove(%+v) = %v, want %q", tt.req, err, tt.want)
		}
	}

	mv, err := cat.CreateMove(ctx, MoveRequest{Shard: 3, Target: "g1", By: "t", Databases: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	if mv.Phase != PhasePlanned || mv.Source != src || mv.Target != "g1" {
		t.Fatalf("created %+v", mv)
	}
	var open *OpenMoveError
	if _, err := cat.CreateMove(ctx, MoveRequest{Shard: 3, Target: "g1", By: "t"}); !errors.As(err, &open) || open.Move.ID != mv.ID {
		t.Errorf("second move of the shard: %v, want an OpenMoveError naming move %d", err, mv.ID)
	}

	lock, err := cat.LockMove(ctx, mv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.LockMove(ctx, mv.ID); !errors.Is(err, ErrMoveBusy) {
		t.Errorf("second lock: %v, want ErrMoveBusy", err)
	}
	lock.Release()
	lock, err = cat.LockMove(ctx, mv.ID)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	if err := lock.Held(ctx); err != nil {
		t.Errorf("Held on a fresh lock: %v", err)
	}
	// The server drops the lock's connection: the driver must learn it has lost the lock.
	admin := pgtest.Connect(t, w.SuperDSN(pgtest.Database))
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
		fmt.Sprintf("shardctl-move-%d", mv.ID)); err != nil {
		t.Fatal(err)
	}
	if err := lock.Held(ctx); err == nil {
		t.Error("Held after the server dropped the lock's connection: no error")
	}
	lock.Release()
	if lock, err = cat.LockMove(ctx, mv.ID); err != nil {
		t.Fatalf("lock after the first was lost: %v", err)
	}
	lock.Release()

	epoch, _ := cat.Epoch(ctx)
	freeze := func(cur *Map, mv *Move) (*Map, error) {
		next := *cur
		next.State[mv.Shard] = StateFrozen
		return &next, nil
	}
	mv, published, err := cat.AdvanceMove(ctx, mv.ID, PhasePlanned, PhaseBuffering, "t", nil, freeze)
	if err != nil {
		t.Fatal(err)
	}
	if published == nil || published.Epoch != epoch+1 || published.State[3] != StateFrozen || mv.Detail.FrozenEpoch != epoch+1 {
		t.Errorf("advance published %+v, move %+v", published, mv.Detail)
	}
	if _, ok := mv.Detail.Phases[PhaseBuffering]; !ok {
		t.Error("the phase's time is not recorded")
	}
	// A stale driver's step changes nothing.
	if _, _, err := cat.AdvanceMove(ctx, mv.ID, PhasePlanned, PhaseCopying, "t", nil, freeze); !errors.Is(err, ErrMoveConflict) {
		t.Errorf("stale advance: %v, want ErrMoveConflict", err)
	}
	if now, _ := cat.Epoch(ctx); now != epoch+1 {
		t.Errorf("a refused advance published epoch %d", now)
	}
	switchOwner := func(cur *Map, mv *Move) (*Map, error) {
		next := *cur
		next.Owner[mv.Shard] = cur.GroupIndex(mv.Target)
		next.State[mv.Shard] = StateActive
		return &next, nil
	}
	if mv, _, err = cat.AdvanceMove(ctx, mv.ID, PhaseBuffering, PhaseSwitched, "t", nil, switchOwner); err != nil {
		t.Fatal(err)
	}
	if mv, _, err = cat.AdvanceMove(ctx, mv.ID, PhaseSwitched, PhaseDone, "t", nil, nil); err != nil {
		t.Fatal(err)
	}

	// The reverse of a done move: the original becomes reversing, then reversed.
	rev, err := cat.CreateMove(ctx, MoveRequest{ReverseOf: mv.ID, By: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if rev.Source != "g1" || rev.Target != src || rev.Shard != 3 || rev.ReverseOf != mv.ID {
		t.Errorf("reverse move %+v", rev)
	}
	if orig, _ := cat.Move(ctx, mv.ID); orig.Phase != PhaseReversing {
		t.Errorf("reversed move is %s, want reversing", orig.Phase)
	}
	if _, _, err := cat.AdvanceMove(ctx, rev.ID, PhasePlanned, PhaseAborted, "t", nil, nil); err != nil {
		t.Fatal(err)
	}
	if orig, _ := cat.Move(ctx, mv.ID); orig.Phase != PhaseDone {
		t.Errorf("after the reversal's abort the move is %s, want done again", orig.Phase)
	}
	moves, err := cat.Moves(ctx, 0)
	if err != nil || len(moves) != 2 || moves[0].ID != rev.ID {
		t.Errorf("Moves = %v, %v", moves, err)
	}
}
