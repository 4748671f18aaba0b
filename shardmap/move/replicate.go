package move

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// publishOptions are the options of every move publication: row filters do not apply to
// TRUNCATE, so it is not published (the proxy refuses it during a move), and changes to a
// partition are published as changes to its root, whose filter and name the target shares.
const publishOptions = "publish = 'insert, update, delete', publish_via_partition_root = true"

// Replicate creates what is missing of one direction of replication of spec.Shard:
//
//   - the move schema (marker table, fence trigger function) on both sides;
//   - on the source, a publication named spec.Name of every table of spec.Tables with the row
//     filter ((key % 16) + 16) % 16 = shard, plus the marker table filtered the same way on
//     its shard_key and to markers of this move or later ones; an existing publication whose tables or filters differ from spec's is
//     brought up to date;
//   - on the source, a logical replication slot named spec.Name (pgoutput);
//   - on the target, an enabled subscription named spec.Name on that publication and slot,
//     copying the existing rows first when spec.CopyData. A subscription found disabled is
//     enabled, one whose slot was detached gets it back, and one whose table list lags the
//     publication is refreshed.
//
// It is safe to call again after a failure at any point. A subscription that exists while
// its slot is gone from the source is an error, as changes may have been lost: drop the
// direction (DropReplication) and start again. When the subscription is missing, an existing
// slot of the same name is dropped and created anew, so that replication starts from a
// known point; a copying subscription is only created while the target holds no row of the
// shard (delete a partial copy with DeleteShardRows first).
//
// Replication starts from the moment the slot is created: for a direction without
// CopyData, the caller makes sure nothing writes the shard on the source until Replicate
// has returned (the source is fenced). PostgreSQL 15 has no origin filter, so the two
// directions of a move must never both be enabled while the shard is writable on either
// side: a change would come back.
func Replicate(ctx context.Context, source, target *pgx.Conn, spec Spec) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("replicate: %w", err)
	}
	if spec.SourceConnInfo == "" {
		return fmt.Errorf("replicate %s: no source connection string for the subscription", spec)
	}
	if err := ensureSchema(ctx, source); err != nil {
		return fmt.Errorf("replicate %s: source: %w", spec, err)
	}
	if err := ensureSchema(ctx, target); err != nil {
		return fmt.Errorf("replicate %s: target: %w", spec, err)
	}
	if err := ensurePublication(ctx, source, spec); err != nil {
		return fmt.Errorf("replicate %s: source: %w", spec, err)
	}
	sub, err := lookupSubscription(ctx, target, spec.Name)
	if err != nil {
		return fmt.Errorf("replicate %s: target: %w", spec, err)
	}
	if sub == nil {
		if err := createSubscription(ctx, source, target, spec); err != nil {
			return fmt.Errorf("replicate %s: %w", spec, err)
		}
	} else if err := repairSubscription(ctx, source, target, spec, sub); err != nil {
		return fmt.Errorf("replicate %s: %w", spec, err)
	}
	if err := refreshSubscription(ctx, target, spec); err != nil {
		return fmt.Errorf("replicate %s: target: %w", spec, err)
	}
	return nil
}

// publicationTables is the FOR TABLE list of spec's publication.
func publicationTables(spec Spec) string {
	parts := make([]string, 0, len(spec.Tables)+1)
	for _, t := range spec.Tables {
		parts = append(parts, fmt.Sprintf("%s WHERE (%s)", t.Ident(), shardFilter(t.keyIdent(), spec.Shard)))
	}
	// Only this move's marker and later ones: markers of earlier moves of the shard may be on
	// both sides already, and copying them would fail on the target's primary key.
	parts = append(parts, fmt.Sprintf("%s WHERE (%s AND move_id >= %d)", markerTable, shardFilter("shard_key", spec.Shard), spec.Move))
	return strings.Join(parts, ", ")
}

