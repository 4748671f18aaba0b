// Package rebalance drives online shard moves and plans rebalances. A Runner takes one move
// through the phases recorded in the catalog (shardmap.MovePhase): pre-checks, a row-filtered
// copy over logical replication with live verification, the buffer (the map freezes the shard
// and every live proxy confirms it), the fence of the source in one DDL transaction with a
// marker row, the proof of catch-up, the reverse replication, and the switch of the map by
// compare-and-set. Each phase's work is idempotent and each step ends with a compare-and-set
// of the move's phase, so a driver that was killed is resumed (Drive) or undone (Abort) by
// another at any point, and two drivers never run one move at once (the catalog's move lock).
//
// The database work itself is package shardmap/move's; this package decides the order, the
// time limits, and when a failure aborts the move. Plan computes the moves that even out
// shards (or bytes) across groups.
package rebalance
