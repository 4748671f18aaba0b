package shardmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/internal/ctxwait"
)

// MovePhase is where a shard move stands. A move advances through the phases in order, each
// step by a compare-and-set on the phase in the catalog (AdvanceMove), so that two drivers
// of one move can never both act on the same state.
type MovePhase string

// Move phases, in the order a move goes through them.
const (
	// PhasePlanned: recorded; nothing created yet. Next: the pre-checks, then copying (the
	// map marks the shard moving).
	PhasePlanned MovePhase = "planned"
	// PhaseCopying: the row-filtered publication and the subscription exist; the target is
	// fenced against application writes; the copy runs, then is verified.
	PhaseCopying MovePhase = "copying"
	// PhaseBuffering: the map marks the shard frozen; proxies hold its new writes. Next: the
	// source is fenced in one DDL transaction, with a marker row.
	PhaseBuffering MovePhase = "buffering"
	// PhaseFenced: the source refuses the shard's writes; the fence's WAL position is
	// recorded. Next: the proof that the target has applied everything up to it.
	PhaseFenced MovePhase = "fenced"
	// PhaseCaughtUp: the marker row and the fence position reached the target. Next: the
	// reverse replication.
	PhaseCaughtUp MovePhase = "caught_up"
	// PhaseReverseReady: the reverse replication (target → source) exists. Next: the forward
	// replication is dropped, the target unfenced and the map switched (the point of no
	// return).
	PhaseReverseReady MovePhase = "reverse_ready"
	// PhaseSwitched: the map names the target as the owner. Next: every live proxy confirms
	// the new epoch.
	PhaseSwitched MovePhase = "switched"
	// PhaseDone: finished; the old copy stays on the source, kept up to date by the reverse
	// replication, until cleanup (or a reversal).
	PhaseDone MovePhase = "done"
	// PhaseCleaned: the reverse replication is dropped and the old copy deleted.
	PhaseCleaned MovePhase = "cleaned"
	// PhaseAborting: an abort is undoing the move; resuming it finishes the abort.
	PhaseAborting MovePhase = "aborting"
	// PhaseAborted: undone; the map is as it was.
	PhaseAborted MovePhase = "aborted"
	// PhaseReversing: a reverse move (ReverseOf this one) is taking the shard back.
	PhaseReversing MovePhase = "reversing"
	// PhaseReversed: the reverse move finished; the shard is back at this move's source.
	PhaseReversed MovePhase = "reversed"
)

// Ordinal is the phase's position in a move's normal course (planned 0 … cleaned 8), -1
// for the phases outside it (aborting, aborted, reversing, reversed).
func (p MovePhase) Ordinal() int {
	for i, q := range []MovePhase{PhasePlanned, PhaseCopying, PhaseBuffering, PhaseFenced, PhaseCaughtUp,
		PhaseReverseReady, PhaseSwitched, PhaseDone, PhaseCleaned} {
		if p == q {
			return i
		}
	}
	return -1
}

// Abortable reports whether an abort may still undo a move in this phase: every phase before
// the switch of the map.
func (p MovePhase) Abortable() bool {
	o := p.Ordinal()
	return (o >= 0 && o < PhaseSwitched.Ordinal()) || p == PhaseAborting
}

// Finished reports whether the move has nothing left to do (done moves may still be cleaned
// up or reversed).
func (p MovePhase) Finished() bool {
	switch p {
	case PhaseDone, PhaseCleaned, PhaseAborted, PhaseReversed, PhaseReversing:
		return true
	}
	return false
}

