package rebalance

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/shardmap"
	"github.com/shardwire/shardwire/shardmap/move"
)

// tablesQuery lists the ordinary and partitioned tables that are not partitions (a
// partition moves with its parent) outside the system schemas and shardwire's own, with
// their columns in order.
const tablesQuery = `SELECT n.nspname, c.relname, a.attname FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'shardwire', 'shardwire_move')
AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY n.nspname, c.relname, a.attnum`

// shardedTables resolves the map's rules against one database's schema and returns its
// sharded tables, schema-qualified, in name order.
func shardedTables(ctx context.Context, conn *pgx.Conn, rules []shardmap.TableRule) ([]move.Table, error) {
	rows, err := conn.Query(ctx, tablesQuery)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	columns := make(map[string][]string)
	schemaOf := make(map[string]string)
	for rows.Next() {
		var nsp, rel, col string
		if err := rows.Scan(&nsp, &rel, &col); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		name := strings.ToLower(rel)
		if prev, ok := schemaOf[name]; ok && prev != nsp {
			continue // the same name in a later schema: the router cannot tell them apart either
		}
		schemaOf[name] = nsp
		columns[name] = append(columns[name], strings.ToLower(col))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []move.Table
	for table, key := range shardmap.ResolveTables(rules, columns) {
		nsp, ok := schemaOf[table]
		if !ok {
			continue // a rule for a table that does not exist (yet)
		}
		out = append(out, move.Table{Name: nsp + "." + table, KeyColumn: key})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no sharded table in the database: nothing to move")
	}
	return out, nil
}

// shardRows counts one shard's rows over tables.
func shardRows(ctx context.Context, conn *pgx.Conn, tables []move.Table, shard shardmap.Shard) (int64, error) {
	var total int64
	for _, t := range tables {
		var n int64
		sql := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", t.Ident(), move.ShardExpr(pgx.Identifier{t.KeyColumn}.Sanitize()))
		if err := conn.QueryRow(ctx, sql, int(shard)).Scan(&n); err != nil {
			return 0, fmt.Errorf("count shard %d of %s: %w", shard, t.Name, err)
		}
		total += n
	}
	return total, nil
}

// ShardSizes measures each shard's bytes (the sum of its rows' sizes over every sharded
// table of every database) at its owner. It reads every row once: run it off-peak.
func (r *Runner) ShardSizes(ctx context.Context, m *shardmap.Map) ([shardmap.NumShards]int64, error) {
	var sizes [shardmap.NumShards]int64
	for gi, g := range m.Groups {
		owned := m.OwnedBy(gi)
		if owned.Empty() {
			continue
		}
		for _, db := range r.o.Databases {
			conn, err := r.o.Connector.Connect(ctx, g, db)
			if err != nil {
				return sizes, fmt.Errorf("measure shards: connect to database %s on group %s: %w", db, g.Name, err)
			}
			err = func() error {
				defer conn.Close(context.WithoutCancel(ctx))
				tables, err := shardedTables(ctx, conn, m.Rules)
				if err != nil {
					return err
				}
				for _, t := range tables {
					sql := fmt.Sprintf("SELECT %s, sum(pg_column_size(t.*))::bigint FROM %s t GROUP BY 1",
						move.ShardExpr("t."+pgx.Identifier{t.KeyColumn}.Sanitize()), t.Ident())
					rows, err := conn.Query(ctx, sql)
					if err != nil {
						return fmt.Errorf("measure %s: %w", t.Name, err)
					}
					for rows.Next() {
						var sh int
						var n int64
						if err := rows.Scan(&sh, &n); err != nil {
							rows.Close()
							return fmt.Errorf("measure %s: %w", t.Name, err)
						}
						if sh >= 0 && sh < shardmap.NumShards && owned.Has(shardmap.Shard(sh)) {
							sizes[sh] += n
						}
					}
					if err := rows.Err(); err != nil {
						return fmt.Errorf("measure %s: %w", t.Name, err)
					}
				}
				return nil
			}()
			if err != nil {
				return sizes, fmt.Errorf("measure shards on group %s: %w", g.Name, err)
			}
		}
	}
	return sizes, nil
}

// copySchema creates on the target the definitions of tables (schema-qualified) that exist
// only on the source, partitions included, with the standard tool: pg_dump --schema-only from
// the source, applied on a connection of its own to the target (the dump resets search_path).
// Constraints that reference tables the target lacks fail the copy, which says so.
func (s *session) copySchema(ctx context.Context, db string, tables []string) error {
	src := s.conns[db][0]
	var args []string
	for _, t := range tables {
		// pg_dump's --table does not take a partitioned table's partitions along (before
		// Postgres 16): name them too.
		rows, err := src.Query(ctx, `WITH RECURSIVE tree(oid) AS (
				SELECT $1::regclass::oid UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
			SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM tree JOIN pg_class c ON c.oid = tree.oid
			JOIN pg_namespace n ON n.oid = c.relnamespace`, t)
		if err != nil {
			return fmt.Errorf("list %s and its partitions: %w", t, err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list %s and its partitions: %w", t, err)
		}
		for _, n := range names {
			args = append(args, "--table="+n)
		}
	}
	dump := exec.CommandContext(ctx, "pg_dump", append([]string{"--schema-only", "--no-owner", "--no-privileges",
		"--dbname=" + s.r.o.Connector.ConnInfo(s.source, db)}, args...)...)
	var stderr strings.Builder
	dump.Stderr = &stderr
	out, err := dump.Output()
	if err != nil {
		return fmt.Errorf("pg_dump --schema-only of %s from group %s: %w: %s", strings.Join(tables, ", "), s.source.Name, err, strings.TrimSpace(stderr.String()))
	}
	var script strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, `\`) {
			continue // psql meta-commands (\restrict) are not SQL
		}
		script.WriteString(line)
		script.WriteByte('\n')
	}
	conn, err := s.r.o.Connector.Connect(ctx, s.target, db)
	if err != nil {
		return fmt.Errorf("connect to database %s on group %s: %w", db, s.target.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, script.String()); err != nil {
		return fmt.Errorf("create %s on group %s: %w", strings.Join(tables, ", "), s.target.Name, err)
	}
	s.r.log.Info("copied table definitions to the target", zap.Int64("move", s.mv.ID), zap.String("database", db),
		zap.String("target", s.target.Name), zap.Strings("tables", tables))
	return nil
}
