package shardmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// EpochChannel is the channel Publish notifies (NOTIFY shardwire_epoch, '<epoch>') in the
// transaction that adds an epoch. Listeners learn only that an epoch exists and read it from
// the catalog; the payload is the new epoch number in decimal.
const EpochChannel = "shardwire_epoch"

// DefaultSchema is the catalog's schema when OpenCatalog is given none.
const DefaultSchema = "shardwire"

// ErrEpochConflict means a Publish lost the compare-and-set: the catalog's current epoch was
// not the one the caller based its map on. Reload the map, redo the change, publish again.
var ErrEpochConflict = errors.New("shard map epoch conflict")

// ErrNoMap means the catalog exists but holds no epoch yet (Bootstrap was never run on it).
var ErrNoMap = errors.New("shard map catalog holds no epoch")

// ErrClosed is returned by a Catalog's methods after Close.
var ErrClosed = errors.New("shard map catalog is closed")

// EpochConflictError is the error of a Publish that lost the compare-and-set. It matches
// ErrEpochConflict with errors.Is.
type EpochConflictError struct {
	// Expected is the epoch the caller based its map on.
	Expected int64
	// Current is the catalog's highest epoch at the time of the attempt.
	Current int64
}

// Error names both epochs.
func (e *EpochConflictError) Error() string {
	return fmt.Sprintf("%v: the catalog is at epoch %d, not %d", ErrEpochConflict, e.Current, e.Expected)
}

// Unwrap returns ErrEpochConflict.
func (e *EpochConflictError) Unwrap() error { return ErrEpochConflict }

