// Package service assembles a running invoiced: one pgx pool on the proxy's DSN, schema
// migrations and partition maintenance, the rate limiter (Redis-backed when configured), the
// HTTP API with /metrics and /healthz, and graceful shutdown. cmd/invoiced binds flags to a
// Config and runs it; `shardwire dev` can run it in process.
package service
