package shardmap

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// migrations returns the catalog's schema changes in order: the change at index i brings the
// catalog to version i+1. A change is applied once, in the Bootstrap transaction that finds
// the catalog below its version, and recorded in schema_version. Changes are only ever
// appended.
func (c *Catalog) migrations() []string {
	return []string{
		// 1: one row per epoch, kept forever.
		`CREATE TABLE ` + c.table("map_epochs") + ` (
			epoch      bigint      PRIMARY KEY CHECK (epoch > 0),
			created_at timestamptz NOT NULL DEFAULT now(),
			created_by text        NOT NULL,
			reason     text        NOT NULL,
			map        jsonb       NOT NULL
		)`,
		// 2: shard moves, one row per move, kept forever (the history). A shard has at most
		// one open move: running, or done but not yet cleaned up (a move being reversed
		// hands that role to its reverse move).
		`CREATE TABLE ` + c.table("moves") + ` (
			id          bigserial   PRIMARY KEY,
			shard       integer     NOT NULL CHECK (shard >= 0 AND shard < 16),
			source      text        NOT NULL,
			target      text        NOT NULL,
			phase       text        NOT NULL,
			reverse_of  bigint      REFERENCES ` + c.table("moves") + ` (id),
			created_at  timestamptz NOT NULL DEFAULT now(),
			created_by  text        NOT NULL,
			updated_at  timestamptz NOT NULL DEFAULT now(),
			detail      jsonb       NOT NULL DEFAULT '{}'
		);
		CREATE UNIQUE INDEX moves_one_open_per_shard ON ` + c.table("moves") + ` (shard)
			WHERE phase NOT IN ('aborted', 'cleaned', 'reversed', 'reversing')`,
		// 3: the two-phase-commit decision log (package proxy/twopc): one row per
		// cross-group transaction from before its first PREPARE TRANSACTION until every
		// branch is resolved, then deleted. The table holds only transactions in flight, so
		// it stays small and needs no index besides its key.
		`CREATE TABLE ` + c.table("transactions") + ` (
			gid        text        PRIMARY KEY CHECK (octet_length(gid) < 200),
			node       text        NOT NULL,
			database   text        NOT NULL,
			username   text        NOT NULL,
			groups     text[]      NOT NULL CHECK (cardinality(groups) > 0),
			state      text        NOT NULL CHECK (state IN ('prepare', 'commit', 'abort')),
			created_at timestamptz NOT NULL DEFAULT now(),
			updated_at timestamptz NOT NULL DEFAULT now()
		)`,
	}
}

// SchemaVersion is the catalog schema version this build creates and migrates to.
const SchemaVersion = 3

// Bootstrap makes the catalog ready and returns its current map. It creates the schema and
// tables when missing (and applies later schema versions), and when the catalog holds no
// epoch it stores m as epoch 1 with reason "bootstrap"; when it already holds one, the
// catalog's map wins and m is ignored. Several nodes may bootstrap the same catalog at once:
// all of it happens in one transaction under an advisory lock, so exactly one stores epoch 1
// and every one returns that map.
//
// DDL runs only when something is missing, so once the catalog exists a role without CREATE
// privileges can bootstrap against it. A catalog at a newer schema version than this build
// knows is used as it is (with a warning), so that old and new nodes coexist during an
// upgrade.
func (c *Catalog) Bootstrap(ctx context.Context, m *Map, by string) (*Map, error) {
	_, data, err := encodeMap(m, 1)
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: bootstrap: %w", err)
	}
	var (
		epoch   int64
		current []byte
	)
	created := false
	err = c.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", c.lockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if err := c.migrate(ctx, tx); err != nil {
			return err
		}
		cur, err := c.currentEpoch(ctx, tx)
		if err != nil {
			return fmt.Errorf("read epoch: %w", err)
		}
		if created = cur == 0; created {
			if err := c.insertEpoch(ctx, tx, 1, data, by, "bootstrap"); err != nil {
				return err
			}
		}
		epoch, current, err = c.loadRow(ctx, tx, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: bootstrap: %w", err)
	}
	if created {
		c.log.Info("bootstrapped shard map catalog with epoch 1", zap.String("by", by))
	}
	loaded, err := decodeMap(current, epoch)
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: bootstrap: %w", err)
	}
	return loaded, nil
}

// migrate creates the schema and the version table when missing and applies the migrations
// the catalog lacks, inside tx (which holds the catalog's advisory lock).
func (c *Catalog) migrate(ctx context.Context, tx pgx.Tx) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", c.schema).Scan(&exists); err != nil {
		return fmt.Errorf("look up schema: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{c.schema}.Sanitize()); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	versions := c.table("schema_version")
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versions).Scan(&exists); err != nil {
		return fmt.Errorf("look up schema_version: %w", err)
	}
	if !exists {
		_, err := tx.Exec(ctx, `CREATE TABLE `+versions+` (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`)
		if err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+versions).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	steps := c.migrations()
	if version > len(steps) {
		c.log.Warn("shard map catalog schema is newer than this build; using it as it is",
			zap.Int("catalog_version", version), zap.Int("build_version", len(steps)))
		return nil
	}
	for v := version + 1; v <= len(steps); v++ {
		if _, err := tx.Exec(ctx, steps[v-1]); err != nil {
			return fmt.Errorf("migrate catalog to version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+versions+" (version) VALUES ($1)", v); err != nil {
			return fmt.Errorf("record catalog version %d: %w", v, err)
		}
		c.log.Info("migrated shard map catalog", zap.Int("version", v))
	}
	return nil
}
