package move

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Table is one sharded table to move: its name (lower case, may be schema-qualified by the
// caller as "schema.name"; quote it with pgx.Identifier) and its shard-key column.
type Table struct{ Name, KeyColumn string }

// ident returns the table's name quoted for SQL, each dot-separated part quoted alone.
// Ident returns the table\'s name quoted for SQL (schema-qualified when Name is).
func (t Table) Ident() string { return pgx.Identifier(strings.Split(t.Name, ".")).Sanitize() }

// Sides a Problem can be found on.
const (
	SideSource = "source"
	SideTarget = "target"
)

// Checks a Problem can come from.
const (
	CheckWALLevel        = "wal_level"         // wal_level is not logical
	CheckSlots           = "replication_slots" // no free replication slot on the source
	CheckWALSenders      = "wal_senders"       // no free WAL sender on the source
	CheckWorkers         = "workers"           // no free logical replication worker on the target
	CheckExists          = "exists"            // the table or its key column is missing on the source
	CheckReplicaIdentity = "replica_identity"  // the replica identity does not cover the key
	CheckSequence        = "sequence"          // a column takes its value from a per-group sequence
	CheckSchema          = "schema"            // columns or primary key differ between the sides
	CheckPartitions      = "partitions"        // a partition of the source is missing on the target
	CheckPrivileges      = "privileges"        // the role cannot see what the capacity checks count
)

// Problem is one reason a move cannot start, with what to do about it.
type Problem struct {
	Side    string // SideSource or SideTarget: where the fix belongs
	Table   string // the table concerned, "" for server-wide checks
	Check   string // one of the Check constants
	Message string // what is wrong and what to do, one line
}

// Report lists every problem Precheck found. MissingOnTarget names the tables that exist on
// the source but not at all on the target: they are not problems, the orchestration copies
// their definitions before it subscribes.
type Report struct {
	Problems        []Problem
	MissingOnTarget []string
}

// OK reports whether the move may start: no problems (tables missing on the target are
// allowed).
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Error returns every problem's message, one per line, so a Report that is not OK can be
// returned as an error.
func (r *Report) Error() string {
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = p.Message
	}
	return strings.Join(lines, "\n")
}

func (r *Report) add(side, table, check, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Side: side, Table: table, Check: check, Message: fmt.Sprintf(format, args...)})
}

// Precheck checks that the shard's tables can be moved from source to target: wal_level on
// both sides, free replication slots and WAL senders on the source, free logical
// replication workers on the target, and per table its replica identity, the absence of
// sequence-fed columns, and a schema identical on both sides. It returns every problem it
// finds; the error is only for failed queries. The connections are the caller's and are
// left as they were; every query is read-only.
func Precheck(ctx context.Context, source, target *pgx.Conn, tables []Table) (*Report, error) {
	r := &Report{}
	for _, side := range []struct {
		name string
		conn *pgx.Conn
	}{{SideSource, source}, {SideTarget, target}} {
		var level string
		if err := side.conn.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&level); err != nil {
			return nil, fmt.Errorf("precheck: wal_level on %s: %w", side.name, err)
		}
		if p, bad := walLevelProblem(side.name, level); bad {
			r.Problems = append(r.Problems, p)
		}
	}

	src, err := readSourceCapacity(ctx, source)
	if err != nil {
		return nil, err
	}
	tgt, err := readTargetCapacity(ctx, target)
	if err != nil {
		return nil, err
	}
	r.Problems = append(r.Problems, capacityProblems(src, tgt)...)

	for _, t := range tables {
		if err := checkTable(ctx, r, source, target, t); err != nil {
			return nil, fmt.Errorf("precheck: table %s: %w", t.Name, err)
		}
	}
	return r, nil
}

