// Package admin serves a proxy node's HTTP admin endpoints: /metrics (Prometheus text format
// from a Gatherer), /healthz (the process is up) and /readyz (the node can serve clients, as a
// caller-supplied check decides), the JSON API under /api/v1 that shardctl uses, and the live
// dashboard at / (embedded assets that poll the API and /metrics). It also holds the SQL admin
// console's commands and result tables (console.go), which the proxy serves on the virtual
// database "shardwire". It knows nothing of the proxy itself; the node supplies the data
// through small interfaces (API, ConsoleData).
package admin