// Move is one shard move as the catalog records it.
type Move struct {
	ID     int64     `json:"id"`
	Shard  Shard     `json:"shard"`
	Source string    `json:"source"` // group names
	Target string    `json:"target"`
	Phase  MovePhase `json:"phase"`
	// ReverseOf is the move this one reverses (0: none).
	ReverseOf int64     `json:"reverse_of,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	UpdatedAt time.Time `json:"updated_at"`
	Detail    MoveDetail
}

// MoveDetail is what a move records on its way: the history operators and metrics read.
type MoveDetail struct {
	// Phases holds when the move entered each phase.
	Phases map[MovePhase]time.Time `json:"phases,omitempty"`
	// Databases are the databases the move covers.
	Databases []string `json:"databases,omitempty"`
	// Tables are the sharded tables moved (the first database's).
	Tables []string `json:"tables,omitempty"`
	// FenceLSN is, per database, the source's WAL position after the fence committed.
	FenceLSN map[string]string `json:"fence_lsn,omitempty"`
	// FrozenEpoch is the map epoch that froze the shard; SwitchEpoch the one that gave it
	// to the target; AbortEpoch the one that made it active at the source again.
	FrozenEpoch int64 `json:"frozen_epoch,omitempty"`
	SwitchEpoch int64 `json:"switch_epoch,omitempty"`
	AbortEpoch  int64 `json:"abort_epoch,omitempty"`
	// Rows is the number of the shard's rows on the target after the copy; RowsDeleted
	// those cleanup deleted from the source.
	Rows        int64 `json:"rows,omitempty"`
	RowsDeleted int64 `json:"rows_deleted,omitempty"`
	// Verification summarizes the per-chunk comparison of source and target.
	Verification string `json:"verification,omitempty"`
	// Recheck holds, per database, the chunks the live verification saw differing (rows
	// still being written): they are compared again once the source is fenced and the
	// target has caught up, when any difference is real.
	Recheck map[string][]KeyRange `json:"recheck,omitempty"`
	// PauseSeconds is the time the shard's writes were held: from the frozen epoch to the
	// switch (or the abort).
	PauseSeconds float64 `json:"pause_seconds,omitempty"`
	// Error says why the move was aborted (or what last failed).
	Error string `json:"error,omitempty"`
	// AbortedFrom is the phase an abort started in.
	AbortedFrom MovePhase `json:"aborted_from,omitempty"`
}

// KeyRange is a chunk of one table's shard-key values, Lo..Hi inclusive.
type KeyRange struct {
	Table  string `json:"table"`
	Lo, Hi int64
}

// ErrMoveConflict means a move's phase was not the one a step expected: another driver
// advanced it (or aborted it) meanwhile. Reload the move and decide again.
var ErrMoveConflict = errors.New("shard move phase conflict")

// ErrNoMove means the catalog has no such move.
var ErrNoMove = errors.New("no such shard move")

// ErrMoveBusy means another driver holds the move's lock.
var ErrMoveBusy = errors.New("shard move is being driven by another shardctl")

// OpenMoveError is CreateMove's refusal of a shard that already has an open move.
type OpenMoveError struct{ Move *Move }

// Error names the open move and says what to do.
func (e *OpenMoveError) Error() string {
	m := e.Move
	what := "resume it with --resume or abort it with --abort"
	if m.Phase == PhaseDone {
		what = "clean it up first (shardctl cleanup --shard " + fmt.Sprint(m.Shard) + ") or reverse it (--reverse " + fmt.Sprint(m.ID) + ")"
	}
	return fmt.Sprintf("shard %d already has move %d (%s → %s) in phase %s: %s", m.Shard, m.ID, m.Source, m.Target, m.Phase, what)
}

// MoveRequest asks CreateMove for a move.
type MoveRequest struct {
	Shard Shard
	// Target is the group to move the shard to.
	Target string
	// By names who asks (for the history).
	By string
	// ReverseOf, when set, makes this the reverse of a done move: the shard goes back from
	// that move's target to its source, and that move becomes "reversing".
	ReverseOf int64
	// Databases the move covers.
	Databases []string
}

const moveColumns = "id, shard, source, target, phase, coalesce(reverse_of, 0), created_at, created_by, updated_at, detail"

func scanMove(row pgx.Row) (*Move, error) {
	var (
		m      Move
		shard  int32
		phase  string
		detail []byte
	)
	if err := row.Scan(&m.ID, &shard, &m.Source, &m.Target, &phase, &m.ReverseOf, &m.CreatedAt, &m.CreatedBy, &m.UpdatedAt, &detail); err != nil {
		return nil, err
	}
	m.Shard, m.Phase = Shard(shard), MovePhase(phase)
	if err := json.Unmarshal(detail, &m.Detail); err != nil {
		return nil, fmt.Errorf("decode move %d: %w", m.ID, err)
	}
	return &m, nil
}

// CreateMove records a new move of req.Shard from its current owner to req.Target, in phase
// planned. It refuses an unknown target, a target that already owns the shard, a shard that
// is not active, and a shard with an open move (an *OpenMoveError). A reverse move
// (req.ReverseOf) requires that move to be done and to have moved this shard to the group
// that owns it now; its target is that move's source.
func (c *Catalog) CreateMove(ctx context.Context, req MoveRequest) (*Move, error) {
	var out *Move
	err := c.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", c.lockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		m, err := c.currentMapIn(ctx, tx)
		if err != nil {
			return err
		}
		if req.ReverseOf != 0 {
			orig, err := c.moveIn(ctx, tx, req.ReverseOf, true)
			if err != nil {
				return err
			}
			if orig.Phase != PhaseDone {
				return fmt.Errorf("move %d is %s: only a done move (not yet cleaned up) can be reversed", orig.ID, orig.Phase)
			}
			req.Shard, req.Target = orig.Shard, orig.Source
			if len(orig.Detail.Databases) > 0 {
				req.Databases = orig.Detail.Databases
			}
			if m.OwnerOf(orig.Shard).Name != orig.Target {
				return fmt.Errorf("move %d took shard %d to %s, but the map now gives it to %s: it cannot be reversed",
					orig.ID, orig.Shard, orig.Target, m.OwnerOf(orig.Shard).Name)
			}
		}
		if int(req.Shard) >= NumShards {
			return fmt.Errorf("shard %d: shards are 0..%d", req.Shard, NumShards-1)
		}
		ti := m.GroupIndex(req.Target)
		if ti < 0 {
			return fmt.Errorf("target group %q: %w", req.Target, ErrUnknownGroup)
		}
		source := m.OwnerOf(req.Shard).Name
		if source == req.Target {
			return fmt.Errorf("shard %d is already owned by group %q", req.Shard, req.Target)
		}
		if m.State[req.Shard] != StateActive {
			return fmt.Errorf("shard %d is %s in the map, not active", req.Shard, m.State[req.Shard])
		}
		open, err := c.openMoveIn(ctx, tx, req.Shard)
		if err != nil {
			return err
		}
		if open != nil && !(req.ReverseOf != 0 && open.ID == req.ReverseOf) {
			return &OpenMoveError{Move: open}
		}
		if req.ReverseOf != 0 {
			if _, err := c.setPhase(ctx, tx, req.ReverseOf, PhaseDone, PhaseReversing, nil); err != nil {
				return err
			}
		}
		detail, err := json.Marshal(MoveDetail{Phases: map[MovePhase]time.Time{PhasePlanned: time.Now().UTC()}, Databases: req.Databases})
		if err != nil {
			return err
		}
		var reverseOf *int64
		if req.ReverseOf != 0 {
			reverseOf = &req.ReverseOf
		}
		out, err = scanMove(tx.QueryRow(ctx, "INSERT INTO "+c.table("moves")+
			" (shard, source, target, phase, reverse_of, created_by, detail) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING "+moveColumns,
			int32(req.Shard), source, req.Target, string(PhasePlanned), reverseOf, req.By, string(detail)))
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		err = fmt.Errorf("shard %d got another open move meanwhile: %w", req.Shard, ErrMoveConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: create move of shard %d: %w", req.Shard, err)
	}
	c.log.Info("created shard move", zap.Int64("move", out.ID), zap.Uint8("shard", uint8(out.Shard)),
		zap.String("source", out.Source), zap.String("target", out.Target))
	return out, nil
}

// Move returns one move.
func (c *Catalog) Move(ctx context.Context, id int64) (*Move, error) {
	var out *Move
	err := c.read(ctx, func(conn *pgx.Conn) error {
		var err error
		out, err = c.moveIn(ctx, conn, id, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: move %d: %w", id, err)
	}
	return out, nil
}

// Moves returns the moves, newest first, at most limit (all when limit <= 0).
func (c *Catalog) Moves(ctx context.Context, limit int) ([]*Move, error) {
	sql := "SELECT " + moveColumns + " FROM " + c.table("moves") + " ORDER BY id DESC"
	args := []any{}
	if limit > 0 {
		sql += " LIMIT $1"
		args = append(args, limit)
	}
	var out []*Move
	err := c.read(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Move, error) { return scanMove(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: moves: %w", err)
	}
	return out, nil
}

// OpenMove returns the shard's open move (running, or done and not cleaned up), nil when
// there is none.
func (c *Catalog) OpenMove(ctx context.Context, shard Shard) (*Move, error) {
	var out *Move
	err := c.read(ctx, func(conn *pgx.Conn) error {
		var err error
		out, err = c.openMoveIn(ctx, conn, shard)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: open move of shard %d: %w", shard, err)
	}
	return out, nil
}

func (c *Catalog) openMoveIn(ctx context.Context, q querier, shard Shard) (*Move, error) {
	m, err := scanMove(q.QueryRow(ctx, "SELECT "+moveColumns+" FROM "+c.table("moves")+
		" WHERE shard = $1 AND phase NOT IN ('aborted', 'cleaned', 'reversed', 'reversing') ORDER BY id DESC LIMIT 1", int32(shard)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return m, err
}

func (c *Catalog) moveIn(ctx context.Context, q querier, id int64, forUpdate bool) (*Move, error) {
	sql := "SELECT " + moveColumns + " FROM " + c.table("moves") + " WHERE id = $1"
	if forUpdate {
		sql += " FOR UPDATE"
	}
	m, err := scanMove(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("move %d: %w", id, ErrNoMove)
	}
	return m, err
}

// setPhase moves a move from phase `from` to `to` inside tx, applying update to it first
// (nil: none), and returns it as stored. It fails with ErrMoveConflict when the phase is not
// `from`.
func (c *Catalog) setPhase(ctx context.Context, tx pgx.Tx, id int64, from, to MovePhase, update func(*Move) error) (*Move, error) {
	mv, err := c.moveIn(ctx, tx, id, true)
	if err != nil {
		return nil, err
	}
	if mv.Phase != from {
		return nil, fmt.Errorf("move %d is %s, not %s: %w", id, mv.Phase, from, ErrMoveConflict)
	}
	if update != nil {
		if err := update(mv); err != nil {
			return nil, err
		}
	}
	if mv.Detail.Phases == nil {
		mv.Detail.Phases = make(map[MovePhase]time.Time)
	}
	if to != from {
		mv.Detail.Phases[to] = time.Now().UTC()
	}
	detail, err := json.Marshal(mv.Detail)
	if err != nil {
		return nil, err
	}
	return scanMove(tx.QueryRow(ctx, "UPDATE "+c.table("moves")+
		" SET phase = $2, detail = $3::jsonb, updated_at = now() WHERE id = $1 RETURNING "+moveColumns,
		id, string(to), string(detail)))
}

// MapEdit changes a map for AdvanceMove; it returns nil to leave the map as it is. It must
// not modify its argument.
type MapEdit func(cur *Map, mv *Move) (*Map, error)

// AdvanceMove moves a move from phase `from` to `to` in one catalog transaction, which also
// applies update to the move's record (nil: none) and, when edit returns a map, publishes it
// as the next epoch of the shard map (under the catalog's lock, so the edit sees the current
// map). It returns the move as stored and the map published (nil when none was). When the
// move is not in phase `from` nothing changes and the error matches ErrMoveConflict.
//
// Like Publish, an error other than a conflict may leave the outcome unknown: reload the
// move to see.
func (c *Catalog) AdvanceMove(ctx context.Context, id int64, from, to MovePhase, by string, update func(*Move) error, edit MapEdit) (*Move, *Map, error) {
	var (
		out       *Move
		published *Map
	)
	err := c.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", c.lockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var newEpoch int64
		var next *Map
		if edit != nil {
			cur, err := c.currentMapIn(ctx, tx)
			if err != nil {
				return err
			}
			mv, err := c.moveIn(ctx, tx, id, false)
			if err != nil {
				return err
			}
			if mv.Phase != from {
				return fmt.Errorf("move %d is %s, not %s: %w", id, mv.Phase, from, ErrMoveConflict)
			}
			if next, err = edit(cur, mv); err != nil {
				return err
			}
			if next != nil {
				newEpoch = cur.Epoch + 1
			}
		}
		stamp := func(mv *Move) error {
			if update != nil {
				if err := update(mv); err != nil {
					return err
				}
			}
			if newEpoch == 0 {
				return nil
			}
			switch to {
			case PhaseBuffering:
				mv.Detail.FrozenEpoch = newEpoch
			case PhaseSwitched:
				mv.Detail.SwitchEpoch = newEpoch
			case PhaseAborted:
				mv.Detail.AbortEpoch = newEpoch
			}
			return nil
		}
		var err error
		if out, err = c.setPhase(ctx, tx, id, from, to, stamp); err != nil {
			return err
		}
		if out.ReverseOf != 0 && (to == PhaseDone || to == PhaseAborted) {
			// The reversed move is reversed for good, or done again when its reversal was
			// aborted.
			final := PhaseReversed
			if to == PhaseAborted {
				final = PhaseDone
			}
			if _, err := c.setPhase(ctx, tx, out.ReverseOf, PhaseReversing, final, nil); err != nil {
				return fmt.Errorf("reversed move %d: %w", out.ReverseOf, err)
			}
		}
		if next == nil {
			return nil
		}
		stored, data, err := encodeMap(next, newEpoch)
		if err != nil {
			return fmt.Errorf("edited map: %w", err)
		}
		reason := fmt.Sprintf("move %d of shard %d (%s → %s): %s", out.ID, out.Shard, out.Source, out.Target, to)
		if err := c.insertEpoch(ctx, tx, newEpoch, data, by, reason); err != nil {
			return err
		}
		published = stored
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("shard map catalog: move %d %s → %s: %w", id, from, to, err)
	}
	c.log.Info("advanced shard move", zap.Int64("move", id), zap.String("from", string(from)), zap.String("to", string(to)))
	if published != nil {
		c.log.Info("published shard map epoch", zap.Int64("epoch", published.Epoch), zap.String("by", by))
	}
	return out, published, nil
}

// UpdateMove changes a move's record without changing its phase, provided the phase is
// still `phase` (else ErrMoveConflict): progress, rows, verification results.
func (c *Catalog) UpdateMove(ctx context.Context, id int64, phase MovePhase, update func(*Move) error) (*Move, error) {
	var out *Move
	err := c.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = c.setPhase(ctx, tx, id, phase, phase, update)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: update move %d: %w", id, err)
	}
	return out, nil
}

// MoveLock is a held driver lock on one move (LockMove).
type MoveLock struct {
	conn       *pgx.Conn
	key1, key2 int32
}

// Release gives the lock up (by closing its connection).
func (l *MoveLock) Release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Unlock first: the server drops a closed session's locks only when its backend has
	// exited, which the next driver could beat.
	_, _ = l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", l.key1, l.key2)
	_ = l.conn.Close(ctx)
	l.conn = nil
}

// Held checks, with one query on the lock's connection, that the server still holds the
// lock for this driver: a connection the server dropped (a restart, a failover, a terminated
// backend) took the lock with it, and another driver may have taken it since. A driver checks
// before each step and stops when it is gone.
func (l *MoveLock) Held(ctx context.Context) error {
	if l == nil || l.conn == nil || l.conn.IsClosed() {
		return errLockLost
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var held bool
	err := l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
		AND pid = pg_backend_pid() AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid)`,
		int64(uint32(l.key1)), int64(uint32(l.key2))).Scan(&held)
	if err != nil {
		return fmt.Errorf("%w: %v", errLockLost, err)
	}
	if !held {
		return errLockLost
	}
	return nil
}

