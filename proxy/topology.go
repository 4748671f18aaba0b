package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/health"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// topology is what the node knows of where data lives: the shard map (from the catalog, or the
// configuration when there is none), the tables each database shards, and the endpoints'
// health. Sessions read it on every request; it changes rarely.
type topology struct {
	log    *zap.Logger
	store  *shardmap.Store
	router *router.Router
	// scatterSQL keeps the per-group rewrites of scatters, parsed and deparsed once each.
	scatterSQL *router.ScatterCache
	health     *health.Checker

	mu sync.Mutex // serializes schema loads
	// dbMaps holds, per backend database, a *dbMap: the current map with Tables resolved. It
	// is rebuilt when the epoch changes or DDL ran through the proxy.
	dbMaps sync.Map
	// ddlAt holds, per group name, the time.Time the last DDL through this node committed
	// there: replicas serve reads only once they replayed it (ddlLSN).
	ddlAt sync.Map
}

// noteDDL records that a DDL committed on group (now).
func (t *topology) noteDDL(group string) { t.ddlAt.Store(group, time.Now()) }

// ddlLSN returns the WAL position a replica of group must have replayed to have every DDL
// this node ran there, and ok=false while no health check since the last one has told it
// (then only the writer has it for sure).
func (t *topology) ddlLSN(group string) (lsn uint64, ok bool) {
	v, found := t.ddlAt.Load(group)
	if !found {
		return 0, true
	}
	return t.health.WriterLSNAfter(group, v.(time.Time))
}

// dbMap is the shard map as one database sees it.
type dbMap struct {
	m      *shardmap.Map
	epoch  int64
	loaded bool        // Tables came from the database's schema (else: named rules only)
	stale  atomic.Bool // a DDL ran since: reload the schema on next use
}

func newTopology(cfg *config.Config, log *zap.Logger, checker *health.Checker) (*topology, error) {
	m, err := shardmap.FromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("shard map from configuration: %w", err)
	}
	t := &topology{
		log:        log,
		store:      shardmap.NewStore(m),
		router:     router.New(router.Config{}),
		scatterSQL: router.NewScatterCache(router.DefaultCacheSize),
		health:     checker,
	}
	checker.SetGroups(m.Groups)
	t.store.Subscribe(func(m *shardmap.Map) {
		checker.SetGroups(m.Groups)
		log.Info("shard map loaded", zap.Int64("epoch", m.Epoch), zap.Int("groups", len(m.Groups)))
	})
	return t, nil
}

