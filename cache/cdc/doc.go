// Package cdc is the cache's change feed: it catches writes that bypass the proxy (direct
// sessions on a writer, triggers, ON DELETE CASCADE) by streaming logical replication
// (pgoutput) from one shard group's writer, and bumps the cache generations those writes
// touched.
//
// One feed runs per (shard group, backend database) across the whole proxy cluster. Every
// node calls Run for every such pair; the feeds campaign for a Postgres session advisory
// lock taken on the writer, and only the holder streams. The lock lives as long as the
// holder's connection, so when its node dies the lock frees and another node's feed takes
// over within about Config.Retry. The replication slot is permanent: a new leader resumes
// where the old one stopped, and every commit not yet confirmed is sent again (bumping twice
// is harmless; missing a bump is not).
//
// For every committed transaction the feed calls Config.Bump, retrying until it succeeds,
// with the transaction's end LSN and one cache.Touch per cacheable table it wrote: the
// exact customers when each row's shard-key value is known, else a whole-table touch
// (GenTable). Only then is the transaction confirmed to the server, so a commit is never
// skipped.
// A row's customer is known from the shard-key column of its new row (INSERT, UPDATE) and
// of its old key (UPDATE that changed the replica identity, DELETE). When the key column
// is not part of the table's replica identity, a DELETE cannot name the customer and an
// UPDATE could have moved the row away from an unnamed one, so both touch the whole table;
// sharded tables should have the key in their primary key (or REPLICA IDENTITY FULL).
//
// The feed owns a publication FOR ALL TABLES (publish_via_partition_root, so partitioned
// tables report their root) and a logical slot per database. Postgres refuses UPDATE and
// DELETE on a published table that has no replica identity (no primary key and no REPLICA
// IDENTITY setting), so every table of a database with a feed needs one.
package cdc
