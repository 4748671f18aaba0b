package move

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Leftovers lists the replication objects of moves found through conn, one per string,
// sorted: "publication NAME" and "subscription NAME" of conn's database whose names start
// with NamePrefix, and "slot NAME (database DB)" for every replication slot of the server
// (slots are per server) whose name starts with NamePrefix or that is a table-copy slot
// (pg_<subscription>_sync_<table>_<system id>; in a shardwire database only move
// subscriptions make them). An empty list means no move left anything there.
func Leftovers(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT what FROM (
			SELECT 'publication ' || pubname AS what FROM pg_publication WHERE starts_with(pubname, $1)
			UNION ALL
			SELECT 'subscription ' || subname FROM pg_subscription
			WHERE starts_with(subname, $1) AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			UNION ALL
			SELECT 'slot ' || slot_name || ' (database ' || coalesce(database, '-') || ')' FROM pg_replication_slots
			WHERE starts_with(slot_name, $1) OR slot_name ~ '^pg_[0-9]+_sync_[0-9]+_[0-9]+$') o
		ORDER BY what`, NamePrefix)
	if err != nil {
		return nil, fmt.Errorf("leftovers: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("leftovers: %w", err)
	}
	return out, nil
}