// ensurePublication creates spec's publication on the source, or rewrites its table list,
// filters and options when its description says they differ from spec's.
func ensurePublication(ctx context.Context, source *pgx.Conn, spec Spec) error {
	name := pgx.Identifier{spec.Name}.Sanitize()
	want := spec.description()
	for attempt := 0; ; attempt++ {
		var have string
		err := source.QueryRow(ctx, `SELECT coalesce(obj_description(oid, 'pg_publication'), '')
			FROM pg_publication WHERE pubname = $1`, spec.Name).Scan(&have)
		exists := err == nil
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("look up publication: %w", err)
		case have == want:
			return nil
		}
		var ddl string
		if exists {
			ddl = fmt.Sprintf("ALTER PUBLICATION %s SET TABLE %s; ALTER PUBLICATION %s SET (%s)",
				name, publicationTables(spec), name, publishOptions)
		} else {
			ddl = fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (%s)", name, publicationTables(spec), publishOptions)
		}
		ddl += fmt.Sprintf("; COMMENT ON PUBLICATION %s IS %s", name, quoteLiteral(want))
		err = pgx.BeginFunc(ctx, source, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, ddl)
			return err
		})
		if pgState(err) == codeDuplicateObject && attempt == 0 {
			continue // created concurrently: look again
		}
		if err != nil {
			return fmt.Errorf("publication: %w", err)
		}
		return nil
	}
}

// subscription is a subscription as the target's catalog holds it.
type subscription struct {
	oid         uint32
	enabled     bool
	slot        *string // nil when detached (slot_name = NONE)
	conninfo    string
	description string
}

// lookupSubscription returns the subscription named name in conn's database, or nil.
func lookupSubscription(ctx context.Context, conn *pgx.Conn, name string) (*subscription, error) {
	s := &subscription{}
	err := conn.QueryRow(ctx, `SELECT s.oid, s.subenabled, s.subslotname::text, s.subconninfo,
			coalesce(shobj_description(s.oid, 'pg_subscription'), '')
		FROM pg_subscription s
		WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, name).
		Scan(&s.oid, &s.enabled, &s.slot, &s.conninfo, &s.description)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up subscription %s: %w", name, err)
	}
	return s, nil
}

// createSubscription makes a fresh slot on the source and the subscription on the target.
func createSubscription(ctx context.Context, source, target *pgx.Conn, spec Spec) error {
	if spec.CopyData {
		if err := checkNoShardRows(ctx, target, spec); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	// A slot without its subscription may have been consumed by an earlier one: start afresh.
	if err := dropSlot(ctx, source, spec.Name); err != nil {
		return fmt.Errorf("source: stale slot: %w", err)
	}
	if _, err := source.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", spec.Name); err != nil {
		return fmt.Errorf("source: create slot %s: %w", spec.Name, err)
	}
	name := pgx.Identifier{spec.Name}.Sanitize()
	create := fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s
		WITH (create_slot = false, slot_name = %s, copy_data = %t, enabled = true)`,
		name, quoteLiteral(spec.SourceConnInfo), name, quoteLiteral(spec.Name), spec.CopyData)
	if _, err := target.Exec(ctx, create); err != nil {
		return fmt.Errorf("target: create subscription: %w", err)
	}
	if _, err := target.Exec(ctx, fmt.Sprintf("COMMENT ON SUBSCRIPTION %s IS %s", name, quoteLiteral(spec.description()))); err != nil {
		return fmt.Errorf("target: describe subscription: %w", err)
	}
	return nil
}

// repairSubscription brings an existing subscription back to what Replicate makes: its slot
// present on the source and attached, the current connection string, enabled.
func repairSubscription(ctx context.Context, source, target *pgx.Conn, spec Spec, sub *subscription) error {
	var slotExists bool
	if err := source.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", spec.Name).Scan(&slotExists); err != nil {
		return fmt.Errorf("source: look up slot: %w", err)
	}
	if !slotExists {
		return fmt.Errorf("the subscription exists on the target but slot %s is gone from the source, so changes may have been lost: drop this replication and start it again", spec.Name)
	}
	name := pgx.Identifier{spec.Name}.Sanitize()
	var stmts []string
	if sub.conninfo != spec.SourceConnInfo {
		stmts = append(stmts, fmt.Sprintf("ALTER SUBSCRIPTION %s CONNECTION %s", name, quoteLiteral(spec.SourceConnInfo)))
	}
	if sub.slot == nil || *sub.slot != spec.Name {
		if sub.enabled {
			stmts = append(stmts, fmt.Sprintf("ALTER SUBSCRIPTION %s DISABLE", name))
		}
		stmts = append(stmts, fmt.Sprintf("ALTER SUBSCRIPTION %s SET (slot_name = %s)", name, quoteLiteral(spec.Name)))
		sub.enabled = false
	}
	if !sub.enabled {
		stmts = append(stmts, fmt.Sprintf("ALTER SUBSCRIPTION %s ENABLE", name))
	}
	if sub.description != spec.description() {
		stmts = append(stmts, fmt.Sprintf("COMMENT ON SUBSCRIPTION %s IS %s", name, quoteLiteral(spec.description())))
	}
	for _, s := range stmts {
		if _, err := target.Exec(ctx, s); err != nil {
			return fmt.Errorf("target: %s: %w", s, err)
		}
	}
	return nil
}

