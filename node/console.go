package node

import (
	"context"

	"github.com/shardwire/shardwire/admin"
)

// console implements admin.ConsoleData for a node: the proxy's own data (pools, clients,
// servers, stats, configuration, RELOAD, PAUSE), with the cluster-wide views — members from
// gossip, the map with its lease, the cache with its tables — from the node.
type console struct {
	admin.ConsoleData
	n *Node
}

// ConsoleData returns the data of the node's SQL admin console; the node installs it on its
// proxy with proxy.Server.SetConsole.
func (n *Node) ConsoleData() admin.ConsoleData {
	return console{ConsoleData: n.proxy.ConsoleData(), n: n}
}

// Cluster implements admin.ConsoleData: every member the node knows and its backends.
func (c console) Cluster(ctx context.Context) (admin.ClusterStatus, error) {
	return api{c.n}.Cluster(ctx)
}

// ShardMap implements admin.ConsoleData: the map the node serves and its lease.
func (c console) ShardMap(ctx context.Context) (admin.ShardMapView, error) {
	return api{c.n}.ShardMap(ctx)
}

// Cache implements admin.ConsoleData: the node's cache, with its cacheable tables.
func (c console) Cache(ctx context.Context) (admin.CacheStatus, error) {
	return api{c.n}.Cache(ctx)
}
