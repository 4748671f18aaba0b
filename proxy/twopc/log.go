package twopc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// DefaultSchema is the catalog schema OpenLog uses when given none (the shard map
// catalog's default).
const DefaultSchema = "shardwire"

// State is where a transaction stands in the decision log.
type State string

// The states of a record. A record starts in StatePrepare and changes at most once, to
// StateCommit or StateAbort (Decide); that change is the transaction's outcome.
const (
	StatePrepare State = "prepare"
	StateCommit  State = "commit"
	StateAbort   State = "abort"
)

// ErrDecided means a Decide found the transaction already decided the other way. The error
// is a *DecidedError naming the decision.
var ErrDecided = errors.New("two-phase transaction already decided")

// ErrNotFound means the log holds no record of the transaction: it was never begun, or it
// was resolved and forgotten.
var ErrNotFound = errors.New("two-phase transaction not in the decision log")

// DecidedError is the error of a Decide that lost: the record is in State, not the state
// asked for. It matches ErrDecided with errors.Is.
type DecidedError struct {
	GID   string
	State State
}

// Error names the transaction and its decision.
func (e *DecidedError) Error() string {
	return fmt.Sprintf("%v: %s is in state %q", ErrDecided, e.GID, e.State)
}

// Unwrap returns ErrDecided.
func (e *DecidedError) Unwrap() error { return ErrDecided }

// Record is one cross-group transaction in the decision log.
type Record struct {
	GID      string    `json:"gid"`      // global identifier of its prepared branches (NewGID)
	Node     string    `json:"node"`     // the proxy node coordinating it
	Database string    `json:"database"` // the database its branches were prepared in
	User     string    `json:"user"`     // the role owning its branches
	Groups   []string  `json:"groups"`   // the shard groups it has (or may have) prepared a branch on
	State    State     `json:"state"`
	Created  time.Time `json:"created"` // catalog time of Begin
	Updated  time.Time `json:"updated"` // catalog time of the last change (Begin or the decision)
}

// Log is the decision log: the transactions table of the shard map catalog, reached through
// a connection pool. It is safe for concurrent use.
type Log struct {
	pool   *pgxpool.Pool
	schema string // unquoted
	table  string // quoted, schema-qualified transactions table
	log    *zap.Logger
}

// OpenLog connects to the catalog database (dsn is a libpq connection string or URL) with at
// most maxConns connections (0: the pool's default, the larger of 4 and the CPUs) and
// returns the decision log in schema (DefaultSchema when empty). Every two-phase commit of
// the node writes twice through them. The table must exist: open the log after the
// catalog's Bootstrap. log may be nil.
func OpenLog(ctx context.Context, dsn, schema string, maxConns int, log *zap.Logger) (*Log, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("two-phase decision log: parse dsn: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "shardwire-twopc"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("two-phase decision log: %w", err)
	}
	l := &Log{
		pool:   pool,
		schema: schema,
		table:  pgx.Identifier{schema, "transactions"}.Sanitize(),
		log:    log.With(zap.String("catalog_schema", schema)),
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", l.table).Scan(&exists); err != nil {
		pool.Close()
		return nil, fmt.Errorf("two-phase decision log: look up %s: %w", l.table, err)
	}
	if !exists {
		pool.Close()
		return nil, fmt.Errorf("two-phase decision log: the catalog has no table %s: bootstrap it with a build at catalog schema version 3 or later", l.table)
	}
	return l, nil
}

// Close closes the log's connections, waiting for calls in progress.
func (l *Log) Close() { l.pool.Close() }

// Schema returns the catalog schema of the log (unquoted).
func (l *Log) Schema() string { return l.schema }

// connConfig returns a copy of the settings of the log's connections, for a dedicated
// connection to the catalog.
func (l *Log) connConfig() *pgx.ConnConfig { return l.pool.Config().ConnConfig.Copy() }

// Begin records a new transaction in state "prepare", before the first PREPARE TRANSACTION
// of it runs. r.State, r.Created and r.Updated are ignored. It fails when r.GID does not
// start with GIDPrefix, is too long, is already recorded, or r names no group.
func (l *Log) Begin(ctx context.Context, r Record) error {
	switch {
	case !IsGID(r.GID):
		return fmt.Errorf("two-phase decision log: begin %q: identifier lacks the prefix %q", r.GID, GIDPrefix)
	case len(r.GID) > MaxGIDLen:
		return fmt.Errorf("two-phase decision log: begin %q: identifier longer than %d bytes", r.GID, MaxGIDLen)
	case len(r.Groups) == 0:
		return fmt.Errorf("two-phase decision log: begin %q: no groups", r.GID)
	}
	_, err := l.pool.Exec(ctx,
		"INSERT INTO "+l.table+" (gid, node, database, username, groups, state) VALUES ($1, $2, $3, $4, $5, $6)",
		r.GID, r.Node, r.Database, r.User, r.Groups, string(StatePrepare))
	if err != nil {
		return fmt.Errorf("two-phase decision log: begin %q: %w", r.GID, err)
	}
	return nil
}