// refreshSubscription refreshes the subscription when the tables it knows differ from
// spec's (the publication changed since it was created).
func refreshSubscription(ctx context.Context, target *pgx.Conn, spec Spec) error {
	sub, err := lookupSubscription(ctx, target, spec.Name)
	if err != nil {
		return err
	}
	if sub == nil {
		return fmt.Errorf("subscription %s vanished", spec.Name)
	}
	want, err := relationOIDs(ctx, target, spec.Tables)
	if err != nil {
		return err
	}
	var have []uint32
	if err := target.QueryRow(ctx, `SELECT coalesce(array_agg(srrelid::oid ORDER BY srrelid), '{}')
		FROM pg_subscription_rel WHERE srsubid = $1`, sub.oid).Scan(&have); err != nil {
		return fmt.Errorf("subscription tables: %w", err)
	}
	slices.Sort(want)
	if slices.Equal(want, have) {
		return nil
	}
	refresh := fmt.Sprintf("ALTER SUBSCRIPTION %s REFRESH PUBLICATION WITH (copy_data = %t)", pgx.Identifier{spec.Name}.Sanitize(), spec.CopyData)
	if _, err := target.Exec(ctx, refresh); err != nil {
		return fmt.Errorf("refresh subscription: %w", err)
	}
	return nil
}

// relationOIDs returns the oids of tables and of the marker table on conn, in that order;
// a missing table is an error.
func relationOIDs(ctx context.Context, conn *pgx.Conn, tables []Table) ([]uint32, error) {
	names := tableNames(tables)
	oids, err := lookupOIDs(ctx, conn, names)
	if err != nil {
		return nil, err
	}
	for i, o := range oids {
		if o == 0 {
			return nil, fmt.Errorf("table %s does not exist", names[i])
		}
	}
	return oids, nil
}

// tableNames returns the SQL names of tables and of the marker table, in that order.
func tableNames(tables []Table) []string {
	names := make([]string, 0, len(tables)+1)
	for _, t := range tables {
		names = append(names, t.Ident())
	}
	return append(names, markerTable)
}

// lookupOIDs returns the oid of each table named, 0 for a missing one.
func lookupOIDs(ctx context.Context, conn *pgx.Conn, names []string) ([]uint32, error) {
	var oids []uint32
	if err := conn.QueryRow(ctx, `SELECT array_agg(coalesce(to_regclass(n)::oid, 0) ORDER BY i)
		FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i)`, names).Scan(&oids); err != nil {
		return nil, fmt.Errorf("look up tables: %w", err)
	}
	return oids, nil
}

// checkNoShardRows fails when a table already holds rows of the shard, which a copy would
// collide with. It scans each table once.
func checkNoShardRows(ctx context.Context, conn *pgx.Conn, spec Spec) error {
	for _, t := range spec.Tables {
		var found bool
		q := fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", t.Ident(), shardFilter(t.keyIdent(), spec.Shard))
		if err := conn.QueryRow(ctx, q).Scan(&found); err != nil {
			return fmt.Errorf("look for rows of shard %d in %s: %w", spec.Shard, t.Name, err)
		}
		if found {
			return fmt.Errorf("table %s already holds rows of shard %d, which the copy would collide with: delete them first (DeleteShardRows)", t.Name, spec.Shard)
		}
	}
	return nil
}
