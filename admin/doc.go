// Package admin serves a proxy node's HTTP admin endpoints: /metrics (Prometheus text format
// from a Gatherer), /healthz (the process is up) and /readyz (the node can serve clients, as a
// caller-supplied check decides). It knows nothing of the proxy itself; cmd/shardwire wires the
// two together. The dashboard and the SQL admin console come later.
package admin
