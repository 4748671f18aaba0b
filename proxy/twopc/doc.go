// Package twopc keeps the two-phase-commit decision log of cross-group transactions and
// resolves the prepared transactions that a dead or stuck coordinator leaves behind.
//
// A proxy transaction that wrote to several shard groups commits in two phases. The
// coordinator (in the proxy) records the transaction in the Log (Begin, state "prepare"),
// runs PREPARE TRANSACTION on every group's writer, and then decides: Decide(gid, true) is a
// compare-and-set from "prepare" to "commit" in the catalog, and it is the commit point — from
// then on the transaction is committed, whatever happens to the coordinator. It finishes
// with COMMIT PREPARED on every group and Forget. When a prepare fails it decides abort
// instead, rolls back the branches already prepared, and forgets.
//
// A coordinator may die at any step. Recovery, run by every proxy node and active on one of
// them at a time (the holder of an advisory lock on the catalog), scans the groups'
// pg_prepared_xacts for shardwire's transactions once per interval and finishes what was
// left: it commits the branches of committed transactions, aborts records that stayed in
// "prepare" too long (by the same compare-and-set, so a coordinator and the recovery never
// disagree), rolls back the branches of aborted ones, and rolls back prepared transactions
// that have no record at all once they are old enough (presumed abort: a coordinator
// writes its record before preparing and forgets it only after every branch is resolved).
//
// What the coordinator must take from the recovery: Decide may return a *DecidedError —
// the recovery aborted a transaction that stayed in "prepare" longer than
// RecoveryConfig.AbortAfter — and the transaction must then be rolled back and reported as
// failed; and after a commit decision, a COMMIT PREPARED answered with SQLSTATE 42704 (no
// such prepared transaction) means the recovery already committed that branch.
//
// The decision log lives in the shard map catalog, in the transactions table created by
// the catalog's schema version 3 (shardmap's Bootstrap).
package twopc
