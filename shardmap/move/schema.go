package move

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/shardmap"
)

// The move schema, created on both writers of a move when missing.
const (
	// moveSchema holds what moves need inside the database.
	moveSchema = "shardwire_move"
	// markerTable receives one row per fenced move: (move_id, shard_key = the shard). It has
	// no customer_id column, so the router never takes it for a sharded table.
	markerTable = moveSchema + ".markers"
	// fenceFunction is the trigger function of every fence trigger. Its arguments are the
	// shard, the move and the reason.
	fenceFunction = moveSchema + ".fence"
	// schemaVersion is the comment on fenceFunction; a different one makes ensureSchema
	// replace the function.
	schemaVersion = "shardwire move schema v1"
	// schemaLock is the advisory lock that serializes the schema's creation.
	schemaLock = 0x73686172645f6d76 // "shard_mv"
)

// FenceHint is the HINT of the error a fence trigger raises.
const FenceHint = "the shardwire proxy retries such writes at the new owner; connect through the proxy"

// schemaDDL creates or updates the move schema. It runs in one transaction.
const schemaDDL = `
CREATE SCHEMA IF NOT EXISTS ` + moveSchema + `;
CREATE TABLE IF NOT EXISTS ` + markerTable + ` (
	move_id bigint NOT NULL,
	shard_key bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (shard_key, move_id));
CREATE OR REPLACE FUNCTION ` + fenceFunction + `() RETURNS trigger LANGUAGE plpgsql AS $fence$
BEGIN
	RAISE EXCEPTION USING
		ERRCODE = '` + shardmap.CodeShardFenced + `',
		MESSAGE = format('shardwire: shard %s is fenced on this server by move %s (%s): %s on %I.%I refused',
			TG_ARGV[0], TG_ARGV[1], TG_ARGV[2], TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
		HINT = '` + FenceHint + `';
END
$fence$;
COMMENT ON FUNCTION ` + fenceFunction + `() IS '` + schemaVersion + `';
`

// ensureSchema creates the move schema on conn when it is missing or older than this build.
func ensureSchema(ctx context.Context, conn *pgx.Conn) error {
	current, err := schemaCurrent(ctx, conn)
	if err != nil || current {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(schemaLock)); err != nil {
			return fmt.Errorf("move schema: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, schemaDDL); err != nil {
			return fmt.Errorf("move schema: create: %w", err)
		}
		return nil
	})
}

// schemaCurrent reports whether the marker table and this build's fence function exist.
func schemaCurrent(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL
		AND coalesce(obj_description(to_regprocedure($2), 'pg_proc'), '') = $3`,
		markerTable, fenceFunction+"()", schemaVersion).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("move schema: look up: %w", err)
	}
	return ok, nil
}
