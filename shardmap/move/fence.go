package move

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/ctxwait"
	"github.com/shardwire/shardwire/shardmap"
)

// ErrFenceLocks is wrapped by the error of a Fence or Unfence that could not take its locks
// before its deadline: every attempt met a writer holding a table (lock_timeout) or a
// deadlock. Nothing was changed.
var ErrFenceLocks = errors.New("the fence could not take its locks")

// Default fence settings.
const (
	// DefaultLockTimeout bounds one attempt's wait for the tables' locks. While a fence
	// waits, the writers queued behind it wait too, so it is short.
	DefaultLockTimeout = 200 * time.Millisecond
	// unfenceLockTimeout bounds one attempt of Unfence; dropping a trigger takes an
	// ACCESS EXCLUSIVE lock, which readers queue behind as well.
	unfenceLockTimeout = 200 * time.Millisecond
)

// ReasonMovingTo is the reason of the source's fence during a move to group.
func ReasonMovingTo(group string) string { return "moving to group " + group }

// ReasonArrivingFrom is the reason of the target's fence while the shard is copied from
// group and not yet owned.
func ReasonArrivingFrom(group string) string {
	return "arriving from group " + group + ", not owned yet"
}

// ReasonMovedTo is the reason of the permanent fence left on the old owner.
func ReasonMovedTo(group string) string { return "moved to group " + group }

// FenceOptions describes a fence.
type FenceOptions struct {
	Shard  shardmap.Shard // the shard made unwritable
	Move   int64          // the move the error message names
	Tables []Table        // every sharded table of the database
	Reason string         // e.g. ReasonMovingTo("g2")
	// Permanent leaves TRUNCATE allowed: the fence of a group that no longer owns the shard
	// stays for good, while TRUNCATE (which row filters cannot see) is refused only during a
	// move. Fencing a shard again without Permanent refuses TRUNCATE again, and vice versa.
	Permanent bool
	// Marker inserts the move's marker row (move_id = Move, shard_key = Shard) in the fence's
	// transaction, for CatchUp to find on the target.
	Marker bool
	// LockTimeout bounds each attempt's wait for the tables' locks; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// Deadline ends the retries; the zero time retries until ctx ends.
	Deadline time.Time
	// OnRetry, when set, is called after each attempt that met a lock conflict and will be
	// retried, with the attempt's number (1 for the first) and its error. It runs on Fence's
	// goroutine and must not use the connection.
	OnRetry func(attempt int, err error)
}

// triggerName is the name of a fence trigger of shard for op (ins, upd, del, trunc). Fence
// triggers are per shard, not per move, so a later fence of the shard replaces them.
func triggerName(shard shardmap.Shard, op string) string {
	return fmt.Sprintf("shardwire_fence_k%d_%s", shard, op)
}

// rowTriggerOps are the operations of a fence's row triggers.
func rowTriggerOps() []string { return []string{"ins", "upd", "del"} }

// Fence makes shard opts.Shard unwritable on conn's database in one transaction: on every
// table it creates (or replaces) BEFORE row triggers that reject an INSERT, UPDATE or DELETE
// of a row of the shard (for an UPDATE, when the old or the new row is in it) and, unless
// opts.Permanent, a BEFORE TRUNCATE statement trigger on the table and each of its
// partitions. With opts.Marker it inserts the move's marker row in the same transaction. The
// triggers raise SQLSTATE shardmap.CodeShardFenced with a message naming the shard, the move
// and opts.Reason, and the hint FenceHint. They are ordinary triggers, so logical
// replication's apply workers (session_replication_role = replica) pass through them.
//
// The transaction first locks every table (SHARE ROW EXCLUSIVE, which waits for every
// transaction writing them), with lock_timeout = opts.LockTimeout. A lock timeout or a
// deadlock is retried after 50ms, doubling up to 1s, until opts.Deadline, after which the
// error wraps ErrFenceLocks. Committing thus drains the writers in flight: every write of
// the shard that committed before the fence precedes it in the WAL.
//
// It returns the WAL insert position read inside the transaction just before its commit, in
// Postgres's text form (a subscriber that has received the fence's transaction is past it,
// and none of the shard's writes commits between the two). It is safe
// to call again. A move's marker row is inserted once and never written again, so a repeated
// fence adds no change for replication to carry (the first fence's marker already proves
// the catch-up, as no write of the shard commits on the source after it).
func Fence(ctx context.Context, conn *pgx.Conn, opts FenceOptions) (string, error) {
	if err := opts.validate(); err != nil {
		return "", fmt.Errorf("fence: %w", err)
	}
	what := fmt.Sprintf("fence shard %d (move %d)", opts.Shard, opts.Move)
	if err := ensureSchema(ctx, conn); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	ddl, err := fenceDDL(ctx, conn, opts)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	var lsn string
	err = withLockRetry(ctx, opts.Deadline, opts.OnRetry, func(attempt int) error {
		t := timeout
		if !opts.Deadline.IsZero() && attempt > 1 {
			t = max(min(t, time.Until(opts.Deadline)), time.Millisecond)
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := setLockTimeout(ctx, tx, t); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, ddl); err != nil {
				return err
			}
			if opts.Marker {
				if _, err := tx.Exec(ctx, `INSERT INTO `+markerTable+` (move_id, shard_key) VALUES ($1, $2)
					ON CONFLICT (shard_key, move_id) DO NOTHING`, opts.Move, int64(opts.Shard)); err != nil {
					return fmt.Errorf("marker: %w", err)
				}
			}
			// The position just before the commit record: the marker's commit comes after
			// it, and no write of the shard can commit between (the fence holds the tables'
			// locks), so a subscriber that received the marker's transaction has passed it.
			return tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn)
		})
	})
	if err != nil {
		return "", fmt.Errorf("%s on %s: %w", what, tableList(opts.Tables), err)
	}
	return lsn, nil
}

