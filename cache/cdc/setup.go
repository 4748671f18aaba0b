package cdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE duplicate_object: a concurrent CREATE PUBLICATION or CREATE_REPLICATION_SLOT won.
const sqlstateDuplicateObject = "42710"

// slotInfo is what the feed needs of an existing slot.
type slotInfo struct {
	confirmed pglogrepl.LSN // confirmed_flush_lsn: every commit before it was bumped
}

// syncPublication makes the publication on conn's database publish exactly the cacheable
// tables that exist (partitioned ones through their root, with every kind of change),
// creating it or changing it as needed. A publication FOR ALL TABLES (made by hand) is
// left as it is: it publishes more than needed, never less. Publishing only the cached
// tables keeps the feed from affecting others: Postgres refuses UPDATE and DELETE on a
// published table without a replica identity.
func syncPublication(ctx context.Context, conn *pgconn.PgConn, name string, cacheable func(string) bool) error {
	rows, err := queryRows(ctx, conn, `SELECT puballtables, pubinsert AND pubupdate AND pubdelete AND pubtruncate AND pubviaroot
		FROM pg_publication WHERE pubname = $1`, name)
	if err != nil {
		return fmt.Errorf("look up publication %s: %w", name, err)
	}
	want, err := cacheableTables(ctx, conn, cacheable)
	if err != nil {
		return err
	}
	// name is validated (lower-case letters, digits, underscores), so it needs no quoting;
	// table names come quoted from quote_ident.
	const options = " WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)"
	if len(rows) == 0 {
		sql := "CREATE PUBLICATION " + name
		if len(want) > 0 {
			sql += " FOR TABLE " + strings.Join(want, ", ")
		}
		if _, err := conn.Exec(ctx, sql+options).ReadAll(); err != nil && !isSQLState(err, sqlstateDuplicateObject) {
			return fmt.Errorf("create publication %s: %w", name, err)
		}
		return nil
	}
	if rows[0][0] == "t" {
		return nil
	}
	if rows[0][1] != "t" {
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+name+" SET"+strings.TrimPrefix(options, " WITH")).ReadAll(); err != nil {
			return fmt.Errorf("alter publication %s options: %w", name, err)
		}
	}
	have, err := queryRows(ctx, conn, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
		JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = $1 ORDER BY 1`, name)
	if err != nil {
		return fmt.Errorf("tables of publication %s: %w", name, err)
	}
	var current []string
	for _, r := range have {
		current = append(current, r[0])
	}
	if slices.Equal(current, want) {
		return nil
	}
	sql := "ALTER PUBLICATION " + name + " SET TABLE " + strings.Join(want, ", ")
	if len(want) == 0 {
		sql = "ALTER PUBLICATION " + name + " DROP TABLE " + strings.Join(current, ", ")
	}
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("set the tables of publication %s: %w", name, err)
	}
	return nil
}

// cacheableTables returns the schema-qualified, quoted names of the cacheable root tables
// of conn's database, sorted.
func cacheableTables(ctx context.Context, conn *pgconn.PgConn, cacheable func(string) bool) ([]string, error) {
	tables, err := rootTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range tables {
		if cacheable(t.name) {
			out = append(out, t.quoted)
		}
	}
	return out, nil
}

// rootTable is an ordinary or partitioned table that is not a partition.
type rootTable struct {
	quoted string // schema-qualified, quoted for SQL
	name   string // lower case, without schema: as the cache names it
}

// rootTables returns the root tables of conn's database outside the system schemas (a
// partition's changes are published under its root's name), sorted by quoted name.
func rootTables(ctx context.Context, conn *pgconn.PgConn) ([]rootTable, error) {
	rows, err := queryRows(ctx, conn, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), lower(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := make([]rootTable, len(rows))
	for i, r := range rows {
		out[i] = rootTable{quoted: r[0], name: r[1]}
	}
	return out, nil
}

// lookupSlot returns the slot name, or nil when it does not exist. A slot of that name
// that the feed cannot use (another database, another plugin, physical) is an error.
func lookupSlot(ctx context.Context, conn *pgconn.PgConn, name string) (*slotInfo, error) {
	rows, err := queryRows(ctx, conn, `SELECT slot_type, coalesce(plugin, ''), coalesce(database, ''),
		current_database(), coalesce(confirmed_flush_lsn::text, '')
		FROM pg_replication_slots WHERE slot_name = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("look up slot %s: %w", name, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	r := rows[0]
	typ, plugin, db, current, confirmed := r[0], r[1], r[2], r[3], r[4]
	if typ != "logical" || plugin != "pgoutput" || db != current {
		return nil, fmt.Errorf("slot %s exists but is a %s slot with plugin %q on database %q; want a pgoutput slot on %q",
			name, typ, plugin, db, current)
	}
	lsn, err := pglogrepl.ParseLSN(confirmed)
	if err != nil {
		return nil, fmt.Errorf("slot %s: confirmed_flush_lsn %q: %w", name, confirmed, err)
	}
	return &slotInfo{confirmed: lsn}, nil
}

// createSlot creates the permanent pgoutput slot name on the replication connection and
// returns its consistent point: changes committed after it will be streamed. created is
// false when a concurrent creator won; then the caller looks the slot up again.
func createSlot(ctx context.Context, repl *pgconn.PgConn, name string) (lsn pglogrepl.LSN, created bool, err error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if isSQLState(err, sqlstateDuplicateObject) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("create slot %s: %w", name, err)
	}
	lsn, err = pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, false, fmt.Errorf("create slot %s: consistent point %q: %w", name, res.ConsistentPoint, err)
	}
	return lsn, true, nil
}

// dropSlot drops the slot name; used when a slot was created but the writes before it
// could not be accounted for, so that the next leader creates it again.
func dropSlot(ctx context.Context, repl *pgconn.PgConn, name string) error {
	if err := pglogrepl.DropReplicationSlot(ctx, repl, name, pglogrepl.DropReplicationSlotOptions{}); err != nil {
		return fmt.Errorf("drop slot %s: %w", name, err)
	}
	return nil
}

// listTables returns the lower-case names of the root tables of conn's database, each once.
func listTables(ctx context.Context, conn *pgconn.PgConn) ([]string, error) {
	tables, err := rootTables(ctx, conn)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range tables {
		if !slices.Contains(names, t.name) {
			names = append(names, t.name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// queryRows runs sql with text parameters and returns every row's columns as text (NULL as
// "").
func queryRows(ctx context.Context, conn *pgconn.PgConn, sql string, args ...string) ([][]string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := conn.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	out := make([][]string, len(res.Rows))
	for i, row := range res.Rows {
		out[i] = make([]string, len(row))
		for j, v := range row {
			out[i][j] = string(v)
		}
	}
	return out, nil
}

// queryValue returns the first column of the first row of sql.
func queryValue(ctx context.Context, conn *pgconn.PgConn, sql string, args ...string) (string, error) {
	rows, err := queryRows(ctx, conn, sql, args...)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return "", errors.New("no rows")
	}
	return rows[0][0], nil
}

// isSQLState reports whether err is a Postgres error with SQLSTATE code.
func isSQLState(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}
