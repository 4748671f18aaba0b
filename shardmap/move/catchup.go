package move

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/ctxwait"
)

// catchUpPoll is how often CatchUp looks at the target. The shard's writes are paused
// while it waits, so it looks often; each look is one small catalog query.
const catchUpPoll = 10 * time.Millisecond

// CatchUp waits until the target has provably applied every write the source committed
// before its fence: the move's marker row (written in the fence's transaction, so after every
// such write in commit order) is visible on the target, every table of the subscription is
// ready (no table copy still catching up on its own), and the subscription's apply worker
// has received the source's WAL up to lsn (the position Fence returned). It measures no lag;
// it returns nil once all three hold, or, when ctx ends first, an error naming what was
// still missing and wrapping ctx's error; the connection stays usable either way.
func CatchUp(ctx context.Context, target *pgx.Conn, spec Spec, lsn string) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	if _, err := pglogrepl.ParseLSN(lsn); err != nil {
		return fmt.Errorf("catch-up of %s: fence position %q: %w", spec, lsn, err)
	}
	want, err := relationOIDs(ctx, target, spec.Tables)
	if err != nil {
		return fmt.Errorf("catch-up of %s: target: %w", spec, err)
	}
	for {
		st, err := readCatchUp(ctx, target, spec, lsn)
		if err != nil {
			return fmt.Errorf("catch-up of %s: target: %w", spec, err)
		}
		missing := st.missing(spec, lsn, want)
		if len(missing) == 0 {
			return nil
		}
		if err := ctxwait.Sleep(ctx, catchUpPoll); err != nil {
			return fmt.Errorf("catch-up of %s not proven: %s: %w", spec, strings.Join(missing, "; "), err)
		}
	}
}

// catchUpState is one look at the target.
type catchUpState struct {
	marker      bool     // the marker row is visible
	exists      bool     // the subscription exists
	enabled     bool     // and is enabled
	received    *string  // the apply worker's received_lsn; nil without a running apply worker
	passed      bool     // received >= the fence position
	tables      []uint32 // the subscription's tables
	notReady    []string // those not ready, "name (state)"
	markerTable bool     // the marker table exists
}

// catchUpQueryTimeout bounds one look at the target. The look does not end with CatchUp's
// context: pgx closes a connection whose query is interrupted, and the caller still needs
// the target's connection after a catch-up that timed out (to abort the move).
const catchUpQueryTimeout = 10 * time.Second

// readCatchUp reads every condition of the proof.
func readCatchUp(ctx context.Context, target *pgx.Conn, spec Spec, lsn string) (catchUpState, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catchUpQueryTimeout)
	defer cancel()
	var st catchUpState
	err := target.QueryRow(ctx, `WITH s AS (
			SELECT oid, subenabled FROM pg_subscription
			WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
		w AS (SELECT received_lsn FROM pg_stat_subscription WHERE subid = (SELECT oid FROM s) AND relid IS NULL AND pid IS NOT NULL)
		SELECT to_regclass($2) IS NOT NULL,
			EXISTS (SELECT 1 FROM s), coalesce((SELECT subenabled FROM s), false),
			(SELECT received_lsn::text FROM w), coalesce((SELECT received_lsn >= $3::pg_lsn FROM w), false),
			ARRAY(SELECT srrelid::oid FROM pg_subscription_rel WHERE srsubid = (SELECT oid FROM s) ORDER BY srrelid),
			ARRAY(SELECT srrelid::regclass::text || ' (' || srsubstate::text || ')' FROM pg_subscription_rel
				WHERE srsubid = (SELECT oid FROM s) AND srsubstate <> 'r' ORDER BY 1)`,
		spec.Name, markerTable, lsn).
		Scan(&st.markerTable, &st.exists, &st.enabled, &st.received, &st.passed, &st.tables, &st.notReady)
	if err != nil {
		return st, err
	}
	if !st.markerTable {
		return st, nil
	}
	err = target.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+markerTable+" WHERE shard_key = $1 AND move_id = $2)",
		int64(spec.Shard), spec.Move).Scan(&st.marker)
	return st, err
}

// missing lists what the proof still lacks, empty when it holds. want holds the oids of the
// tables the subscription must have.
func (st catchUpState) missing(spec Spec, lsn string, want []uint32) []string {
	var out []string
	if !st.markerTable {
		return []string{"the target has no marker table (Replicate has not run)"}
	}
	if !st.exists {
		return []string{fmt.Sprintf("subscription %s does not exist on the target", spec.Name)}
	}
	if !st.marker {
		out = append(out, fmt.Sprintf("the marker row of move %d (shard %d) has not arrived", spec.Move, spec.Shard))
	}
	switch {
	case !st.enabled:
		out = append(out, fmt.Sprintf("subscription %s is disabled", spec.Name))
	case st.received == nil:
		out = append(out, fmt.Sprintf("subscription %s has no running apply worker", spec.Name))
	case !st.passed:
		out = append(out, fmt.Sprintf("received position %s has not passed the fence position %s", *st.received, lsn))
	}
	if len(st.notReady) > 0 {
		out = append(out, "tables not ready: "+strings.Join(st.notReady, ", "))
	}
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	if !slices.Equal(sorted, st.tables) {
		out = append(out, "the subscription's tables differ from the move's (run Replicate to refresh it)")
	}
	return out
}
