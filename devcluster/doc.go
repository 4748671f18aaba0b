// Package devcluster starts a whole local shardwire cluster: real Postgres groups from
// internal/pgtest and P proxy nodes on loopback that gossip with each other (memberlist's
// local profile, a random gossip key per cluster, every other node as a seed). It is what
// `shardwire dev` runs, and tests start exactly the same thing with Start.
//
// Nodes run in this process (node.New and Serve; Node.Proxy and Node.Registry are set) or,
// with Options.Exec, as child processes of a shardwire binary (`serve --config`), each with
// its generated configuration in Dir/proxies/pN.yaml and its output in Dir/proxies/pN.log.
// Child nodes can be killed, stopped and restarted on the same ports (Node.Kill, Stop,
// Restart); they die with the process that started them, and one that exits on its own is
// reported on Cluster.Errors with the end of its log.
//
// The proxy configuration is generated from the running Postgres servers and may be shaped
// by a YAML overlay (Options.Overlay) that is deep-merged over it before the usual strict
// parsing, so unknown keys are still rejected. When Start returns, every node has served a
// query, answers /readyz, and lists every node alive; Info describes the cluster in the
// cluster.json form other tools read.
package devcluster
