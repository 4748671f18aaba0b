package router

import (
	"sync"

	"github.com/shardwire/shardwire/shardmap"
)

// ScatterCache remembers ScatterSQL's rewrites, so that a statement repeated on the hot path
// is parsed and deparsed once per group. Entries are keyed by the statement text, the owned
// shards and the map (a Map is immutable once published: a new one makes new entries). It is
// bounded: when full, an arbitrary entry makes room. Safe for concurrent use.
type ScatterCache struct {
	mu      sync.Mutex
	max     int
	entries map[scatterCacheKey]scatterCacheEntry
}

type scatterCacheKey struct {
	sql   string
	owned shardmap.ShardSet
	m     *shardmap.Map
}

type scatterCacheEntry struct {
	sql string
	err error
}

// NewScatterCache returns a cache holding at most size rewrites (at least 1).
func NewScatterCache(size int) *ScatterCache {
	return &ScatterCache{max: max(size, 1), entries: make(map[scatterCacheKey]scatterCacheEntry)}
}

// ScatterSQL returns ScatterSQL(sql, owned, m), from the cache when it can. Rejections are
// cached too.
func (c *ScatterCache) ScatterSQL(sql string, owned shardmap.ShardSet, m *shardmap.Map) (string, error) {
	key := scatterCacheKey{sql: sql, owned: owned, m: m}
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return e.sql, e.err
	}
	out, err := ScatterSQL(sql, owned, m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = scatterCacheEntry{sql: out, err: err}
	return out, err
}
