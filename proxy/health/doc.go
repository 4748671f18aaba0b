// Package health watches the backend endpoints of every shard group and answers, without I/O,
// where a transaction's reads and writes may go.
//
// A Checker keeps one persistent connection per endpoint and, every Interval, asks each
// endpoint in one round trip whether it is in recovery and how far its WAL has got. From
// those answers it elects each group's writer (following promotions), measures each
// replica's lag, and publishes an immutable per-group view through an atomic pointer. The
// proxy's per-transaction questions (Writer, ReadTargets, WriterLSNAfter) read that view and
// a per-endpoint atomic ban deadline: no lock, no allocation and no I/O on the caller's path.
//
// Lag is measured the way that stays right when the writer is idle: a replica that has
// replayed the writer's latest observed WAL position has no lag; otherwise its lag is the age
// of the last transaction it replayed, bounded above by the age of the newest writer
// position it is known to have replayed.
package health