// walLevelProblem returns the problem for a side whose wal_level is not logical.
func walLevelProblem(side, level string) (Problem, bool) {
	if level == "logical" {
		return Problem{}, false
	}
	why := "the move publishes the shard from the source"
	if side == SideTarget {
		why = "the reverse replication kept for a rollback publishes from the target"
	}
	return Problem{
		Side:  side,
		Check: CheckWALLevel,
		Message: fmt.Sprintf("%s: wal_level is %s but must be logical (%s); set wal_level = logical and restart the server",
			side, level, why),
	}, true
}

// sourceCapacity is what the source offers to the move's subscription.
type sourceCapacity struct {
	maxSlots, usedSlots     int
	maxSenders, usedSenders int
	seesAll                 bool // the role may read every process's type (pg_read_all_stats)
}

// targetCapacity is what the target offers to run the move's subscription.
type targetCapacity struct {
	maxLogicalWorkers, usedLogicalWorkers int
	maxWorkers, usedWorkers               int
	syncWorkersPerSubscription            int
	seesAll                               bool // the role may read every process's type (pg_read_all_stats)
}

// needed is how many slots, WAL senders and workers a move takes at once: one for the
// subscription's apply stream and one for the table-sync worker copying a table (more sync
// workers only copy faster).
const needed = 2

