// Package proxy is the client-facing side of a shardwire node: it accepts Postgres protocol
// connections, negotiates TLS, authenticates clients itself, and relays each client's messages
// to pooled backend connections (package pool), transaction by transaction.
//
// Each client session has one goroutine, the client loop (session.go), which forwards the
// client's messages and, once a request is complete, reads the backend's replies itself
// (pump, relay.go). Only in session mode, where the backend may speak while the client is idle,
// does a second goroutine relay the backend's replies. Both work from a queue of expected
// replies, which is how the proxy keeps named prepared statements
// working in transaction mode (statements.go), answers some messages itself, and knows when a
// transaction ended so the backend can go back to the pool. Session settings follow the client
// from backend to backend (settings.go). Errors become ErrorResponses in one place (errors.go).
//
// During an online shard move (moves*.go) the node holds a frozen shard's new writes until the
// map moves on, fails transactions that touch it past a grace period, runs again a write that
// met the move's fence in the old owner, and refuses DDL on sharded tables.
package proxy
