package proxy

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/cache/cdc"
	"github.com/shardwire/shardwire/proxy/health"
	"github.com/shardwire/shardwire/shardmap"
)

// startChangeFeeds runs the cache's change feed for every shard group and backend database
// (one node of the cluster streams each: cdc elects it), following the map as groups come
// and go. Feeds end with ctx.
func (s *Server) startChangeFeeds(ctx context.Context) {
	dbs := s.feedDatabases()
	if len(dbs) == 0 {
		s.log.Warn("cache: no databases configured, so no change feed runs; writes that bypass the proxy are not seen by the cache")
		return
	}
	metrics := cdc.NewMetrics(s.reg)
	var mu sync.Mutex
	running := make(map[string]context.CancelFunc)
	ensure := func(m *shardmap.Map) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		want := make(map[string]bool)
		for _, g := range m.Groups {
			for _, db := range dbs {
				key := g.Name + "\x00" + db
				want[key] = true
				if running[key] == nil {
					fctx, cancel := context.WithCancel(ctx)
					running[key] = cancel
					go s.runChangeFeed(fctx, g.Name, db, metrics)
				}
			}
		}
		for key, cancel := range running {
			if !want[key] {
				cancel()
				delete(running, key)
			}
		}
	}
	ensure(s.topo.store.Current())
	s.topo.store.Subscribe(ensure)
}

// feedDatabases lists the configured backend databases, each once.
func (s *Server) feedDatabases() []string {
	var out []string
	seen := make(map[string]bool)
	for _, d := range s.config().Databases {
		name := d.BackendName
		if name == "" {
			name = d.Name
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// runChangeFeed runs the feed of one group's writer for one database until ctx ends.
func (s *Server) runChangeFeed(ctx context.Context, group, db string, metrics *cdc.Metrics) {
	log := s.log.Named("cache-feed").With(zap.String("group", group), zap.String("database", db))
	connect := func(replication bool) func(context.Context) (*pgconn.PgConn, error) {
		return func(ctx context.Context) (*pgconn.PgConn, error) {
			cfg := s.config()
			user, password := cfg.Cache.ChangeFeedUser, cfg.Cache.ChangeFeedPassword
			if user == "" {
				h := healthConfig(cfg)
				user, password = h.User, h.Password
			}
			cc, err := health.ConnConfig(s.topo.health.Writer(group), user, password, db, "shardwire-cache-feed")
			if err != nil {
				return nil, err
			}
			cc.ConnectTimeout = cfg.Pool.ServerConnectTimeout.D()
			if replication {
				cc.RuntimeParams["replication"] = "database"
			}
			return pgconn.ConnectConfig(ctx, cc)
		}
	}
	err := cdc.Run(ctx, cdc.Config{
		Group:              group,
		Database:           db,
		Connect:            connect(false),
		ConnectReplication: connect(true),
		KeyColumn:          func(table string) (string, bool) { return s.topo.keyColumn(db, table) },
		Cacheable: func(table string) bool {
			_, ok := s.config().Cache.Tables[table]
			return ok
		},
		Bump: func(ctx context.Context, group string, lsn uint64, touches []cache.Touch) error {
			return s.cache.BumpIfNewer(ctx, "change_feed", group, lsn, touches)
		},
		Log:     log,
		Metrics: metrics,
	})
	if err != nil && ctx.Err() == nil {
		log.Error("cache change feed stopped", zap.Error(err))
	}
}

// keyColumn returns the shard-key column of a table of database db as routing sees it: from
// the database's resolved map, else from the rules (a named rule, or the column rule, which
// applies to every table having that column).
func (t *topology) keyColumn(db, table string) (string, bool) {
	if v, ok := t.dbMaps.Load(db); ok {
		return v.(*dbMap).m.KeyColumn(table)
	}
	m := t.store.Current()
	for _, r := range m.Rules {
		if r.Table != "" && r.Table == table {
			return r.Column, true
		}
	}
	if col := m.ColumnRule(); col != "" {
		return col, true
	}
	return "", false
}
