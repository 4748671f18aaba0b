// Package move holds the database side of an online shard move: the steps that run against
// the source and target writers of one database over connections the caller opened (as a
// role that may create publications, subscriptions and triggers, and set
// session_replication_role: a superuser in development). The orchestrator (state machine in
// the catalog, map flip, shardctl) calls them in order; each one is idempotent, so a resumed
// move may call it again after a crash at any point.
//
//   - Precheck lists every reason a move would fail before anything is created.
//   - Replicate creates one direction of row-filtered logical replication of a shard: the
//     move schema (shardwire_move.markers and the fence trigger function) on both sides, a
//     publication and a slot on the source, a subscription on the target. Progress reports
//     its table states, the rows present on the target and the slot's lag.
//   - Verify compares the shard's rows on both sides chunk by chunk while replication may
//     still be applying changes.
//   - Fence makes the shard unwritable on one writer with BEFORE triggers created in one
//     transaction (they raise SQLSTATE shardmap.CodeShardFenced), optionally with the move's
//     marker row; Unfence and Fenced undo and inspect it.
//   - CatchUp proves that the target applied every write committed on the source before the
//     fence: the marker row is there and the subscription received the fence's WAL position.
//   - DropReplication removes a direction (subscription, slots, publication), DeleteShardRows
//     deletes the old copy in small batches, and Leftovers lists what moves left behind.
//
// Names: a move's objects are named after its id (Names): publication, slot and subscription
// "shardwire_move_<id>" for the forward direction and "shardwire_move_<id>_rev" for the
// reverse one; fence triggers are per shard ("shardwire_fence_k<shard>_ins", ...), so a later
// fence of the shard replaces an earlier one's reason.
//
// PostgreSQL 15 has no subscription origin filter: changes applied by one direction are
// published again by the other. The orchestrator therefore never lets both directions run
// while the shard is writable on either side (the reverse direction is created while both
// sides are fenced, and the forward one dropped before the target is unfenced).
package move