// EpochInfo describes one epoch of the catalog's history.
type EpochInfo struct {
	Epoch     int64     `json:"epoch"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Reason    string    `json:"reason"`
}

// Catalog is the shard map's home: a schema in a Postgres database holding every epoch of
// the map. It keeps one connection, opened by OpenCatalog and reopened on demand: a call that
// finds the connection broken (say, the catalog server restarted since the last call) runs
// again on a new one when that is safe — reads always, transactions when their BEGIN failed —
// so a restart between calls costs nothing, and one during a call costs that call.
//
// A Catalog is safe for concurrent use; its calls take turns on the connection, each waiting
// for its turn at most as long as its context allows.
type Catalog struct {
	cfg     *pgx.ConnConfig
	schema  string // as given, unquoted
	lockKey int64  // advisory lock serializing writers of this catalog
	log     *zap.Logger

	// turn holds one token while a call uses conn; it guards conn and closed.
	turn   chan struct{}
	conn   *pgx.Conn // nil when not connected
	closed bool
}

// OpenCatalog connects to the catalog database (dsn is a libpq connection string or URL) and
// returns a Catalog for the given schema (DefaultSchema when empty). It does not create
// anything: Bootstrap does. log may be nil.
func OpenCatalog(ctx context.Context, dsn, schema string, log *zap.Logger) (*Catalog, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: parse dsn: %w", err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "shardwire-catalog"
	}
	h := fnv.New64a()
	h.Write([]byte("shardwire shard map catalog " + schema))
	c := &Catalog{
		cfg:     cfg,
		schema:  schema,
		lockKey: int64(h.Sum64()),
		log:     log.With(zap.String("catalog_schema", schema)),
		turn:    make(chan struct{}, 1),
	}
	if err := c.read(ctx, func(*pgx.Conn) error { return nil }); err != nil {
		return nil, fmt.Errorf("shard map catalog: %w", err)
	}
	return c, nil
}

// Schema returns the catalog's schema name (unquoted).
func (c *Catalog) Schema() string { return c.schema }

// listenConn opens a new connection to the catalog database, apart from the Catalog's own
// and with the same settings, for a caller that keeps it (Watch's LISTEN on EpochChannel).
// Its application_name is the catalog's with "-listen" appended, so that operators tell the
// two apart in pg_stat_activity. The caller closes it.
func (c *Catalog) listenConn(ctx context.Context) (*pgx.Conn, error) {
	cfg := c.cfg.Copy()
	cfg.RuntimeParams["application_name"] += "-listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the catalog: %w", err)
	}
	return conn, nil
}

// Close closes the connection; later calls return ErrClosed. It waits for a call in progress.
func (c *Catalog) Close() {
	c.turn <- struct{}{}
	defer func() { <-c.turn }()
	c.closed = true
	c.drop()
}

// read runs fn, which must be idempotent, on the catalog's connection.
func (c *Catalog) read(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	return c.with(ctx, func(conn *pgx.Conn) (bool, error) { return true, fn(conn) })
}

// inTx runs fn in a transaction on the catalog's connection (committed when fn returns nil).
func (c *Catalog) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return c.with(ctx, func(conn *pgx.Conn) (bool, error) {
		began := false
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			began = true
			return fn(tx)
		})
		// A failed BEGIN left nothing behind on the server: safe to run again.
		return !began, err
	})
}

// with runs fn on the catalog's connection, connecting first if needed. A connection that a
// failure may have left unusable is dropped. When that connection was an old one (its server
// may have restarted since its last use) and fn reports that running it again is safe, fn
// runs once more on a fresh connection, so that a catalog restart between two calls costs no
// failed call.
func (c *Catalog) with(ctx context.Context, fn func(conn *pgx.Conn) (again bool, err error)) error {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the catalog connection: %w", ctx.Err())
	}
	defer func() { <-c.turn }()
	for retried := false; ; retried = true {
		if c.closed {
			return ErrClosed
		}
		fresh := false
		if c.conn != nil && c.conn.IsClosed() {
			c.drop()
		}
		if c.conn == nil {
			conn, err := pgx.ConnectConfig(ctx, c.cfg)
			if err != nil {
				return fmt.Errorf("connect to the catalog: %w", err)
			}
			c.conn, fresh = conn, true
		}
		again, err := fn(c.conn)
		if err == nil || reusable(c.conn, err) {
			return err
		}
		c.drop()
		if fresh || retried || !again || ctx.Err() != nil {
			return err
		}
		c.log.Debug("catalog connection broken; retrying on a new one", zap.Error(err))
	}
}

// drop closes and forgets the connection. The caller holds the turn.
func (c *Catalog) drop() {
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.conn.Close(ctx)
	c.conn = nil
}

// reusable reports whether conn is still fit for the next call after fn failed with err: only
// when the server answered with an ordinary error (the transaction helpers have rolled back).
// Anything else — network failures, timeouts, a FATAL from a server shutting down — drops it.
func reusable(conn *pgx.Conn, err error) bool {
	if conn.IsClosed() {
		return false
	}
	var conflict *EpochConflictError
	if errors.As(err, &conflict) || errors.Is(err, ErrNoMap) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Severity != "FATAL" && pgErr.Severity != "PANIC"
}

// table returns the quoted, schema-qualified name of a catalog table.
func (c *Catalog) table(name string) string { return pgx.Identifier{c.schema, name}.Sanitize() }

// querier is what the read helpers need: a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Epoch returns the catalog's highest epoch, 0 when it holds none. It is one cheap query.
func (c *Catalog) Epoch(ctx context.Context) (int64, error) {
	var epoch int64
	err := c.read(ctx, func(conn *pgx.Conn) error {
		var err error
		epoch, err = c.currentEpoch(ctx, conn)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("shard map catalog: epoch: %w", err)
	}
	return epoch, nil
}

func (c *Catalog) currentEpoch(ctx context.Context, q querier) (int64, error) {
	var epoch int64
	err := q.QueryRow(ctx, "SELECT coalesce(max(epoch), 0) FROM "+c.table("map_epochs")).Scan(&epoch)
	return epoch, err
}

// Load returns the map of the highest epoch, validated. Its Tables are nil. It returns an
// error matching ErrNoMap when the catalog holds no epoch.
func (c *Catalog) Load(ctx context.Context) (*Map, error) {
	m, err := c.load(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: load: %w", err)
	}
	return m, nil
}

// LoadEpoch returns the map of one past or current epoch, validated, with nil Tables. It
// returns an error matching ErrNoMap when the catalog has no such epoch.
func (c *Catalog) LoadEpoch(ctx context.Context, epoch int64) (*Map, error) {
	if epoch <= 0 {
		return nil, fmt.Errorf("shard map catalog: load epoch %d: epochs start at 1", epoch)
	}
	m, err := c.load(ctx, epoch)
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: load epoch %d: %w", epoch, err)
	}
	return m, nil
}

// load reads and decodes one epoch's map, the highest when epoch is 0.
func (c *Catalog) load(ctx context.Context, epoch int64) (*Map, error) {
	var data []byte
	err := c.read(ctx, func(conn *pgx.Conn) error {
		var err error
		epoch, data, err = c.loadRow(ctx, conn, epoch)
		return err
	})
	if err != nil {
		return nil, err
	}
	return decodeMap(data, epoch)
}

// loadRow reads one epoch's row, the highest when epoch is 0, and returns its epoch and the
// map's JSON.
func (c *Catalog) loadRow(ctx context.Context, q querier, epoch int64) (int64, []byte, error) {
	sql := "SELECT epoch, map FROM " + c.table("map_epochs") + " ORDER BY epoch DESC LIMIT 1"
	args := []any{}
	if epoch > 0 {
		sql = "SELECT epoch, map FROM " + c.table("map_epochs") + " WHERE epoch = $1"
		args = append(args, epoch)
	}
	var data []byte
	err := q.QueryRow(ctx, sql, args...).Scan(&epoch, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, ErrNoMap
	}
	return epoch, data, err
}

// Publish adds next as epoch prev+1 if, and only if, the catalog's highest epoch is prev (a
// compare-and-set), and notifies EpochChannel in the same transaction. It returns the map as
// stored — next with Epoch prev+1 and nil Tables, what Load now returns. When the catalog has
// moved on, it returns an *EpochConflictError (matching ErrEpochConflict) and stores nothing.
//
// Any other error may leave the outcome unknown (the commit may have happened). Publishing
// again with the same prev is safe: it either succeeds or reports the conflict, after which
// the caller compares the catalog's map with its own.
func (c *Catalog) Publish(ctx context.Context, prev int64, next *Map, by, reason string) (*Map, error) {
	if prev < 0 {
		return nil, fmt.Errorf("shard map catalog: publish: previous epoch %d is negative", prev)
	}
	stored, data, err := encodeMap(next, prev+1)
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: publish epoch %d: %w", prev+1, err)
	}
	err = c.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", c.lockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		cur, err := c.currentEpoch(ctx, tx)
		if err != nil {
			return fmt.Errorf("read epoch: %w", err)
		}
		if cur != prev {
			return &EpochConflictError{Expected: prev, Current: cur}
		}
		return c.insertEpoch(ctx, tx, prev+1, data, by, reason)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		// Someone inserted the epoch without taking the lock; the compare-and-set still holds.
		err = &EpochConflictError{Expected: prev, Current: prev + 1}
	}
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: publish epoch %d by %q: %w", prev+1, by, err)
	}
	c.log.Info("published shard map epoch", zap.Int64("epoch", prev+1), zap.String("by", by), zap.String("reason", reason))
	return stored, nil
}

// insertEpoch inserts one epoch row and notifies EpochChannel, inside tx.
func (c *Catalog) insertEpoch(ctx context.Context, tx pgx.Tx, epoch int64, data []byte, by, reason string) error {
	_, err := tx.Exec(ctx,
		"INSERT INTO "+c.table("map_epochs")+" (epoch, created_by, reason, map) VALUES ($1, $2, $3, $4::jsonb)",
		epoch, by, reason, string(data))
	if err != nil {
		return fmt.Errorf("insert epoch %d: %w", epoch, err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", EpochChannel, fmt.Sprint(epoch)); err != nil {
		return fmt.Errorf("notify epoch %d: %w", epoch, err)
	}
	return nil
}

// History returns the catalog's epochs, newest first, at most limit of them (all when limit
// is 0 or less).
func (c *Catalog) History(ctx context.Context, limit int) ([]EpochInfo, error) {
	sql := "SELECT epoch, created_at, created_by, reason FROM " + c.table("map_epochs") + " ORDER BY epoch DESC"
	args := []any{}
	if limit > 0 {
		sql += " LIMIT $1"
		args = append(args, limit)
	}
	var out []EpochInfo
	err := c.read(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (EpochInfo, error) {
			var e EpochInfo
			err := row.Scan(&e.Epoch, &e.CreatedAt, &e.CreatedBy, &e.Reason)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shard map catalog: history: %w", err)
	}
	return out, nil
}

// encodeMap returns the map as stored for an epoch (a copy with that Epoch and no Tables) and
// its JSON, after validating it.
func encodeMap(m *Map, epoch int64) (*Map, []byte, error) {
	if m == nil {
		return nil, nil, errors.New("no map")
	}
	stored := *m
	stored.Epoch = epoch
	// What the loader derives from the databases' schema is never stored.
	stored.Tables, stored.KeyIndex, stored.ReadOnlyFunctions, stored.ImmutableFunctions = nil, nil, nil, nil
	if err := stored.Validate(); err != nil {
		return nil, nil, err
	}
	data, err := json.Marshal(&stored)
	if err != nil {
		return nil, nil, fmt.Errorf("encode map: %w", err)
	}
	return &stored, data, nil
}

// decodeMap reads a stored map. The epoch column is authoritative over the JSON's epoch (an
// operator may have copied an old row's map by hand).
func decodeMap(data []byte, epoch int64) (*Map, error) {
	var m Map
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode map of epoch %d: %w", epoch, err)
	}
	m.Epoch = epoch
	m.Tables = nil
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
