// Package devcluster starts a whole local shardwire cluster in one process: real Postgres
// groups from internal/pgtest and P proxy nodes (each with its admin HTTP listener) on
// loopback. It is what `shardwire dev` runs, and tests start exactly the same thing with
// Start.
//
// The proxy configuration is generated from the running Postgres servers and may be shaped
// by a YAML overlay (Options.Overlay) that is deep-merged over it before the usual strict
// parsing, so unknown keys are still rejected. When Start returns, every proxy has served a
// query; Info describes the cluster in the cluster.json form other tools read.
package devcluster
