// Package move holds the building blocks of an online shard move that run against the
// source and target writers over connections the caller opened: Precheck, which lists every
// reason a move would fail before anything is created, and Verify, which compares one
// logical shard's rows on both sides chunk by chunk while replication may still be applying
// changes.
//
// The move orchestration (publication, subscription, fence, catch-up proof, map flip) lives
// elsewhere and calls these functions; this package creates nothing and writes nothing.
// Every query here is read-only, and the verification queries are range scans on the shard
// key, which leads each sharded table's primary key.
package move
