package node

import (
	"context"
	"errors"
	"net/http"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/proxy"
)

// Cache implements admin.API: the node's cache state and counters.
func (n api) Cache(context.Context) (admin.CacheStatus, error) {
	st := admin.CacheStatus{Node: n.cfg.NodeName}
	stats, on := n.proxy.CacheStats()
	if !on {
		return st, nil
	}
	st.Enabled, st.Usable, st.RedisUp = true, stats.Usable, stats.RedisUp
	st.Tables = make(map[string]string, len(n.cfg.Cache.Tables))
	for t, ttl := range n.cfg.Cache.Tables {
		st.Tables[t] = ttl.D().String()
	}
	st.Entries, st.Bytes = stats.Entries, stats.Bytes
	st.Misses, st.Fills = int64(stats.Misses), int64(stats.Fills)
	st.HitRate = stats.HitRate
	st.Layers = []admin.CacheLayerStatus{
		{Layer: "l1", Hits: int64(stats.HitsL1), HitRate: stats.HitRateL1},
		{Layer: "l2", Hits: int64(stats.HitsL2), HitRate: stats.HitRateL2},
	}
	return st, nil
}

// FlushCache implements admin.API: it bumps the generations covering the request, which
// every node of the cluster reads from Redis.
func (n api) FlushCache(ctx context.Context, req admin.CacheFlushRequest) (admin.CacheFlushResult, error) {
	if req.Table != "" {
		if _, ok := n.cfg.Cache.Tables[req.Table]; !ok {
			return admin.CacheFlushResult{}, admin.Errorf(http.StatusBadRequest, admin.CodeInvalid,
				"table %q is not cacheable on node %s (not listed in cache.tables)", req.Table, n.cfg.NodeName)
		}
	}
	bumped, scope, err := n.proxy.FlushCache(ctx, proxy.CacheFlush{Table: req.Table, Customer: req.Customer})
	switch {
	case errors.Is(err, proxy.ErrCacheOff):
		return admin.CacheFlushResult{}, admin.Errorf(http.StatusConflict, admin.CodeCacheOff, "node %s: %v", n.cfg.NodeName, err)
	case err != nil:
		return admin.CacheFlushResult{}, admin.Errorf(http.StatusServiceUnavailable, admin.CodeUnavailable,
			"node %s could not reach Redis to flush: %v", n.cfg.NodeName, err)
	}
	return admin.CacheFlushResult{Generations: bumped, Scope: scope}, nil
}