// errLockLost is Held's error.
var errLockLost = errors.New("lost the move lock (its catalog connection was dropped): stop; another driver may have the move")

// lockWait is how long LockMove retries a lock another session holds.
const lockWait = 2 * time.Second

// LockMove takes the driver lock of a move: a session advisory lock on a connection of its
// own, so that a driver that dies (a killed shardctl) loses it at once, and a second driver
// is refused with ErrMoveBusy instead of running the same steps beside the first.
func (c *Catalog) LockMove(ctx context.Context, id int64) (*MoveLock, error) {
	cfg := c.cfg.Copy()
	cfg.RuntimeParams["application_name"] = fmt.Sprintf("shardctl-move-%d", id)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: lock move %d: connect: %w", id, err)
	}
	h := fnv.New32a()
	h.Write([]byte("shardwire move " + c.schema))
	var ok bool
	key1, key2 := int32(h.Sum32()), int32(id)
	// A driver that was just killed holds the lock until the server notices its connection
	// closed: give that a moment before calling the move busy.
	for deadline := time.Now().Add(lockWait); ; {
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", key1, key2).Scan(&ok); err != nil {
			_ = conn.Close(ctx)
			return nil, fmt.Errorf("shard map catalog: lock move %d: %w", id, err)
		}
		if ok || time.Now().After(deadline) || ctxwait.Sleep(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	if !ok {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("move %d: %w", id, ErrMoveBusy)
	}
	return &MoveLock{conn: conn, key1: key1, key2: key2}, nil
}

// currentMapIn reads and decodes the catalog's highest epoch inside q (a transaction holding
// the catalog's lock, for an edit based on it).
func (c *Catalog) currentMapIn(ctx context.Context, q querier) (*Map, error) {
	epoch, data, err := c.loadRow(ctx, q, 0)
	if err != nil {
		return nil, err
	}
	return decodeMap(data, epoch)
}