// mapFor returns the current map with Tables resolved for a backend database. The schema is
// read lazily with load (on the default group's writer) the first time, after the epoch
// changed, and after DDL through the proxy; until it can be read, only named rules apply.
// The common case takes no lock.
func (t *topology) mapFor(db string, load func(context.Context) (schemaInfo, error)) *shardmap.Map {
	cur := t.store.Current()
	if v, ok := t.dbMaps.Load(db); ok {
		if dm := v.(*dbMap); dm.epoch == cur.Epoch && dm.loaded && !dm.stale.Load() {
			return dm.m
		}
	}
	t.mu.Lock() // one schema load at a time
	defer t.mu.Unlock()
	if v, ok := t.dbMaps.Load(db); ok {
		if dm := v.(*dbMap); dm.epoch == cur.Epoch && dm.loaded && !dm.stale.Load() {
			return dm.m // loaded while this one waited
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	info, err := load(ctx)
	cancel()
	m := *cur
	m.Tables = shardmap.ResolveTables(cur.Rules, info.columns)
	m.KeyIndex = shardmap.KeyIndexes(m.Tables, info.columns)
	m.CopyKeyIndex = shardmap.KeyIndexes(m.Tables, info.copyColumns)
	m.ReadOnlyFunctions = info.readOnlyFunctions
	m.ImmutableFunctions = info.immutableFunctions
	if err != nil {
		t.log.Warn("could not read the schema to find sharded tables; using named rules only", zap.String("database", db), zap.Error(err))
	}
	t.dbMaps.Store(db, &dbMap{m: &m, epoch: cur.Epoch, loaded: err == nil})
	return &m
}

// schemaChanged marks a database's resolved tables stale (DDL ran through the proxy).
func (t *topology) schemaChanged(db string) {
	if v, ok := t.dbMaps.Load(db); ok {
		v.(*dbMap).stale.Store(true)
	}
}

// schemaQuery lists the user tables' columns (partitions included: they are sharded like
// their parent because they carry its columns).
const schemaQuery = `SELECT c.relname, a.attname, a.attgenerated <> '' FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY c.relname, a.attnum`

// readOnlyFunctionsQuery lists the database's own functions whose every overload is STABLE or
// IMMUTABLE (built-ins are the router's business).
const readOnlyFunctionsQuery = `SELECT lower(p.proname) FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind = 'f'
GROUP BY 1 HAVING bool_and(p.provolatile <> 'v')`

// immutableFunctionsQuery lists the database's own functions whose every overload is
// IMMUTABLE: the only ones a cached statement may call.
const immutableFunctionsQuery = `SELECT lower(p.proname) FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'a')
GROUP BY 1 HAVING bool_and(p.provolatile = 'i')`

// schemaInfo is what routing needs of a database's schema.
type schemaInfo struct {
	columns            map[string][]string // table → its columns in order, lower case
	copyColumns        map[string][]string // the same without generated columns (what COPY reads)
	readOnlyFunctions  map[string]bool
	immutableFunctions map[string]bool
}

// readSchema reads a database's schema on a backend the caller owns.
func readSchema(sc *pool.Conn, budget time.Duration) (schemaInfo, error) {
	rows, err := queryText(sc, schemaQuery, budget)
	if err != nil {
		return schemaInfo{}, err
	}
	info := schemaInfo{columns: make(map[string][]string), copyColumns: make(map[string][]string), readOnlyFunctions: make(map[string]bool)}
	for _, r := range rows {
		if len(r) != 3 {
			continue
		}
		table, column := strings.ToLower(r[0]), strings.ToLower(r[1])
		info.columns[table] = append(info.columns[table], column)
		if r[2] != "t" {
			info.copyColumns[table] = append(info.copyColumns[table], column)
		}
	}
	funcs, err := queryText(sc, readOnlyFunctionsQuery, budget)
	if err != nil {
		return schemaInfo{}, err
	}
	for _, r := range funcs {
		if len(r) == 1 {
			info.readOnlyFunctions[r[0]] = true
		}
	}
	immutable, err := queryText(sc, immutableFunctionsQuery, budget)
	if err != nil {
		return schemaInfo{}, err
	}
	info.immutableFunctions = make(map[string]bool, len(immutable))
	for _, r := range immutable {
		if len(r) == 1 {
			info.immutableFunctions[r[0]] = true
		}
	}
	return info, nil
}

// queryText runs a simple query on a backend the caller owns and returns its rows as text.
func queryText(sc *pool.Conn, sql string, budget time.Duration) ([][]string, error) {
	var rows [][]string
	var bad error
	fail, _, err := runQuery(sc, sql, budget, func(f wire.Frame) {
		if f.Type() != wire.DataRow || bad != nil {
			return
		}
		var dr pgproto3.DataRow
		if err := dr.Decode(f.Body()); err != nil {
			bad = fmt.Errorf("decode DataRow: %w", err)
			return
		}
		row := make([]string, len(dr.Values))
		for i, v := range dr.Values {
			row[i] = string(v) // NULL reads as ""
		}
		rows = append(rows, row)
	})
	switch {
	case err != nil:
		return nil, err
	case fail != nil:
		return nil, fmt.Errorf("server error %s: %s", errorCode(fail), errorMessage(fail))
	}
	return rows, bad
}

// openCatalog connects to the catalog and bootstraps it with the configuration's map, retrying
// until ctx ends; it returns the catalog's current map.
func openCatalog(ctx context.Context, cfg *config.Config, bootstrap *shardmap.Map, log *zap.Logger) (*shardmap.Catalog, *shardmap.Map, error) {
	var lastErr error
	for {
		cat, err := shardmap.OpenCatalog(ctx, cfg.Catalog.DSN, cfg.Catalog.Schema, log.Named("catalog"))
		if err == nil {
			m, berr := cat.Bootstrap(ctx, bootstrap, cfg.NodeName)
			if berr == nil {
				return cat, m, nil
			}
			cat.Close()
			err = berr
		}
		lastErr = err
		log.Warn("shard map catalog not reachable yet", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("shard map catalog: %w", lastErr)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
