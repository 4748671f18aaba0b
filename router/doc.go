// Package router answers pure questions about SQL text for the proxy: it does no I/O, opens
// no connections and imports neither net nor the wire-protocol codec. A statement (and, later,
// session facts) goes in; a decision comes out as a value that can be printed and compared.
//
// AnalyzeSession is the transaction pooler's cheap first look at every query: a single-pass,
// lexer-based scan that reports what the SQL does to session state — SET/RESET changes to
// replay on the next backend connection, transaction control, LISTEN, session advisory locks,
// DEALLOCATE, and the statements (temporary tables, WITH HOLD cursors, SQL-level PREPARE,
// LOAD, ...) after which the client must stay pinned to its backend. It allocates nothing for
// the ordinary SELECT/INSERT/UPDATE/DELETE. SetStatement and ParseOptions turn startup
// parameters into statements that replay them.
//
// Router plans statements for shard routing with the real Postgres parser (pg_query): Route
// for a simple-query string, Prepare and Statement.Plan for Parse and Bind. A Plan says what a
// statement does (Kind), where it runs (Target: any group, the default group, the groups of a
// shard set, a scatter over every group, DDL on every group, or a reject with its SQLSTATE)
// and, for a scatter, how to merge the groups' replies (MergeSpec). What a parse learns is
// cached by statement shape, so a statement seen before is planned without a parse and
// without allocating. ScatterSQL rewrites a scatter for one group (restricted to the shards it
// owns). Golden files in testdata pin the plans. Everything here is safe for concurrent use.
//
// Two kinds of statement the proxy splits by rows get their plan data here, computed once per
// shape: a COPY FROM STDIN or TO STDOUT of a sharded table (TargetSplit, Plan.Copy: the data
// format, where each row's key is, and CopySpec.OutSQL, the per-group COPY of a restricted
// SELECT), and a multi-row INSERT ... VALUES whose rows fall in several groups (Plan.Split:
// InsertSplit.RowShards says where each row goes, InsertSplit.Render writes the INSERT of a
// group's rows with its parameters renumbered, by lexing the text, never parsing it).
//
// For the read-through cache a Plan also says which exact shard-key values the statement's
// rows are restricted to (Keys, a KeySet), and whether the statement itself lets its result be
// cached (NoCache: not one plain read, a function that is not IMMUTABLE, a locking clause, a
// catalog or temporary relation, a /* nocache */ comment) and for how long a
// /* cache ttl=30s */ comment asks (CacheTTL). The built-in immutable functions are generated
// from a real server's pg_catalog (immutable_functions.go, by TestImmutableFunctions -update);
// the database's own come from the map (shardmap.Map.ImmutableFunctions).
package router
