// Package cache is shardwire's read-through result cache: opaque entries (a reply's wire
// frames) in this node's memory (L1, ristretto) and in Redis (L2), under keys that include
// the generations of everything the read depends on. A write bumps the generations it
// touched, so keys built before it are never built again: correctness comes from versioned
// keys, never from deleting entries. The package does no routing and knows nothing of the
// wire protocol; the proxy decides what is cacheable and builds keys with a KeyBuilder.
//
// # Modes
//
//   - Redis (Config.Redis.Addrs set): generations live in Redis; this node keeps recently
//     read values in its generation memory for at most Config.Staleness, and drops one as
//     soon as a pub/sub message says another node bumped it.
//   - Local (no Redis, node not clustered): generations live in this process, with the same
//     semantics (random start values); there is no L2.
//   - Off (no Redis, clustered node): Usable is always false; a node cannot see its peers'
//     writes without Redis, so it does not cache at all.
//
// # Redis layout
//
// Every generation key carries the hash tag {gen}, so that the scripts that touch several of
// them run on one Redis Cluster slot. None of them has a TTL: run Redis with maxmemory-policy
// noeviction, volatile-lru or volatile-ttl so that only entries are ever evicted (Run warns,
// in its log and in shardwire_cache_redis_evicting_policy, about an allkeys-* policy).
//
//	sw:{gen}:epoch                        string: a random 62-bit value set when missing; a
//	                                      new value means Redis lost its data, and every
//	                                      node forgets the generations it holds
//	sw:{gen}:<db>:c:<table>:<customer>    hash, GenCustomer
//	sw:{gen}:<db>:s:<table>:<shard>       hash, GenShard
//	sw:{gen}:<db>:t:<table>:<group>       hash, GenTable
//	sw:{gen}:<db>:g::                     hash, GenGlobal
//	    fields: v  the counter (decimal; created at a random 62-bit value, +1 per bump)
//	            g  the group whose write last bumped it ("" until bumped)
//	            l  that write's LSN, 16 hex digits (all zero: unknown)
//	sw:{gen}:bumped                       pub/sub channel: each bump publishes the
//	                                      bumping node's random id, then the keys it
//	                                      bumped, one per line
//	sw:e:<64 hex digits>                  string with a TTL: one entry, keyed by its Key
//
// Names, tables and groups are written with ':', '%', '{', '}', spaces, control characters
// and non-ASCII bytes percent-encoded, so that no two generations share a key.
//
// # Failure
//
// Any Redis error or a reply slower than Config.Timeout marks Redis down: Usable turns
// false (the proxy reads from Postgres), the generation memory is cleared, and bumps are
// kept in a bounded retry list. Run pings Redis every 100-250 ms; when it answers, the
// retry list is applied first and only then are cached reads served again.
package cache
