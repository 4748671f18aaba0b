package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/shardmap"
)

// moveShard is the shard the move tests freeze and move; customers 5, 21, 37, ... live in it.
const moveShard = shardmap.Shard(5)

// moveFixture is two groups (g0 owns shards 0-7, g1 shards 8-15 at first) behind a proxy
// without a catalog: the tests publish map epochs into the node's store themselves, as a
// catalog load would.
type moveFixture struct {
	p       *testProxy
	writers map[string]*pgx.Conn
	nextID  atomic.Int64
}

func newMoveFixture(t *testing.T) *moveFixture {
	t.Helper()
	p := startShardedProxy(t, 2, 0, nil)
	c := connect(t, p.dsn(""))
	execAll(t, c, `CREATE TABLE mv (customer_id bigint NOT NULL, id bigint NOT NULL, v int NOT NULL DEFAULT 0,
		PRIMARY KEY (customer_id, id))`, `CREATE TABLE mv_plain (id int)`)
	return &moveFixture{p: p, writers: p.writers(t)}
}

// publish sets shard's state and owner (a group name) in a new epoch of the node's map.
func (fx *moveFixture) publish(t *testing.T, state shardmap.ShardState, owner string) *shardmap.Map {
	t.Helper()
	store := fx.p.srv.topo.store
	cur := store.Current()
	next := *cur
	next.Epoch = cur.Epoch + 1
	next.State[moveShard] = state
	if next.Owner[moveShard] = next.GroupIndex(owner); next.Owner[moveShard] < 0 {
		t.Fatalf("no group %s", owner)
	}
	if !store.Set(&next) {
		t.Fatalf("the store refused epoch %d", next.Epoch)
	}
	return &next
}

// owner returns the group that owns the moved shard now, and the other group.
func (fx *moveFixture) owner() (from, to string) {
	m := fx.p.srv.topo.store.Current()
	from = m.OwnerOf(moveShard).Name
	for _, g := range m.Groups {
		if g.Name != from {
			return from, g.Name
		}
	}
	return from, ""
}

// reset makes the shard active at its owner and restores the moves settings.
func (fx *moveFixture) reset(t *testing.T, tweak func(*config.Moves)) {
	t.Helper()
	from, _ := fx.owner()
	fx.publish(t, shardmap.StateActive, from)
	cfg := *fx.p.srv.config()
	cfg.Moves = config.Default().Moves
	if tweak != nil {
		tweak(&cfg.Moves)
	}
	if err := fx.p.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

// customer returns a new customer id in the moved shard, and a row id.
func (fx *moveFixture) customer() (customer, id int64) {
	n := fx.nextID.Add(1)
	return int64(moveShard) + 16*n, n
}

// rows counts the rows of (customer, id) on a group's writer.
func (fx *moveFixture) rows(t *testing.T, group string, customer, id int64) int64 {
	t.Helper()
	return mustQueryInt(t, fx.writers[group], "SELECT count(*) FROM mv WHERE customer_id = $1 AND id = $2", customer, id)
}

// assertOnce checks that the row is on group want exactly once and nowhere else.
func (fx *moveFixture) assertOnce(t *testing.T, want string, customer, id int64) {
	t.Helper()
	for name := range fx.writers {
		n, exp := fx.rows(t, name, customer, id), int64(0)
		if name == want {
			exp = 1
		}
		if n != exp {
			t.Errorf("customer %d row %d: %d copies on %s, want %d", customer, id, n, name, exp)
		}
	}
}

// assertNowhere checks that the row exists on no group.
func (fx *moveFixture) assertNowhere(t *testing.T, customer, id int64) {
	t.Helper()
	for name := range fx.writers {
		if n := fx.rows(t, name, customer, id); n != 0 {
			t.Errorf("customer %d row %d: %d copies on %s, want none (the statement must not have run)", customer, id, n, name)
		}
	}
}

func (fx *moveFixture) buffered() float64 { return testutil.ToFloat64(fx.p.srv.moves.metrics.buffered) }

func (fx *moveFixture) held(result string) float64 {
	return testutil.ToFloat64(fx.p.srv.moves.metrics.held.WithLabelValues(result))
}

func (fx *moveFixture) fenced(result string) float64 {
	return testutil.ToFloat64(fx.p.srv.moves.metrics.fence.WithLabelValues(result))
}

// waitHeld waits until the node holds n statements.
func (fx *moveFixture) waitHeld(t *testing.T, n float64) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%v held statements", n), func() bool { return fx.buffered() == n })
}

