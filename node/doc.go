// Package node runs one shardwire node: the proxy, its gossip membership (cluster), the
// catalog lease that gates routed work, cross-node cancel forwarding and the admin API, wired
// together. `shardwire serve` and the in-process nodes of `shardwire dev` both run a Node.
package node
