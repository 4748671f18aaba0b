// Package migrations holds invoiced's schema as embedded SQL files and applies them through
// the shardwire proxy, in version order, recording each in schema_migrations.
//
// Files are named NNNN_name.sql. A file holds statements separated by a semicolon at the end
// of a line (no semicolon may end a line inside a statement); lines starting with "--" are
// comments. Through shardwire, DDL on a sharded table (one with customer_id) runs on every
// shard group and cannot be part of a transaction, so statements run one by one and must be
// idempotent (IF NOT EXISTS): a migration interrupted halfway is completed by the next run.
// schema_migrations and the lock table have no customer_id and live on the default group.
// A lease row in schema_migrations_lock keeps two processes from migrating at once (the
// proxy pools connections per transaction, so a session-level advisory lock would not hold).
package migrations
