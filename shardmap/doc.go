// Package shardmap holds the shard map — which group owns each of the 16 logical shards,
// each group's endpoints, and which tables are sharded by which column — and keeps it in a
// catalog in Postgres.
//
// A Map is one immutable epoch of the map. FromConfig builds the bootstrap map (epoch 0) from
// the configuration file. The Catalog is the single linearizable place where maps are kept:
// a table with one row per epoch, history kept forever, new epochs added only by
// compare-and-set (Publish; Update wraps a load, an edit such as AddGroup or RemoveGroup, and
// the publish). A node holds its current map in a Store, and Watch moves the Store forward
// whenever the catalog has a higher epoch — on a timer, on a hint from gossip, or on a
// NOTIFY from the catalog — and renews the node's Lease on its map with every successful read.
//
// The package knows nothing of the proxy or the router; they import it.
package shardmap
