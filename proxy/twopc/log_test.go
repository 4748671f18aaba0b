package twopc

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
)

func TestLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := e.log

	if _, err := OpenLog(ctx, e.cl.Groups[0].Writer.AppDSN(), "no such schema", 0, nil); err == nil {
		t.Error("OpenLog on a catalog without the table: no error")
	}

	gid := e.begin(t, "g0", "g1")
	rec, err := l.Get(ctx, gid)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if rec.State != StatePrepare || !slices.Equal(rec.Groups, []string{"g0", "g1"}) || rec.Node != testNode ||
		rec.User != pgtest.User || rec.Database != pgtest.Database || rec.Created.IsZero() {
		t.Errorf("Get after Begin = %+v", rec)
	}
	for _, bad := range []Record{
		{GID: gid, Groups: []string{"g0"}},                                  // taken
		{GID: "xa:1", Groups: []string{"g0"}},                               // foreign prefix
		{GID: GIDPrefix + strings.Repeat("x", 200), Groups: []string{"g0"}}, // too long
		{GID: NewGID("p0")},                                                 // no groups
	} {
		if err := l.Begin(ctx, bad); err == nil {
			t.Errorf("Begin(%+v): no error", bad)
		}
	}

	if err := l.Decide(ctx, gid, true); err != nil {
		t.Fatalf("Decide commit: %v", err)
	}
	if err := l.Decide(ctx, gid, true); err != nil {
		t.Errorf("Decide commit again = %v, want nil (idempotent)", err)
	}
	err = l.Decide(ctx, gid, false)
	var decided *DecidedError
	if !errors.Is(err, ErrDecided) || !errors.As(err, &decided) || decided.State != StateCommit || decided.GID != gid {
		t.Errorf("Decide abort of a committed transaction = %v, want a DecidedError in state commit", err)
	}
	if err := l.Decide(ctx, NewGID("p0"), true); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decide of an unknown transaction = %v, want ErrNotFound", err)
	}
	if rec, err := l.Get(ctx, gid); err != nil || rec.State != StateCommit || rec.Updated.Before(rec.Created) {
		t.Errorf("Get after Decide = %+v, %v", rec, err)
	}

	// Coordinator and recovery racing: exactly one decision wins, every caller learns it.
	race := e.begin(t, "g0")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners = map[bool]int{}
		losers  = map[State]int{}
	)
	for i := range 8 {
		commit := i%2 == 0
		wg.Go(func() {
			err := l.Decide(ctx, race, commit)
			mu.Lock()
			defer mu.Unlock()
			var d *DecidedError
			switch {
			case err == nil:
				winners[commit]++
			case errors.As(err, &d):
				losers[d.State]++
			default:
				t.Errorf("Decide: %v", err)
			}
		})
	}
	wg.Wait()
	final := e.state(t, race)
	want := final == StateCommit
	if winners[want] != 4 || winners[!want] != 0 || losers[final] != 4 || len(losers) != 1 {
		t.Errorf("racing decisions: final %q, winners %v, losers %v; want the 4 callers asking %q to succeed and the 4 others to learn it",
			final, winners, losers, final)
	}

	records, err := l.List(ctx)
	if err != nil || len(records) != 2 || records[0].GID != gid || records[1].GID != race {
		t.Fatalf("List = %+v, %v; want the two records, oldest first", records, err)
	}
	if err := l.Forget(ctx, gid); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if err := l.Forget(ctx, gid); err != nil {
		t.Errorf("Forget again = %v, want nil", err)
	}
	if _, err := l.Get(ctx, gid); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Forget = %v, want ErrNotFound", err)
	}
}