// Decide records the outcome of a transaction in state "prepare": commit or abort, by
// compare-and-set, so that of a coordinator and the recovery deciding at once exactly one
// wins. Deciding commit is the transaction's commit point, allowed only once every PREPARE
// TRANSACTION of it has succeeded (the recovery relies on it: a committed transaction's
// branches are all prepared by the time of its decision). When the record already holds
// the asked decision, Decide succeeds (it is idempotent); when it holds the other one, it
// returns a *DecidedError (matching ErrDecided); when there is no record, an error matching
// ErrNotFound. Any other error leaves the outcome unknown: decide again, or leave it to the
// recovery.
func (l *Log) Decide(ctx context.Context, gid string, commit bool) error {
	want := StateAbort
	if commit {
		want = StateCommit
	}
	tag, err := l.pool.Exec(ctx,
		"UPDATE "+l.table+" SET state = $2, updated_at = now() WHERE gid = $1 AND state = $3",
		gid, string(want), string(StatePrepare))
	if err != nil {
		return fmt.Errorf("two-phase decision log: decide %s for %q: %w", want, gid, err)
	}
	if tag.RowsAffected() == 1 {
		l.log.Debug("two-phase transaction decided", zap.String("gid", gid), zap.String("state", string(want)))
		return nil
	}
	var state string
	err = l.pool.QueryRow(ctx, "SELECT state FROM "+l.table+" WHERE gid = $1", gid).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("two-phase decision log: decide %s for %q: %w", want, gid, err)
	}
	if State(state) == want {
		return nil
	}
	l.log.Info("two-phase decision lost: the transaction was decided the other way",
		zap.String("gid", gid), zap.String("asked", string(want)), zap.String("state", state))
	return fmt.Errorf("two-phase decision log: decide %s: %w", want, &DecidedError{GID: gid, State: State(state)})
}

// Forget deletes the record of a transaction whose branches are all resolved (committed or
// rolled back on every group). Forgetting a transaction that is not recorded does nothing.
func (l *Log) Forget(ctx context.Context, gid string) error {
	if _, err := l.pool.Exec(ctx, "DELETE FROM "+l.table+" WHERE gid = $1", gid); err != nil {
		return fmt.Errorf("two-phase decision log: forget %q: %w", gid, err)
	}
	return nil
}

// Get returns the record of one transaction, or an error matching ErrNotFound.
func (l *Log) Get(ctx context.Context, gid string) (Record, error) {
	rows, err := l.pool.Query(ctx, "SELECT "+recordColumns+" FROM "+l.table+" WHERE gid = $1", gid)
	if err != nil {
		return Record{}, fmt.Errorf("two-phase decision log: get %q: %w", gid, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRecord)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("two-phase decision log: get %q: %w", gid, err)
	}
	return r, nil
}

// List returns every record, oldest first.
func (l *Log) List(ctx context.Context) ([]Record, error) {
	records, _, err := l.list(ctx)
	return records, err
}

// Now returns the catalog's clock, the one records are aged by.
func (l *Log) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := l.pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("two-phase decision log: read the catalog's clock: %w", err)
	}
	return now, nil
}

// list returns every record, oldest first, and the catalog's clock read just before (to
// age records without trusting this machine's clock; a record changed after that reading
// looks younger than it is, never older).
func (l *Log) list(ctx context.Context) ([]Record, time.Time, error) {
	var now time.Time
	if err := l.pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return nil, time.Time{}, fmt.Errorf("two-phase decision log: list: %w", err)
	}
	rows, err := l.pool.Query(ctx, "SELECT "+recordColumns+" FROM "+l.table+" ORDER BY created_at, gid")
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("two-phase decision log: list: %w", err)
	}
	records, err := pgx.CollectRows(rows, scanRecord)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("two-phase decision log: list: %w", err)
	}
	return records, now, nil
}

// recordColumns are the columns scanRecord reads, in its order.
const recordColumns = "gid, node, database, username, groups, state, created_at, updated_at"

// scanRecord reads one row of recordColumns.
func scanRecord(row pgx.CollectableRow) (Record, error) {
	var (
		r     Record
		state string
	)
	err := row.Scan(&r.GID, &r.Node, &r.Database, &r.User, &r.Groups, &state, &r.Created, &r.Updated)
	r.State = State(state)
	return r, err
}
