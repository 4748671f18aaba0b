package move

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/shardmap"
)

// DefaultDeleteBatch is DeleteShardRows's batch size when it is given none.
const DefaultDeleteBatch = 1000

// DeleteShardRows deletes every row of shard from tables on conn's database, in batches of
// at most batch rows (0 means DefaultDeleteBatch), each its own short transaction with
// session_replication_role = replica set locally, so that fence triggers (and foreign-key
// triggers) do not fire; the session's setting is untouched. progress, when set, is called
// after each batch with the rows deleted so far. It returns the rows deleted.
//
// Tables are emptied one after another, children before their parents when foreign keys
// among tables link them (otherwise in the order given), so that no batch leaves a child
// row without its parent. A partitioned table is emptied partition by partition. Batches
// walk the key in order, so each is an index range scan when the key leads an index.
//
// It refuses to start while a move publication or subscription of the shard exists in the
// database: the deletes would replicate, through the row filter, to the other side.
// Calling it again deletes what is left, nothing when nothing is.
func DeleteShardRows(ctx context.Context, conn *pgx.Conn, shard shardmap.Shard, tables []Table, batch int, progress func(deleted int64)) (int64, error) {
	if int(shard) >= shardmap.NumShards {
		return 0, fmt.Errorf("delete shard rows: shard %d out of range", shard)
	}
	if err := validateTables(tables); err != nil {
		return 0, fmt.Errorf("delete shard %d rows: %w", shard, err)
	}
	if batch <= 0 {
		batch = DefaultDeleteBatch
	}
	if err := checkNoReplication(ctx, conn, shard); err != nil {
		return 0, fmt.Errorf("delete shard %d rows: %w", shard, err)
	}
	order, err := deleteOrder(ctx, conn, tables)
	if err != nil {
		return 0, fmt.Errorf("delete shard %d rows: %w", shard, err)
	}
	var total int64
	for _, i := range order {
		t := tables[i]
		rows, err := conn.Query(ctx, "SELECT relid::regclass::text FROM pg_partition_tree($1::regclass) WHERE isleaf ORDER BY relid", t.Ident())
		if err != nil {
			return total, fmt.Errorf("delete shard %d rows: partitions of %s: %w", shard, t.Name, err)
		}
		leaves, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return total, fmt.Errorf("delete shard %d rows: partitions of %s: %w", shard, t.Name, err)
		}
		if len(leaves) == 0 { // a table outside any partition tree
			leaves = []string{t.Ident()}
		}
		for _, leaf := range leaves {
			if err := deleteLeaf(ctx, conn, shard, leaf, t.keyIdent(), batch, &total, progress); err != nil {
				return total, fmt.Errorf("delete shard %d rows of %s: %w", shard, leaf, err)
			}
		}
	}
	return total, nil
}

// deleteLeaf deletes shard's rows of one table without partitions, batch by batch in key
// order, adding them to *total.
func deleteLeaf(ctx context.Context, conn *pgx.Conn, shard shardmap.Shard, leaf, key string, batch int, total *int64, progress func(int64)) error {
	q := fmt.Sprintf(`WITH d AS (
			DELETE FROM %[1]s WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM %[1]s WHERE %[2]s >= $1::bigint AND %[3]s ORDER BY %[2]s LIMIT $2))
			RETURNING %[2]s)
		SELECT count(*), max(%[2]s)::bigint FROM d`, leaf, key, shardFilter(key, shard))
	from := int64(math.MinInt64)
	for {
		var n int64
		var last *int64
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('session_replication_role', 'replica', true)"); err != nil {
				return fmt.Errorf("session_replication_role: %w", err)
			}
			return tx.QueryRow(ctx, q, from, batch).Scan(&n, &last)
		})
		if err != nil {
			return err
		}
		*total += n
		if n > 0 && progress != nil {
			progress(*total)
		}
		if n < int64(batch) || last == nil {
			return nil
		}
		// Rows of the last key may remain: start the next batch at that key again.
		from = *last
	}
}

// checkNoReplication fails when a move publication or subscription of shard (or of an
// unknown shard) exists in conn's database.
func checkNoReplication(ctx context.Context, conn *pgx.Conn, shard shardmap.Shard) error {
	rows, err := conn.Query(ctx, `SELECT 'publication ' || pubname, coalesce(obj_description(oid, 'pg_publication'), '')
			FROM pg_publication WHERE starts_with(pubname, $1)
		UNION ALL
		SELECT 'subscription ' || subname, coalesce(shobj_description(oid, 'pg_subscription'), '')
			FROM pg_subscription
			WHERE starts_with(subname, $1) AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, NamePrefix)
	if err != nil {
		return fmt.Errorf("look for move replication: %w", err)
	}
	var blocking []string
	var what, desc string
	if _, err := pgx.ForEachRow(rows, []any{&what, &desc}, func() error {
		if _, s, ok := parseDescription(desc); !ok || s == int(shard) {
			blocking = append(blocking, what)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("look for move replication: %w", err)
	}
	if len(blocking) > 0 {
		return fmt.Errorf("the deletes would replicate through %s: drop the move's replication first (DropReplication)", strings.Join(blocking, ", "))
	}
	return nil
}

// deleteOrder returns the indexes of tables, children before parents.
func deleteOrder(ctx context.Context, conn *pgx.Conn, tables []Table) ([]int, error) {
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		var oid *uint32
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1)::oid", t.Ident()).Scan(&oid); err != nil {
			return nil, fmt.Errorf("look up %s: %w", t.Name, err)
		}
		if oid == nil {
			return nil, fmt.Errorf("table %s does not exist", t.Name)
		}
		oids[i] = *oid
	}
	rows, err := conn.Query(ctx, `SELECT conrelid::oid, confrelid::oid FROM pg_constraint
		WHERE contype = 'f' AND conparentid = 0 AND conrelid = ANY($1) AND confrelid = ANY($1)`, oids)
	if err != nil {
		return nil, fmt.Errorf("foreign keys: %w", err)
	}
	var edges [][2]int
	var child, parent uint32
	if _, err := pgx.ForEachRow(rows, []any{&child, &parent}, func() error {
		edges = append(edges, [2]int{slices.Index(oids, child), slices.Index(oids, parent)})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("foreign keys: %w", err)
	}
	return childrenFirst(len(tables), edges), nil
}

// childrenFirst orders n tables so that for each edge {child, parent} the child comes
// first, otherwise keeping the given order; tables on a cycle keep the given order.
func childrenFirst(n int, edges [][2]int) []int {
	done := make([]bool, n)
	order := make([]int, 0, n)
	for len(order) < n {
		next := -1
		for i := 0; i < n && next < 0; i++ {
			if done[i] {
				continue
			}
			blocked := false
			for _, e := range edges {
				if e[1] == i && e[0] != i && !done[e[0]] {
					blocked = true
					break
				}
			}
			if !blocked {
				next = i
			}
		}
		if next < 0 { // a cycle: take the first table left
			next = slices.Index(done, false)
		}
		done[next] = true
		order = append(order, next)
	}
	return order
}