// fence creates a fence trigger for the moved shard on table mv of a group's writer, as a
// move does, and returns a function that drops it.
func (fx *moveFixture) fence(t *testing.T, group string) func() {
	t.Helper()
	return fx.fenceTable(t, group, "mv")
}

// fenceTable is fence for another table.
func (fx *moveFixture) fenceTable(t *testing.T, group, table string) func() {
	t.Helper()
	name := table + "_fence_" + group
	execAll(t, fx.writers[group],
		fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN
			RAISE EXCEPTION 'shard %d is fenced on %s for move 7' USING ERRCODE = '%s'; END$$`, name, moveShard, group, shardmap.CodeShardFenced),
		fmt.Sprintf(`CREATE TRIGGER %s BEFORE INSERT OR UPDATE ON %s FOR EACH ROW WHEN ((NEW.customer_id %% 16) = %d) EXECUTE FUNCTION %s()`,
			name, table, moveShard, name))
	return func() {
		execAll(t, fx.writers[group], "DROP TRIGGER "+name+" ON "+table, "DROP FUNCTION "+name+"()")
	}
}

// insertModes are the ways a client sends the insert: simple protocol, pgx's default
// (prepared statements, Bind/Execute/Sync), the extended protocol with an unnamed statement,
// and inside a transaction whose BEGIN the proxy holds.
var insertModes = []struct {
	name string
	run  func(ctx context.Context, c *pgx.Conn, customer, id int64) error
}{
	{"simple", func(ctx context.Context, c *pgx.Conn, customer, id int64) error {
		_, err := c.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", pgx.QueryExecModeSimpleProtocol, customer, id)
		return err
	}},
	{"extended", func(ctx context.Context, c *pgx.Conn, customer, id int64) error {
		_, err := c.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", customer, id)
		return err
	}},
	{"extended-unnamed", func(ctx context.Context, c *pgx.Conn, customer, id int64) error {
		_, err := c.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", pgx.QueryExecModeExec, customer, id)
		return err
	}},
	{"returning", func(ctx context.Context, c *pgx.Conn, customer, id int64) error {
		var got int64
		if err := c.QueryRow(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2) RETURNING id", customer, id).Scan(&got); err != nil {
			return err
		}
		if got != id {
			return fmt.Errorf("RETURNING gave %d, want %d", got, id)
		}
		return nil
	}},
	{"transaction", func(ctx context.Context, c *pgx.Conn, customer, id int64) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", customer, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE mv SET v = v + 1 WHERE customer_id = $1 AND id = $2", customer, id); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}},
	{"transaction-read-first", func(ctx context.Context, c *pgx.Conn, customer, id int64) error {
		// A read opening a held BEGIN would pin the transaction to the frozen owner's writer:
		// it is held too.
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM mv WHERE customer_id = $1", customer).Scan(&n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", customer, id); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}},
}

// TestMoves covers the proxy's part in online shard moves: holding a frozen shard's writes
// and releasing them to the new owner, the bounds on holding, the grace of open
// transactions, retrying writes that meet the fence, and refusing DDL during a move.
func TestMoves(t *testing.T) {
	fx := newMoveFixture(t)
	ctx := context.Background()

	t.Run("held writes go to the new owner", func(t *testing.T) {
		fx.reset(t, nil)
		reader := connect(t, fx.p.dsn(""))
		for _, mode := range insertModes {
			t.Run(mode.name, func(t *testing.T) {
				from, to := fx.owner()
				c := connect(t, fx.p.dsn(""))
				customer, id := fx.customer()
				fx.publish(t, shardmap.StateFrozen, from)
				done := make(chan error, 1)
				go func() { done <- mode.run(ctx, c, customer, id) }()
				fx.waitHeld(t, 1)

				// Reads of the frozen shard are not held.
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				n := int64(-1)
				err := reader.QueryRow(rctx, "SELECT count(*) FROM mv WHERE customer_id = $1", customer).Scan(&n)
				cancel()
				if err != nil || n != 0 {
					t.Fatalf("read of the frozen shard while a write is held: n=%d, %v", n, err)
				}
				if fx.buffered() != 1 {
					t.Fatal("the write was released before the freeze ended")
				}
				fx.assertNowhere(t, customer, id)

				released := fx.held(heldReleased)
				fx.publish(t, shardmap.StateActive, to)
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("held write: %v", err)
					}
				case <-time.After(15 * time.Second):
					t.Fatal("the held write was not released by the new epoch")
				}
				fx.assertOnce(t, to, customer, id)
				if got := fx.held(heldReleased); got != released+1 {
					t.Errorf("released counter went from %v to %v", released, got)
				}
				if fx.buffered() != 0 {
					t.Errorf("%v statements still counted as held", fx.buffered())
				}
			})
		}
	})

	t.Run("buffer timeout", func(t *testing.T) {
		fx.reset(t, func(m *config.Moves) { m.BufferTimeout = config.Duration(300 * time.Millisecond) })
		from, _ := fx.owner()
		fx.publish(t, shardmap.StateFrozen, from)
		c := connect(t, fx.p.dsn(""))
		for _, mode := range insertModes {
			customer, id := fx.customer()
			start := time.Now()
			err := mode.run(ctx, c, customer, id)
			if pgCode(err) != codeSerializationFailure || !strings.Contains(err.Error(), fmt.Sprintf("shard %d is being moved", moveShard)) {
				t.Fatalf("%s: got %v, want 40001 naming shard %d", mode.name, err, moveShard)
			}
			if waited := time.Since(start); waited < 300*time.Millisecond {
				t.Errorf("%s: refused after %s, before buffer_timeout", mode.name, waited)
			}
			fx.assertNowhere(t, customer, id)
			if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatalf("%s: session unusable after the refusal: %v", mode.name, err)
			}
		}
		if fx.held(heldTimeout) < float64(len(insertModes)) {
			t.Errorf("timeout counter %v, want at least %d", fx.held(heldTimeout), len(insertModes))
		}
	})

	t.Run("buffer limit", func(t *testing.T) {
		fx.reset(t, func(m *config.Moves) { m.BufferLimit = 1 })
		from, to := fx.owner()
		fx.publish(t, shardmap.StateFrozen, from)
		first, second := connect(t, fx.p.dsn("")), connect(t, fx.p.dsn(""))
		c1, id1 := fx.customer()
		c2, id2 := fx.customer()
		done := make(chan error, 1)
		go func() {
			_, err := first.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", c1, id1)
			done <- err
		}()
		fx.waitHeld(t, 1)
		_, err := second.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", c2, id2)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != codeSerializationFailure || !strings.Contains(pe.Hint, "buffer_limit") {
			fx.publish(t, shardmap.StateActive, to)
			<-done
			t.Fatalf("second held write: got %v, want 40001 about buffer_limit", err)
		}
		fx.publish(t, shardmap.StateActive, to)
		if err := <-done; err != nil {
			t.Fatalf("first held write: %v", err)
		}
		fx.assertOnce(t, to, c1, id1)
		fx.assertNowhere(t, c2, id2)
	})

	t.Run("client leaves or cancels while held", func(t *testing.T) {
		fx.reset(t, nil)
		from, to := fx.owner()
		fx.publish(t, shardmap.StateFrozen, from)

		// Clients that vanish: one closes its socket, one says Terminate first. (pgx itself
		// sends a CancelRequest when its connection breaks: that is the cancel case below.)
		var leavers []struct{ customer, id int64 }
		for _, terminate := range []bool{false, true} {
			leaver := connect(t, fx.p.dsn(""))
			hj, err := leaver.PgConn().Hijack()
			if err != nil {
				t.Fatal(err)
			}
			customer, id := fx.customer()
			leavers = append(leavers, struct{ customer, id int64 }{customer, id})
			gone := fx.held(heldClientGone)
			q, _ := (&pgproto3.Query{String: fmt.Sprintf("INSERT INTO mv (customer_id, id) VALUES (%d, %d)", customer, id)}).Encode(nil)
			if _, err := hj.Conn.Write(q); err != nil {
				t.Fatal(err)
			}
			fx.waitHeld(t, 1)
			if terminate {
				if _, err := hj.Conn.Write([]byte{'X', 0, 0, 0, 4}); err != nil {
					t.Fatal(err)
				}
			}
			_ = hj.Conn.Close()
			fx.waitHeld(t, 0)
			if fx.held(heldClientGone) != gone+1 {
				t.Errorf("terminate=%v: client_gone counter %v, want %v", terminate, fx.held(heldClientGone), gone+1)
			}
		}

		done := make(chan error, 1)
		canceller := connect(t, fx.p.dsn(""))
		c2, id2 := fx.customer()
		go func() {
			_, err := canceller.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", c2, id2)
			done <- err
		}()
		fx.waitHeld(t, 1)
		if err := canceller.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; pgCode(err) != "57014" {
			t.Fatalf("cancelled held write: got %v, want 57014", err)
		}
		if n := mustQueryInt(t, canceller, "SELECT 1"); n != 1 {
			t.Fatal("session unusable after the cancel")
		}

		fx.publish(t, shardmap.StateActive, to)
		if n := mustQueryInt(t, canceller, "SELECT 2"); n != 2 {
			t.Fatal("session unusable after the move")
		}
		for _, l := range leavers {
			fx.assertNowhere(t, l.customer, l.id)
		}
		fx.assertNowhere(t, c2, id2)
	})

	t.Run("open transaction within and past grace", func(t *testing.T) {
		fx.reset(t, func(m *config.Moves) { m.Grace = config.Duration(time.Hour) })
		from, to := fx.owner()
		c := connect(t, fx.p.dsn(""))
		customer, id := fx.customer()
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", customer, id); err != nil {
			t.Fatal(err)
		}
		fx.publish(t, shardmap.StateFrozen, from)
		if _, err := tx.Exec(ctx, "UPDATE mv SET v = 1 WHERE customer_id = $1 AND id = $2", customer, id); err != nil {
			t.Fatalf("statement within grace: %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit within grace: %v", err)
		}
		fx.assertOnce(t, from, customer, id)

		const grace = 200 * time.Millisecond
		fx.reset(t, func(m *config.Moves) { m.Grace = config.Duration(grace) })
		c2, id2 := fx.customer()
		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", c2, id2); err != nil {
			t.Fatal(err)
		}
		fx.publish(t, shardmap.StateFrozen, from)
		waitFor(t, 10*time.Second, "the grace to pass", func() bool {
			_, past := fx.p.srv.moves.pastGrace(shardmap.Of(moveShard), grace, time.Now())
			return past
		})
		_, err = tx.Exec(ctx, "UPDATE mv SET v = 1 WHERE customer_id = $1 AND id = $2", c2, id2)
		if pgCode(err) != codeSerializationFailure {
			t.Fatalf("statement past grace: got %v, want 40001", err)
		}
		if err := tx.Commit(ctx); err == nil {
			t.Fatal("a transaction refused past grace committed")
		}
		fx.assertNowhere(t, c2, id2)
		fx.publish(t, shardmap.StateActive, to)
	})

	t.Run("fenced write outside a transaction runs again at the new owner", func(t *testing.T) {
		fx.reset(t, nil)
		for _, mode := range insertModes[:4] {
			t.Run(mode.name, func(t *testing.T) {
				from, to := fx.owner()
				unfence := fx.fence(t, from)
				defer unfence()
				c := connect(t, fx.p.dsn(""))
				customer, id := fx.customer()
				retried := fx.fenced(fenceRetried)
				done := make(chan error, 1)
				go func() { done <- mode.run(ctx, c, customer, id) }()
				fx.waitHeld(t, 1) // the write met the fence and waits for a newer map
				fx.assertNowhere(t, customer, id)
				fx.publish(t, shardmap.StateActive, to)
				if err := <-done; err != nil {
					t.Fatalf("fenced write: %v", err)
				}
				fx.assertOnce(t, to, customer, id)
				if fx.fenced(fenceRetried) != retried+1 {
					t.Errorf("retried counter %v, want %v", fx.fenced(fenceRetried), retried+1)
				}
			})
		}
	})

	t.Run("fenced write in a transaction gets 40001", func(t *testing.T) {
		fx.reset(t, nil)
		from, _ := fx.owner()
		unfence := fx.fence(t, from)
		defer unfence()
		c := connect(t, fx.p.dsn(""))
		for _, simple := range []bool{false, true} {
			customer, id := fx.customer()
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			args := []any{customer, id}
			if simple {
				args = append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
			}
			_, err = tx.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", args...)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != codeSerializationFailure || !strings.Contains(pe.Message, "fenced on "+from) ||
				!strings.Contains(pe.Detail, "moved") {
				t.Fatalf("simple=%v: got %v, want 40001 keeping the fence's message with a detail", simple, err)
			}
			_ = tx.Rollback(ctx)
			fx.assertNowhere(t, customer, id)
		}
	})

	t.Run("a second fence with no newer map passes the error on", func(t *testing.T) {
		fx.reset(t, func(m *config.Moves) { m.BufferTimeout = config.Duration(500 * time.Millisecond) })
		from, to := fx.owner()
		defer fx.fence(t, from)()
		defer fx.fence(t, to)()
		c := connect(t, fx.p.dsn(""))
		customer, id := fx.customer()
		noNew := fx.fenced(fenceNoNewMap)
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", customer, id)
			done <- err
		}()
		fx.waitHeld(t, 1)
		fx.publish(t, shardmap.StateActive, to)
		err := <-done
		if pgCode(err) != shardmap.CodeShardFenced || !strings.Contains(err.Error(), "fenced on "+to) {
			t.Fatalf("got %v, want the second fence's %s", err, shardmap.CodeShardFenced)
		}
		if fx.fenced(fenceNoNewMap) != noNew+1 {
			t.Errorf("no_new_map counter %v, want %v", fx.fenced(fenceNoNewMap), noNew+1)
		}
		fx.assertNowhere(t, customer, id)
	})

	t.Run("DDL on sharded tables refused while moving", func(t *testing.T) {
		fx.reset(t, nil)
		from, _ := fx.owner()
		c := connect(t, fx.p.dsn(""))
		for _, state := range []shardmap.ShardState{shardmap.StateMoving, shardmap.StateFrozen} {
			fx.publish(t, state, from)
			for _, sql := range []string{"TRUNCATE mv", "ALTER TABLE mv ADD COLUMN note text", "CREATE INDEX mv_v ON mv (v)"} {
				for _, extended := range []bool{false, true} {
					var err error
					if extended {
						err = c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
					} else {
						_, err = c.Exec(ctx, sql)
					}
					if pgCode(err) != codeObjectNotInPrerequisiteState || !strings.Contains(err.Error(), fmt.Sprintf("shard %d is being moved", moveShard)) {
						t.Fatalf("%s (%s, extended %v): got %v, want 55000 naming shard %d", sql, state, extended, err, moveShard)
					}
				}
			}
			if _, err := c.Exec(ctx, "TRUNCATE mv_plain"); err != nil {
				t.Fatalf("DDL on an unsharded table during a move: %v", err)
			}
		}
		fx.publish(t, shardmap.StateActive, from)
		if _, err := c.Exec(ctx, "ALTER TABLE mv ADD COLUMN note text"); err != nil {
			t.Fatalf("DDL after the move: %v", err)
		}
		if _, err := c.Exec(ctx, "ALTER TABLE mv DROP COLUMN note"); err != nil {
			t.Fatalf("DDL after the move: %v", err)
		}
	})

	t.Run("scatters count a copied shard once in every state", func(t *testing.T) {
		fx.reset(t, nil)
		from, to := fx.owner()
		c := connect(t, fx.p.dsn(""))
		customer, id := fx.customer()
		if _, err := c.Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", customer, id); err != nil {
			t.Fatal(err)
		}
		// The move's copy: the target holds the shard's rows too.
		if _, err := fx.writers[to].Exec(ctx, "INSERT INTO mv (customer_id, id) VALUES ($1, $2)", customer, id); err != nil {
			t.Fatal(err)
		}
		count := func() int64 {
			return mustQueryInt(t, c, "SELECT count(*) FROM mv WHERE id = $1", id)
		}
		for _, step := range []struct {
			state shardmap.ShardState
			owner string
		}{{shardmap.StateMoving, from}, {shardmap.StateFrozen, from}, {shardmap.StateActive, to}} {
			fx.publish(t, step.state, step.owner)
			if n := count(); n != 1 {
				t.Errorf("%s at %s: the scatter counted %d copies of one row", step.state, step.owner, n)
			}
		}
	})
}

// TestMovesPgbench moves a shard twice under pgbench write load (prepared and simple
// protocol): first by freezing it (the writes are held and released to the new owner), then
// back by fencing its owner unannounced (the fenced writes run again at the new owner). No
// transaction fails, and every acknowledged update landed exactly once.
func TestMovesPgbench(t *testing.T) {
	fx := newMoveFixture(t)
	const customers = 50
	c := connect(t, fx.p.dsn(""))
	execAll(t, c, "CREATE TABLE mv_bench (customer_id bigint PRIMARY KEY, v bigint NOT NULL DEFAULT 0)")
	for _, w := range fx.writers { // both groups have the shard's rows, as after a move's copy
		execAll(t, w, fmt.Sprintf("INSERT INTO mv_bench SELECT %d + 16 * n FROM generate_series(0, %d) n", moveShard, customers-1))
	}
	script := t.TempDir() + "/update.sql"
	if err := os.WriteFile(script, []byte(fmt.Sprintf("\\set n random(0, %d)\n\\set cid %d + 16 * :n\nUPDATE mv_bench SET v = v + 1 WHERE customer_id = :cid;\n",
		customers-1, moveShard)), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := func() (total int64, by map[string]int64) {
		by = make(map[string]int64)
		for name, w := range fx.writers {
			by[name] = mustQueryInt(t, w, "SELECT coalesce(sum(v), 0) FROM mv_bench")
			total += by[name]
		}
		return total, by
	}
	var processed int64
	for _, mode := range []string{"prepared", "simple"} {
		t.Run(mode, func(t *testing.T) {
			fx.reset(t, nil)
			before, _ := sum()
			released, retried := fx.held(heldReleased), fx.fenced(fenceRetried)
			out := make(chan string, 1)
			go func() {
				out <- runPgbench(t, fx.p.addr, "-M", mode, "-c", "4", "-j", "2", "-T", "4", "-f", script)
			}()
			from, to := fx.owner()
			waitFor(t, 10*time.Second, "updates at "+from, func() bool { n, _ := sum(); return n > before })
			fx.publish(t, shardmap.StateFrozen, from)
			fx.waitHeld(t, 4) // every client's update is held
			fx.publish(t, shardmap.StateActive, to)

			waitFor(t, 10*time.Second, "updates at "+to, func() bool { _, by := sum(); return by[to] > 0 })
			unfence := fx.fenceTable(t, to, "mv_bench") // the owner is fenced before this node heard of any move
			waitFor(t, 10*time.Second, "a fenced update waiting", func() bool { return fx.buffered() >= 1 })
			fx.publish(t, shardmap.StateActive, from)
			report := <-out
			unfence()
			expectPgbenchClean(t, report)
			done := doneRE.FindStringSubmatch(report)
			n, _ := strconv.ParseInt(done[1], 10, 64)
			after, by := sum()
			if after-before != n {
				t.Errorf("pgbench acknowledged %d updates, the groups hold %d more (%v)", n, after-before, by)
			}
			if fx.held(heldReleased) < released+4 || fx.fenced(fenceRetried) <= retried {
				t.Errorf("released %v held and retried %v fenced updates, want at least 4 and 1",
					fx.held(heldReleased)-released, fx.fenced(fenceRetried)-retried)
			}
			processed += n
		})
	}
	if processed == 0 {
		t.Fatal("no update ran")
	}
}