func (o FenceOptions) validate() error {
	var errs []error
	if int(o.Shard) >= shardmap.NumShards {
		errs = append(errs, fmt.Errorf("shard %d out of range 0..%d", o.Shard, shardmap.NumShards-1))
	}
	if o.Move <= 0 {
		errs = append(errs, fmt.Errorf("move id %d is not positive", o.Move))
	}
	if err := validateTables(o.Tables); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// fenceDDL is the fence's statements after the lock timeout: lock every table, then create
// the triggers.
func fenceDDL(ctx context.Context, conn *pgx.Conn, opts FenceOptions) (string, error) {
	var b strings.Builder
	idents := make([]string, len(opts.Tables))
	for i, t := range opts.Tables {
		idents[i] = t.Ident()
	}
	fmt.Fprintf(&b, "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE;\n", strings.Join(idents, ", "))
	args := strings.Join([]string{
		quoteLiteral(strconv.Itoa(int(opts.Shard))),
		quoteLiteral(strconv.FormatInt(opts.Move, 10)),
		quoteLiteral(opts.Reason),
	}, ", ")
	call := fmt.Sprintf("EXECUTE FUNCTION %s(%s)", fenceFunction, args)
	for _, t := range opts.Tables {
		key := t.keyIdent()
		inOld, inNew := shardFilter("OLD."+key, opts.Shard), shardFilter("NEW."+key, opts.Shard)
		for _, tr := range []struct{ op, event, when string }{
			{"ins", "INSERT", inNew},
			{"upd", "UPDATE", inOld + " OR " + inNew},
			{"del", "DELETE", inOld},
		} {
			fmt.Fprintf(&b, "CREATE OR REPLACE TRIGGER %s BEFORE %s ON %s FOR EACH ROW WHEN (%s) %s;\n",
				triggerName(opts.Shard, tr.op), tr.event, t.Ident(), tr.when, call)
		}
		members, err := treeMembers(ctx, conn, t)
		if err != nil {
			return "", err
		}
		for _, rel := range members {
			if opts.Permanent {
				fmt.Fprintf(&b, "DROP TRIGGER IF EXISTS %s ON %s;\n", triggerName(opts.Shard, "trunc"), rel)
			} else {
				fmt.Fprintf(&b, "CREATE OR REPLACE TRIGGER %s BEFORE TRUNCATE ON %s FOR EACH STATEMENT %s;\n", triggerName(opts.Shard, "trunc"), rel, call)
			}
		}
	}
	return b.String(), nil
}

// treeMembers returns t and, when it is partitioned, every partition below it, as SQL names.
// A statement trigger on a partitioned table does not fire for a TRUNCATE of a partition.
func treeMembers(ctx context.Context, conn *pgx.Conn, t Table) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT relid::regclass::text FROM pg_partition_tree(to_regclass($1)) WHERE level > 0 ORDER BY level, relid`, t.Ident())
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", t.Name, err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", t.Name, err)
	}
	return append([]string{t.Ident()}, parts...), nil
}

// setLockTimeout sets lock_timeout for the rest of tx.
func setLockTimeout(ctx context.Context, tx pgx.Tx, d time.Duration) error {
	ms := max(d.Milliseconds(), 1)
	if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", strconv.FormatInt(ms, 10)+"ms"); err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	return nil
}

// withLockRetry runs attempt until it succeeds, fails other than by a lock conflict, or the
// next try would start after deadline (zero: never) or ctx ends.
func withLockRetry(ctx context.Context, deadline time.Time, onRetry func(int, error), attempt func(n int) error) error {
	for n := 1; ; n++ {
		err := attempt(n)
		if err == nil || !lockConflict(err) {
			return err
		}
		wait := backoff(n)
		if !deadline.IsZero() && time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w before the deadline (%d attempts): %w", ErrFenceLocks, n, err)
		}
		if onRetry != nil {
			onRetry(n, err)
		}
		if cerr := ctxwait.Sleep(ctx, wait); cerr != nil {
			return fmt.Errorf("%w (%d attempts, last: %v): %w", ErrFenceLocks, n, err, cerr)
		}
	}
}

// tableList names tables for messages.
func tableList(tables []Table) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

// fenceTriggers returns the names of every fence trigger of shard.
func fenceTriggers(shard shardmap.Shard) []string {
	var names []string
	for _, op := range rowTriggerOps() {
		names = append(names, triggerName(shard, op))
	}
	return append(names, triggerName(shard, "trunc"))
}

// Unfence drops the fence triggers of shard from every table (and the TRUNCATE triggers from
// their partitions) in one transaction, retrying lock conflicts until ctx ends. Dropping a
// trigger takes an ACCESS EXCLUSIVE lock, so each attempt waits at most 200ms. Triggers and
// tables already gone are skipped.
func Unfence(ctx context.Context, conn *pgx.Conn, shard shardmap.Shard, tables []Table) error {
	if int(shard) >= shardmap.NumShards {
		return fmt.Errorf("unfence: shard %d out of range", shard)
	}
	if err := validateTables(tables); err != nil {
		return fmt.Errorf("unfence shard %d: %w", shard, err)
	}
	var b strings.Builder
	for _, t := range tables {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.Ident()).Scan(&exists); err != nil {
			return fmt.Errorf("unfence shard %d: look up %s: %w", shard, t.Name, err)
		}
		if !exists {
			continue
		}
		members, err := treeMembers(ctx, conn, t)
		if err != nil {
			return fmt.Errorf("unfence shard %d: %w", shard, err)
		}
		for _, op := range rowTriggerOps() {
			fmt.Fprintf(&b, "DROP TRIGGER IF EXISTS %s ON %s;\n", triggerName(shard, op), t.Ident())
		}
		for _, rel := range members {
			fmt.Fprintf(&b, "DROP TRIGGER IF EXISTS %s ON %s;\n", triggerName(shard, "trunc"), rel)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	err := withLockRetry(ctx, time.Time{}, nil, func(int) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := setLockTimeout(ctx, tx, unfenceLockTimeout); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, b.String())
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("unfence shard %d on %s: %w", shard, tableList(tables), err)
	}
	return nil
}

// Fenced reports whether every table carries the row triggers of shard's fence (enabled). A
// missing table is an error.
func Fenced(ctx context.Context, conn *pgx.Conn, shard shardmap.Shard, tables []Table) (bool, error) {
	if err := validateTables(tables); err != nil {
		return false, fmt.Errorf("fenced: %w", err)
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.Ident()
	}
	rows, err := conn.Query(ctx, `SELECT u.name, to_regclass(u.name) IS NOT NULL,
			(SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = to_regclass(u.name) AND g.tgname = ANY($2) AND g.tgenabled <> 'D')
		FROM unnest($1::text[]) AS u(name)`, names, fenceTriggers(shard)[:len(rowTriggerOps())])
	if err != nil {
		return false, fmt.Errorf("fenced: %w", err)
	}
	all := true
	var name string
	var exists bool
	var n int
	_, err = pgx.ForEachRow(rows, []any{&name, &exists, &n}, func() error {
		if !exists {
			return fmt.Errorf("table %s does not exist", name)
		}
		all = all && n == len(rowTriggerOps())
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("fenced shard %d: %w", shard, err)
	}
	return all, nil
}
