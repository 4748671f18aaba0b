package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/shardmap"
)

// ErrCacheOff is returned by cache operations on a node whose cache is off.
var ErrCacheOff = errors.New("the cache is off: no table is listed in cache.tables")

// CacheFlush says what FlushCache makes unreachable: everything (zero value), one table's
// replies, one customer's (of every cacheable table, or of Table only).
type CacheFlush struct {
	Table    string
	Customer *int64
}

// FlushCache bumps the generations that cover f in every configured database, so no node
// serves the replies built before. It returns how many generations it bumped and a
// description of the scope.
func (s *Server) FlushCache(ctx context.Context, f CacheFlush) (int, string, error) {
	if s.cache == nil {
		return 0, "", ErrCacheOff
	}
	cfg := s.config()
	dbs := s.feedDatabases()
	if len(dbs) == 0 {
		dbs = []string{""} // clients name any database: flush the global generation of none
	}
	tables := []string{f.Table}
	if f.Table == "" {
		tables = tables[:0]
		for t := range cfg.Cache.Tables {
			tables = append(tables, t)
		}
	}
	m := s.topo.store.Current()
	var gens []cache.Gen
	scope := "everything"
	for _, db := range dbs {
		switch {
		case f.Customer != nil:
			scope = fmt.Sprintf("customer %d", *f.Customer)
			for _, t := range tables {
				gens = append(gens,
					cache.Gen{Kind: cache.GenCustomer, DB: db, Table: t, N: *f.Customer},
					cache.Gen{Kind: cache.GenShard, DB: db, Table: t, N: int64(shardmap.ShardOf(*f.Customer))})
			}
		case f.Table != "":
			scope = "table " + f.Table
			for _, g := range m.Groups {
				gens = append(gens, cache.Gen{Kind: cache.GenTable, DB: db, Table: f.Table, Group: g.Name})
			}
		default:
			gens = append(gens, cache.Gen{Kind: cache.GenGlobal, DB: db})
		}
	}
	if f.Customer != nil && f.Table != "" {
		scope += " in table " + f.Table
	}
	if err := s.cache.BumpGens(ctx, "flush", "", 0, gens); err != nil {
		return 0, scope, fmt.Errorf("flush %s: %w", scope, err)
	}
	return len(gens), scope, nil
}

// CacheStats returns the cache's state, and false when the cache is off.
func (s *Server) CacheStats() (cache.Stats, bool) {
	if s.cache == nil {
		return cache.Stats{}, false
	}
	return s.cache.Stats(), true
}
