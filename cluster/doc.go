// Package cluster wires shardwire proxy nodes together with hashicorp/memberlist.
//
// It provides three things and nothing else:
//
//   - Membership: which proxy nodes exist and whether each is alive, dead or has
//     left (Members, OnChange). memberlist v0.7.0 offers no race-free way to
//     observe the "suspect" phase, so a suspected node is reported alive until
//     memberlist declares it dead.
//   - Node metadata (NodeMeta): name, region, version, addresses, the node's
//     shard-map epoch, lease and readiness, gossiped with every alive message and
//     re-published by UpdateMeta.
//   - Messages: best-effort gossip broadcasts (Broadcast) and acknowledged
//     broadcasts sent to every live member over TCP (BroadcastAndWait), both
//     dispatched by kind to handlers registered with Handle.
//
// Gossip only ever says "epoch N exists" (OnEpoch, AnnounceEpoch); the shard map
// itself is always read from the catalog (DESIGN.md rule 6).
//
// Nothing in this package blocks memberlist's gossip loop: delegates copy what
// they need and hand it to the package's own goroutines through bounded
// channels, dropping (and counting in shardwire_cluster_events_dropped_total)
// rather than blocking when a channel is full.
package cluster
