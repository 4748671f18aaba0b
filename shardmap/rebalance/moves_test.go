package rebalance_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
	"github.com/shardwire/shardwire/shardmap/rebalance"
)

// seed writes rows of shard straight to its owner (client -1: not the workload's).
func seed(t *testing.T, e *env, shard shardmap.Shard, rows int) {
	t.Helper()
	conn := e.writer(e.owner(shard))
	defer conn.Close(context.Background())
	_, err := conn.Exec(context.Background(), `INSERT INTO items (customer_id, client, seq, note)
		SELECT $1::bigint + 16 * (g % 500), -1, g, repeat('x', 40) FROM generate_series(1, $2::int) g`, int64(shard), rows)
	if err != nil {
		t.Fatalf("seed shard %d: %v", shard, err)
	}
}

// TestMoves runs the acceptance of online shard moves on one cluster, in order: a move under
// load with a direct-write prober, its reversal, a rebalance from four groups to five, a
// driver killed after each phase in turn, and the moves a stopped or cut-off proxy prevents.
func TestMoves(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 10 Postgres servers and 3 nodes")
	}
	e := startEnv(t)
	ctx := context.Background()
	const shard = shardmap.Shard(5)
	var first *shardmap.Move

	t.Run("move under load loses nothing and has one writer", func(t *testing.T) {
		seed(t, e, shard, 100_000)
		source := e.owner(shard)
		// A sharded table the target lacks: the move copies its definition, then its rows.
		for name := range e.writers {
			if name == "g4" {
				continue
			}
			w := e.writer(name)
			if _, err := w.Exec(ctx, `CREATE TABLE notes (customer_id bigint NOT NULL, id bigint NOT NULL, body text,
				PRIMARY KEY (customer_id, id)) PARTITION BY HASH (customer_id);
				CREATE TABLE notes_0 PARTITION OF notes FOR VALUES WITH (MODULUS 2, REMAINDER 0);
				CREATE TABLE notes_1 PARTITION OF notes FOR VALUES WITH (MODULUS 2, REMAINDER 1);
				GRANT ALL ON notes TO app`); err != nil {
				t.Fatal(err)
			}
			_ = w.Close(ctx)
		}
		w := e.writer(source)
		if _, err := w.Exec(ctx, "INSERT INTO notes SELECT $1::bigint + 16 * g, g, 'n' FROM generate_series(1, 50) g", int64(shard)); err != nil {
			t.Fatal(err)
		}
		_ = w.Close(ctx)
		l := startLoad(t, e, shard, 6)
		var p *prober
		r := e.runner(func(o *rebalance.Options) {
			logged := o.OnProgress
			o.OnProgress = func(pr rebalance.Progress) {
				logged(pr)
				if p == nil && pr.Move.Phase == shardmap.PhaseCopying {
					p = startProber(t, e, shard, source, "g4")
				}
			}
		})
		time.Sleep(300 * time.Millisecond) // some load before the move
		mv, err := r.Start(ctx, shard, "g4")
		time.Sleep(300 * time.Millisecond) // and after it
		l.stop()
		if err != nil {
			t.Fatalf("move: %v", err)
		}
		if p == nil {
			t.Fatal("the prober never started")
		}
		p.check(t, source, "g4")
		first = mv
		t.Logf("move %d: %s → %s in %v, writes held %.3fs, %d rows, %s", mv.ID, mv.Source, mv.Target,
			mv.UpdatedAt.Sub(mv.CreatedAt), mv.Detail.PauseSeconds, mv.Detail.Rows, mv.Detail.Verification)
		logPhases(t, mv)
		if mv.Phase != shardmap.PhaseDone || e.owner(shard) != "g4" {
			t.Fatalf("move ended %s with the shard at %s", mv.Phase, e.owner(shard))
		}
		l.check(t, e)
		checkNotWritable(t, e, source, shard)
		g4 := e.writer("g4")
		var notes int
		if err := g4.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&notes); err != nil || notes != 50 {
			t.Errorf("the table missing on the target holds %d rows there after the move (%v), want 50", notes, err)
		}
		_ = g4.Close(ctx)
		if l.maxPauseShard >= 2*time.Second {
			t.Errorf("longest client-seen write pause on shard %d: %v, want < 2s", shard, l.maxPauseShard)
		}
		if l.maxPauseOther >= time.Second {
			t.Errorf("writes to other shards paused %v, want < 1s (the fence's lock wait)", l.maxPauseOther)
		}
		if mv.Detail.Rows < 100_000 {
			t.Errorf("the move reports %d rows copied, want at least the 100000 seeded", mv.Detail.Rows)
		}
	})

	t.Run("reverse returns the shard with no loss", func(t *testing.T) {
		if first == nil {
			t.Skip("needs the first move")
		}
		l := startLoad(t, e, shard, 6)
		r := e.runner(nil)
		time.Sleep(200 * time.Millisecond)
		mv, err := r.Reverse(ctx, first.ID)
		time.Sleep(200 * time.Millisecond)
		l.stop()
		if err != nil {
			t.Fatalf("reverse: %v", err)
		}
		if mv.Phase != shardmap.PhaseDone || e.owner(shard) != first.Source {
			t.Fatalf("reverse ended %s with the shard at %s, want done at %s", mv.Phase, e.owner(shard), first.Source)
		}
		orig, err := e.cat.Move(ctx, first.ID)
		if err != nil || orig.Phase != shardmap.PhaseReversed {
			t.Errorf("the reversed move is %v (%v), want reversed", orig.Phase, err)
		}
		l.check(t, e)
		checkNotWritable(t, e, "g4", shard)
		if _, err := r.Cleanup(ctx, mv.ID); err != nil {
			t.Fatalf("cleanup: %v", err)
		}
		if slots := e.moveSlots(); len(slots) > 0 {
			t.Errorf("move slots left after cleanup: %v", slots)
		}
	})

	t.Run("rebalance from four groups to five", func(t *testing.T) {
		m, err := e.cat.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		steps := rebalance.Plan(m)
		counts := map[int]int{}
		owner := m.Owner
		for _, st := range steps {
			owner[st.Shard] = m.GroupIndex(st.To)
		}
		for g := range m.Groups {
			n := 0
			for _, o := range owner {
				if o == g {
					n++
				}
			}
			counts[n]++
		}
		if len(steps) != 3 || counts[4] != 1 || counts[3] != 4 {
			t.Fatalf("plan %v leads to %v groups per shard count, want 4/3/3/3/3", steps, counts)
		}
		r := e.runner(nil)
		for _, st := range steps {
			l := startLoad(t, e, st.Shard, 4)
			time.Sleep(100 * time.Millisecond)
			mv, err := r.Start(ctx, st.Shard, st.To)
			l.stop()
			if err != nil {
				t.Fatalf("%v: %v", st, err)
			}
			l.check(t, e)
			checkNotWritable(t, e, st.From, st.Shard)
			if _, err := r.Cleanup(ctx, mv.ID); err != nil {
				t.Fatalf("cleanup after %v: %v", st, err)
			}
		}
		if m, err = e.cat.Load(ctx); err != nil {
			t.Fatal(err)
		}
		sizes, err := r.ShardSizes(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if sizes[shard] < 100_000*40 || sizes[1] != 0 && sizes[1] >= sizes[shard] {
			t.Errorf("shard sizes %v: shard %d holds the 100000 seeded rows of 40+ bytes, shard 1 nothing", sizes, shard)
		}
		if again := rebalance.Plan(m); len(again) != 0 {
			t.Errorf("after the rebalance the plan still has %v", again)
		}
		if slots := e.moveSlots(); len(slots) > 0 {
			t.Errorf("move slots left: %v", slots)
		}
	})

	t.Run("a killed driver is resumed or aborted after every phase", func(t *testing.T) {
		const k = shardmap.Shard(6)
		phases := []shardmap.MovePhase{shardmap.PhasePlanned, shardmap.PhaseCopying, shardmap.PhaseBuffering,
			shardmap.PhaseFenced, shardmap.PhaseCaughtUp, shardmap.PhaseReverseReady, shardmap.PhaseSwitched}
		for i, phase := range phases {
			abort := i%2 == 1 && phase.Abortable()
			name := fmt.Sprintf("%s then resume", phase)
			if abort {
				name = fmt.Sprintf("%s then abort", phase)
			}
			t.Run(name, func(t *testing.T) {
				source := e.owner(k)
				target := otherGroup(source)
				l := startLoad(t, e, k, 4)
				killed := e.runner(func(o *rebalance.Options) { o.StopAfter = phase })
				mv, err := killed.Start(ctx, k, target)
				if !errors.Is(err, rebalance.ErrStopped) {
					l.stop()
					t.Fatalf("driver stopped after %s: %v (move %+v)", phase, err, mv)
				}
				r := e.runner(nil)
				if abort {
					mv, err = r.Abort(ctx, mv.ID, "test abort after "+string(phase))
				} else {
					mv, err = r.Drive(ctx, mv.ID)
				}
				time.Sleep(100 * time.Millisecond)
				l.stop()
				if err != nil {
					t.Fatalf("after %s: %v", phase, err)
				}
				l.check(t, e)
				want, owner := shardmap.PhaseDone, target
				if abort {
					want, owner = shardmap.PhaseAborted, source
				}
				if mv.Phase != want || e.owner(k) != owner {
					t.Fatalf("move ended %s with the shard at %s, want %s at %s", mv.Phase, e.owner(k), want, owner)
				}
				m, err := e.cat.Load(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if m.State[k] != shardmap.StateActive {
					t.Errorf("shard %d is %s after the move", k, m.State[k])
				}
				if !abort {
					checkNotWritable(t, e, source, k)
					if _, err := r.Cleanup(ctx, mv.ID); err != nil {
						t.Fatalf("cleanup: %v", err)
					}
				}
				if slots := e.moveSlots(); len(slots) > 0 {
					t.Errorf("move slots left: %v", slots)
				}
			})
		}
	})

	t.Run("shardctl move, moves, cleanup and rebalance --dry-run", func(t *testing.T) { shardctlSubtest(t, e) })

	t.Run("a stopped proxy aborts the move before the buffer", func(t *testing.T) {
		const k = shardmap.Shard(9)
		source := e.owner(k)
		r := e.runner(func(o *rebalance.Options) {
			o.StopAfter = shardmap.PhaseCopying
			o.AckTimeout = 3 * time.Second
		})
		mv, err := r.Start(ctx, k, otherGroup(source))
		if !errors.Is(err, rebalance.ErrStopped) {
			t.Fatalf("move to copying: %v", err)
		}
		epoch := mustEpoch(t, e)
		node := e.dc.Nodes[1]
		if err := node.Kill(); err != nil {
			t.Fatal(err)
		}
		mv, err = e.runner(func(o *rebalance.Options) { o.AckTimeout = 3 * time.Second }).Drive(ctx, mv.ID)
		var aborted *rebalance.AbortedError
		if !errors.As(err, &aborted) || !strings.Contains(err.Error(), node.Name) {
			t.Fatalf("move with %s killed: %v, want an abort naming it", node.Name, err)
		}
		if e.owner(k) != source || mv.Phase != shardmap.PhaseAborted {
			t.Errorf("the map gives shard %d to %s (move %s), want it left at %s", k, e.owner(k), mv.Phase, source)
		}
		if m, err := e.cat.Load(ctx); err != nil || m.State[k] != shardmap.StateActive || m.Epoch <= epoch {
			t.Errorf("map after the abort: %v %v", m, err)
		}
		if err := node.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitEpoch(mustEpoch(t, e))
		if slots := e.moveSlots(); len(slots) > 0 {
			t.Errorf("move slots left: %v", slots)
		}
	})

	t.Run("a proxy cut off from the catalog cannot write to the old owner and stops routing", func(t *testing.T) {
		const k = shardmap.Shard(10)
		source := e.owner(k)
		cutNode := e.dc.Nodes[2]
		conn := pgtest.Connect(t, cutNode.DSN())
		defer conn.Close(ctx)
		customer := customersOf(k, 1, 9000)[0]
		r := e.runner(func(o *rebalance.Options) { o.StopAfter = shardmap.PhaseFenced })
		mv, err := r.Start(ctx, k, otherGroup(source))
		if !errors.Is(err, rebalance.ErrStopped) {
			t.Fatalf("move to fenced: %v", err)
		}
		e.relay.Cut()
		defer e.relay.Restore()
		if mv, err = e.runner(nil).Drive(ctx, mv.ID); err != nil || mv.Phase != shardmap.PhaseDone {
			t.Fatalf("finish the move: %v (%v)", err, mv.Phase)
		}
		// p2 still holds the frozen map: its write for the shard is held, then refused; it
		// never lands on the old owner.
		_, err = conn.Exec(ctx, "INSERT INTO items (customer_id, client, seq) VALUES ($1, -3, 1)", customer)
		if err == nil {
			t.Errorf("a write through the cut-off node succeeded")
		}
		old := e.writer(source)
		defer old.Close(ctx)
		var n int
		if err := old.QueryRow(ctx, "SELECT count(*) FROM items WHERE customer_id = $1 AND client = -3", customer).Scan(&n); err != nil || n != 0 {
			t.Errorf("the old owner has %d rows written through the cut-off node (%v)", n, err)
		}
		// Once its lease has run out, routed work is refused with a retryable error.
		waitFor(t, 15*time.Second, "the cut-off node to refuse routed reads", func() bool {
			var v int64
			err := conn.QueryRow(ctx, "SELECT count(*) FROM items WHERE customer_id = $1", customer).Scan(&v)
			return sqlState(err) == "57P03"
		})
		e.relay.Restore()
		e.waitEpoch(mustEpoch(t, e))
		if _, err := e.runner(nil).Cleanup(ctx, mv.ID); err != nil {
			t.Fatalf("cleanup: %v", err)
		}
	})
}

// shardctlSubtest drives a move, the move list, cleanup and a dry-run rebalance through the
// shardctl binary, as an operator would.
func shardctlSubtest(t *testing.T, e *env) {
	dir := t.TempDir()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "shardctl")
	build := exec.Command("go", "build", "-o", bin, "./cmd/shardctl")
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build shardctl: %v\n%s", err, out)
	}
	shardctl := func(args ...string) (string, error) {
		full := append([]string{"--admin", e.dc.Nodes[0].Admin}, args...)
		cmd := exec.Command(bin, full...)
		cmd.Env = append(os.Environ(), "SHARDWIRE_CATALOG="+e.catalogDSN, "SHARDWIRE_DB_USER=postgres")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	const k = shardmap.Shard(12)
	source := e.owner(k)
	target := otherGroup(source)
	out1, err := shardctl("move", "--shard", "12", "--to", target, "--db-sslmode", "disable", "--grace", "300ms")
	t.Logf("shardctl move:\n%s", out1)
	if err != nil || !strings.Contains(out1, "move ") || !strings.Contains(out1, ": done") || e.owner(k) != target {
		t.Fatalf("shardctl move: %v; shard at %s", err, e.owner(k))
	}
	out2, err := shardctl("moves", "--limit", "3")
	if err != nil || !strings.Contains(out2, "done") || !strings.Contains(out2, source) {
		t.Errorf("shardctl moves: %v\n%s", err, out2)
	}
	out3, err := shardctl("cleanup", "--shard", "12", "--db-sslmode", "disable", "--cleanup-after", "1ms")
	if err != nil || !strings.Contains(out3, "cleaned up") {
		t.Errorf("shardctl cleanup: %v\n%s", err, out3)
	}
	out4, err := shardctl("move", "--shard", "12", "--resume", "--db-sslmode", "disable")
	if err == nil || !strings.Contains(out4, "no open move") {
		t.Errorf("shardctl move --resume without an open move: %v\n%s", err, out4)
	}
	out5, err := shardctl("rebalance", "--dry-run", "--db-sslmode", "disable")
	if err != nil || !strings.Contains(out5, "shards per group afterwards") && !strings.Contains(out5, "balanced") {
		t.Errorf("shardctl rebalance --dry-run: %v\n%s", err, out5)
	}
	if slots := e.moveSlots(); len(slots) > 0 {
		t.Errorf("move slots left: %v", slots)
	}
}

func mustEpoch(t *testing.T, e *env) int64 {
	t.Helper()
	n, err := e.cat.Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// otherGroup is a move target for a shard owned by group: g4, or g0 for g4's shards.
func otherGroup(group string) string {
	if group == "g4" {
		return "g0"
	}
	return "g4"
}

// logPhases logs when the move entered each phase, relative to its start.
func logPhases(t *testing.T, mv *shardmap.Move) {
	t.Helper()
	start := mv.Detail.Phases[shardmap.PhasePlanned]
	var b strings.Builder
	for _, p := range []shardmap.MovePhase{shardmap.PhaseCopying, shardmap.PhaseBuffering, shardmap.PhaseFenced,
		shardmap.PhaseCaughtUp, shardmap.PhaseReverseReady, shardmap.PhaseSwitched, shardmap.PhaseDone} {
		if at, ok := mv.Detail.Phases[p]; ok {
			fmt.Fprintf(&b, " %s@%v", p, at.Sub(start).Round(time.Millisecond))
		}
	}
	t.Logf("move %d phases:%s", mv.ID, b.String())
}