// readSourceCapacity reads slot and WAL-sender use on the source.
func readSourceCapacity(ctx context.Context, conn *pgx.Conn) (sourceCapacity, error) {
	var c sourceCapacity
	err := conn.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int,
		(SELECT count(*) FROM pg_replication_slots)::int,
		current_setting('max_wal_senders')::int,
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int,
		pg_has_role('pg_read_all_stats', 'USAGE')`).
		Scan(&c.maxSlots, &c.usedSlots, &c.maxSenders, &c.usedSenders, &c.seesAll)
	if err != nil {
		return c, fmt.Errorf("precheck: replication capacity on source: %w", err)
	}
	return c, nil
}

// auxiliaryProcesses are the backend types that do not take a max_worker_processes slot;
// every other process in pg_stat_activity is a background worker. Only a role with
// pg_read_all_stats sees the types of processes that are not its own.
var auxiliaryProcesses = []string{
	"client backend", "walsender", "autovacuum launcher", "autovacuum worker", "archiver",
	"background writer", "checkpointer", "logger", "standalone backend", "startup",
	"walreceiver", "walwriter", "walsummarizer", "slotsync worker", "io worker",
}

// readTargetCapacity reads logical-replication and background worker use on the target.
func readTargetCapacity(ctx context.Context, conn *pgx.Conn) (targetCapacity, error) {
	var c targetCapacity
	err := conn.QueryRow(ctx, `SELECT current_setting('max_logical_replication_workers')::int,
		(SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL)::int,
		current_setting('max_worker_processes')::int,
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type <> ALL($1::text[]))::int,
		current_setting('max_sync_workers_per_subscription')::int,
		pg_has_role('pg_read_all_stats', 'USAGE')`, auxiliaryProcesses).
		Scan(&c.maxLogicalWorkers, &c.usedLogicalWorkers, &c.maxWorkers, &c.usedWorkers, &c.syncWorkersPerSubscription, &c.seesAll)
	if err != nil {
		return c, fmt.Errorf("precheck: worker capacity on target: %w", err)
	}
	return c, nil
}

// capacityProblems compares free capacity with what a move needs.
func capacityProblems(src sourceCapacity, tgt targetCapacity) []Problem {
	var out []Problem
	add := func(side, check, format string, args ...any) {
		out = append(out, Problem{Side: side, Check: check, Message: fmt.Sprintf(format, args...)})
	}
	if free := src.maxSlots - src.usedSlots; free < needed {
		add(SideSource, CheckSlots, "source: %d of max_replication_slots = %d in use, %d free; a move needs %d (subscription and table sync): drop unused slots or raise max_replication_slots (restart)",
			src.usedSlots, src.maxSlots, free, needed)
	}
	const blind = "%s: the role cannot see other sessions' process types, so %s cannot be counted; run the pre-checks as a superuser or grant the role pg_read_all_stats"
	switch free := src.maxSenders - src.usedSenders; {
	case !src.seesAll:
		add(SideSource, CheckPrivileges, blind, SideSource, "WAL senders in use")
	case free < needed:
		add(SideSource, CheckWALSenders, "source: %d of max_wal_senders = %d in use, %d free; a move needs %d (subscription and table sync): raise max_wal_senders (restart)",
			src.usedSenders, src.maxSenders, free, needed)
	}
	if free := tgt.maxLogicalWorkers - tgt.usedLogicalWorkers; free < needed {
		add(SideTarget, CheckWorkers, "target: %d of max_logical_replication_workers = %d running, %d free; a move needs %d (apply and table sync): raise max_logical_replication_workers (restart)",
			tgt.usedLogicalWorkers, tgt.maxLogicalWorkers, free, needed)
	}
	switch free := tgt.maxWorkers - tgt.usedWorkers; {
	case !tgt.seesAll:
		add(SideTarget, CheckPrivileges, blind, SideTarget, "background workers running")
	case free < needed:
		add(SideTarget, CheckWorkers, "target: %d of max_worker_processes = %d running, %d free; a move needs %d (apply and table sync): raise max_worker_processes (restart)",
			tgt.usedWorkers, tgt.maxWorkers, free, needed)
	}
	if tgt.syncWorkersPerSubscription < 1 {
		add(SideTarget, CheckWorkers, "target: max_sync_workers_per_subscription = %d, so no table can be copied; set it to at least 1",
			tgt.syncWorkersPerSubscription)
	}
	return out
}

// column is one column as both sides are compared.
type column struct {
	name, typ   string
	notNull     bool
	identity    string // attidentity: "" or "a"/"d"
	defaultExpr string // "" when none
}

// relation is a table as the catalog describes it on one side.
type relation struct {
	oid         uint32
	partitioned bool
	columns     []column
	primaryKey  []string // column names in key order; nil without a primary key
}

// loadRelation reads t's definition, or returns nil when t does not exist on conn.
func loadRelation(ctx context.Context, conn *pgx.Conn, t Table) (*relation, error) {
	rel := &relation{}
	err := conn.QueryRow(ctx, `SELECT c.oid, c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass($1)`, t.Ident()).
		Scan(&rel.oid, &rel.partitioned)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			a.attidentity::text, coalesce(pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, rel.oid)
	if err != nil {
		return nil, fmt.Errorf("columns: %w", err)
	}
	rel.columns, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (column, error) {
		var c column
		err := row.Scan(&c.name, &c.typ, &c.notNull, &c.identity, &c.defaultExpr)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("columns: %w", err)
	}
	_, rel.primaryKey, err = identityIndex(ctx, conn, rel.oid, true)
	if err != nil {
		return nil, err
	}
	return rel, nil
}

// identityIndex returns the name and columns of relid's primary key (primary) or of its
// REPLICA IDENTITY USING INDEX index; "" and nil when there is none.
func identityIndex(ctx context.Context, conn *pgx.Conn, relid uint32, primary bool) (string, []string, error) {
	var name string
	var cols []string
	err := conn.QueryRow(ctx, `SELECT i.indexrelid::regclass::text, array_agg(a.attname::text ORDER BY k.ord)
		FROM pg_index i
		CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1 AND CASE WHEN $2 THEN i.indisprimary ELSE i.indisreplident END
		GROUP BY i.indexrelid`, relid, primary).Scan(&name, &cols)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("identity index: %w", err)
	}
	return name, cols, nil
}

// partition is one member of a partitioned table's tree below the root.
type partition struct {
	oid                      uint32
	qualified, parent, bound string
	replident                string
}

// loadPartitions returns every partition below relid (all levels), parents first.
func loadPartitions(ctx context.Context, conn *pgx.Conn, relid uint32) ([]partition, error) {
	rows, err := conn.Query(ctx, `SELECT p.relid::oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
			p.parentrelid::regclass::text, coalesce(pg_get_expr(c.relpartbound, c.oid), ''), c.relreplident::text
		FROM pg_partition_tree($1::oid::regclass) p
		JOIN pg_class c ON c.oid = p.relid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.level > 0
		ORDER BY p.level, c.relname`, relid)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	parts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (partition, error) {
		var p partition
		err := row.Scan(&p.oid, &p.qualified, &p.parent, &p.bound, &p.replident)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	return parts, nil
}

// checkTable runs the per-table checks for t and adds what it finds to r.
func checkTable(ctx context.Context, r *Report, source, target *pgx.Conn, t Table) error {
	src, err := loadRelation(ctx, source, t)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if src == nil {
		r.add(SideSource, t.Name, CheckExists, "table %s does not exist on the source; check the sharded table list", t.Name)
		return nil
	}
	if !slices.ContainsFunc(src.columns, func(c column) bool { return c.name == t.KeyColumn }) {
		r.add(SideSource, t.Name, CheckExists, "table %s has no column %s on the source; every sharded table must carry the shard key", t.Name, t.KeyColumn)
		return nil
	}

	var parts []partition
	if src.partitioned {
		if parts, err = loadPartitions(ctx, source, src.oid); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	if err := checkReplicaIdentity(ctx, r, source, t, t.Name, src.oid, ""); err != nil {
		return err
	}
	for _, p := range parts {
		if err := checkReplicaIdentity(ctx, r, source, t, fmt.Sprintf("%s (partition %s)", t.Name, p.qualified), p.oid, p.replident); err != nil {
			return err
		}
	}
	for _, c := range src.columns {
		switch {
		case c.identity != "":
			r.add(SideSource, t.Name, CheckSequence, "table %s: column %s is an identity column; per-group sequences would collide after a move: drop the identity and use keys unique across groups (e.g. uuid or derived from %s)",
				t.Name, c.name, t.KeyColumn)
		case strings.Contains(c.defaultExpr, "nextval("):
			r.add(SideSource, t.Name, CheckSequence, "table %s: column %s takes its default from a sequence (%s); per-group sequences would collide after a move: drop the default and use keys unique across groups (e.g. uuid or derived from %s)",
				t.Name, c.name, c.defaultExpr, t.KeyColumn)
		}
	}

	tgt, err := loadRelation(ctx, target, t)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if tgt == nil {
		r.MissingOnTarget = append(r.MissingOnTarget, t.Name)
		return nil
	}
	for _, msg := range schemaDiff(t.Name, src, tgt) {
		r.add(SideTarget, t.Name, CheckSchema, "%s", msg)
	}
	for _, p := range parts {
		var exists bool
		if err := target.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, p.qualified).Scan(&exists); err != nil {
			return fmt.Errorf("target: partition %s: %w", p.qualified, err)
		}
		if !exists {
			r.add(SideTarget, t.Name, CheckPartitions, "table %s: partition %s is missing on the target; create it: CREATE TABLE %s PARTITION OF %s %s",
				t.Name, p.qualified, p.qualified, p.parent, p.bound)
		}
	}
	return nil
}

// checkReplicaIdentity checks that relid's replica identity lets the subscription find a row
// by a key that contains t's key column. replident is pg_class.relreplident, read here when "".
func checkReplicaIdentity(ctx context.Context, r *Report, conn *pgx.Conn, t Table, what string, relid uint32, replident string) error {
	if replident == "" {
		if err := conn.QueryRow(ctx, `SELECT relreplident::text FROM pg_class WHERE oid = $1`, relid).Scan(&replident); err != nil {
			return fmt.Errorf("source: replica identity of %s: %w", what, err)
		}
	}
	switch replident {
	case "f":
		return nil
	case "n":
		r.add(SideSource, t.Name, CheckReplicaIdentity, "table %s: replica identity is NOTHING, so updates and deletes cannot be replicated; add a primary key containing %s (REPLICA IDENTITY DEFAULT) or set REPLICA IDENTITY FULL",
			what, t.KeyColumn)
		return nil
	}
	primary := replident == "d"
	name, cols, err := identityIndex(ctx, conn, relid, primary)
	if err != nil {
		return fmt.Errorf("source: replica identity of %s: %w", what, err)
	}
	switch {
	case cols == nil && primary:
		r.add(SideSource, t.Name, CheckReplicaIdentity, "table %s: no primary key, so replica identity DEFAULT identifies no row; add a primary key containing %s",
			what, t.KeyColumn)
	case cols == nil:
		r.add(SideSource, t.Name, CheckReplicaIdentity, "table %s: replica identity index is missing; set REPLICA IDENTITY USING INDEX on a unique index containing %s",
			what, t.KeyColumn)
	case slices.Contains(cols, t.KeyColumn):
	case primary:
		r.add(SideSource, t.Name, CheckReplicaIdentity, "table %s: replica identity (primary key (%s)) lacks %s; make the key part of the primary key",
			what, strings.Join(cols, ", "), t.KeyColumn)
	default:
		r.add(SideSource, t.Name, CheckReplicaIdentity, "table %s: replica identity (index %s (%s)) lacks %s; use an index that contains the key",
			what, name, strings.Join(cols, ", "), t.KeyColumn)
	}
	return nil
}

// schemaDiff describes every difference between the source's and the target's definition
// of table name: columns (name, type, nullability, order) and primary key.
func schemaDiff(name string, src, tgt *relation) []string {
	var out []string
	tgtCols := make(map[string]column, len(tgt.columns))
	for _, c := range tgt.columns {
		tgtCols[c.name] = c
	}
	srcNames := make(map[string]bool, len(src.columns))
	sameSet := true
	for _, s := range src.columns {
		srcNames[s.name] = true
		d, ok := tgtCols[s.name]
		switch {
		case !ok:
			sameSet = false
			out = append(out, fmt.Sprintf("table %s: column %s (%s) is missing on the target; add it with the same type and nullability", name, s.name, s.typ))
			continue
		case s.typ != d.typ:
			out = append(out, fmt.Sprintf("table %s: column %s is %s on the source but %s on the target; make the types identical", name, s.name, s.typ, d.typ))
		}
		if s.notNull != d.notNull {
			out = append(out, fmt.Sprintf("table %s: column %s is %s on the source but %s on the target; make the nullability identical",
				name, s.name, nullability(s.notNull), nullability(d.notNull)))
		}
	}
	for _, d := range tgt.columns {
		if !srcNames[d.name] {
			sameSet = false
			out = append(out, fmt.Sprintf("table %s: column %s (%s) exists only on the target; drop it there or add it on the source", name, d.name, d.typ))
		}
	}
	if sameSet && !slices.EqualFunc(src.columns, tgt.columns, func(a, b column) bool { return a.name == b.name }) {
		out = append(out, fmt.Sprintf("table %s: columns are in a different order (source: %s; target: %s); recreate the target table with the source's column order",
			name, columnNames(src.columns), columnNames(tgt.columns)))
	}
	if !slices.Equal(src.primaryKey, tgt.primaryKey) {
		out = append(out, fmt.Sprintf("table %s: primary key is %s on the source but %s on the target; make them identical",
			name, describeKey(src.primaryKey), describeKey(tgt.primaryKey)))
	}
	return out
}

func nullability(notNull bool) string {
	if notNull {
		return "NOT NULL"
	}
	return "nullable"
}

func columnNames(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

func describeKey(cols []string) string {
	if cols == nil {
		return "absent"
	}
	return "(" + strings.Join(cols, ", ") + ")"
}
