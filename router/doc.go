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
// Shard routing with the real Postgres parser builds on this package later; everything here
// is safe for concurrent use, having no state.
package router
