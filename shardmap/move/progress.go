package move

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SyncState is a table's state in a subscription, pg_subscription_rel.srsubstate.
type SyncState string

// Table states, in the order a table goes through them.
const (
	SyncMissing      SyncState = ""  // not (yet) part of the subscription
	SyncInit         SyncState = "i" // waiting for a copy worker
	SyncDataCopy     SyncState = "d" // being copied
	SyncFinishedCopy SyncState = "f" // copied, its copy worker catching up
	SyncSynchronized SyncState = "s" // caught up, handed to the apply worker
	SyncReady        SyncState = "r" // streamed by the apply worker
)

// String names the state.
func (s SyncState) String() string {
	switch s {
	case SyncMissing:
		return "missing"
	case SyncInit:
		return "init"
	case SyncDataCopy:
		return "copying"
	case SyncFinishedCopy:
		return "copied"
	case SyncSynchronized:
		return "synchronized"
	case SyncReady:
		return "ready"
	}
	return "unknown(" + string(s) + ")"
}

// TableProgress is one table's replication on the target.
type TableProgress struct {
	Table   string    // as in Spec.Tables; the marker table is "shardwire_move.markers"
	State   SyncState // SyncMissing when the subscription does not have the table
	Rows    int64     // committed rows of the shard on the target (not counted for the marker table)
	Copying int64     // rows a running copy has written so far, not yet committed
}

// ReplicationProgress is one look at a direction of replication.
type ReplicationProgress struct {
	Tables   []TableProgress // spec.Tables in order, then the marker table
	Enabled  bool            // the subscription exists and is enabled
	Ready    bool            // enabled and every table ready
	Rows     int64           // sum of the tables' Rows
	Copying  int64           // sum of the tables' Copying
	LagBytes int64           // source's current WAL position minus what its sender has sent (the slot's confirmed_flush_lsn without a sender); -1 when the slot is missing
}

// Progress reports how far spec's replication is: each table's sync state, the rows of the
// shard present on the target, and the lag in bytes of the slot on the source.
//
// Rows are exact, not estimates: one count per table with the shard filter, which Postgres
// runs as a sequential scan of the target's table (the filter cannot use an index). That
// measured about 75ms per million rows of the target's table here: fine once a second for a
// million rows, call it less often for much larger tables. While a table is being copied its
// rows are not visible until the copy commits, so Copying reports the running copies'
// progress (pg_stat_progress_copy), which costs nothing. The marker table is not counted;
// it is missing from Tables' states until Replicate has created it.
func Progress(ctx context.Context, source, target *pgx.Conn, spec Spec) (*ReplicationProgress, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	p, err := targetProgress(ctx, target, spec)
	if err != nil {
		return nil, fmt.Errorf("progress of %s: target: %w", spec, err)
	}
	var lag *int64
	// The sender's position when it runs (it moves as the sender decodes, also past the
	// other shards' changes the row filter drops), else the slot's confirmed position
	// (which only moves with the subscriber's periodic feedback).
	err = source.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(),
			coalesce((SELECT max(sent_lsn) FROM pg_stat_replication WHERE application_name = $1), confirmed_flush_lsn))::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, spec.Name).Scan(&lag)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("progress of %s: source: slot: %w", spec, err)
	}
	p.LagBytes = -1
	if lag != nil {
		p.LagBytes = *lag
	}
	return p, nil
}

// targetProgress reads everything Progress reports but the lag.
func targetProgress(ctx context.Context, target *pgx.Conn, spec Spec) (*ReplicationProgress, error) {
	names := tableNames(spec.Tables)
	oids, err := lookupOIDs(ctx, target, names)
	if err != nil {
		return nil, err
	}
	for i, o := range oids[:len(spec.Tables)] {
		if o == 0 {
			return nil, fmt.Errorf("table %s does not exist", names[i])
		}
	}
	p := &ReplicationProgress{}
	for _, t := range spec.Tables {
		p.Tables = append(p.Tables, TableProgress{Table: t.Name})
	}
	p.Tables = append(p.Tables, TableProgress{Table: markerTable})
	// Counts first: a copy that commits in between is then missed once, never counted twice.
	for i, t := range spec.Tables {
		q := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", t.Ident(), shardFilter(t.keyIdent(), spec.Shard))
		if err := target.QueryRow(ctx, q).Scan(&p.Tables[i].Rows); err != nil {
			return nil, fmt.Errorf("count %s: %w", t.Name, err)
		}
		p.Rows += p.Tables[i].Rows
	}
	sub, err := lookupSubscription(ctx, target, spec.Name)
	if err != nil || sub == nil {
		return p, err
	}
	p.Enabled = sub.enabled
	states := map[uint32]SyncState{}
	rows, err := target.Query(ctx, "SELECT srrelid::oid, srsubstate::text FROM pg_subscription_rel WHERE srsubid = $1", sub.oid)
	if err != nil {
		return nil, fmt.Errorf("sync states: %w", err)
	}
	var relid uint32
	var state string
	if _, err := pgx.ForEachRow(rows, []any{&relid, &state}, func() error {
		states[relid] = SyncState(state)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("sync states: %w", err)
	}
	copying := map[uint32]int64{}
	rows, err = target.Query(ctx, `SELECT relid::oid, tuples_processed FROM pg_stat_progress_copy
		WHERE command = 'COPY FROM' AND pid IN (SELECT pid FROM pg_stat_subscription WHERE subid = $1 AND pid IS NOT NULL)`, sub.oid)
	if err != nil {
		return nil, fmt.Errorf("copy progress: %w", err)
	}
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&relid, &n}, func() error {
		copying[relid] += n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("copy progress: %w", err)
	}
	p.Ready = p.Enabled
	for i, oid := range oids {
		p.Tables[i].State = states[oid]
		p.Tables[i].Copying = copying[oid]
		p.Copying += copying[oid]
		p.Ready = p.Ready && oid != 0 && states[oid] == SyncReady
	}
	return p, nil
}
