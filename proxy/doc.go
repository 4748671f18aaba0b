// Package proxy is the client-facing side of a shardwire node: it accepts Postgres protocol
// connections, negotiates TLS, authenticates clients itself, and relays each client's messages
// to pooled backend connections (package pool), transaction by transaction.
//
// Each client session has one goroutine reading the client (session.go) and, while a backend
// connection is attached, one goroutine relaying the backend's replies (relay.go). The two
// share a queue of expected replies, which is how the proxy keeps named prepared statements
// working in transaction mode (statements.go), answers some messages itself, and knows when a
// transaction ended so the backend can go back to the pool. Session settings follow the client
// from backend to backend (settings.go). Errors become ErrorResponses in one place (errors.go).
package proxy
