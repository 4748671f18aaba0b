// Package deploy holds what runs shardwire on Kubernetes and watches it there: the manifests in
// kubernetes/, the Prometheus rules in prometheus/ and the Grafana dashboard in grafana/
// (docs/operations.md, "Deploying on Kubernetes", says how to use them).
//
// It has no code of its own. Its tests decode every manifest strictly into the Kubernetes API
// types and check them against each other and against shardwire itself: the rendered node
// configuration parses with config.Parse, the probes hit the admin listener's real routes, every
// Secret and ConfigMap a pod reads is defined here. They run promtool on the rules and their unit
// tests, and check that the rules and the dashboard name only metrics the code exports.
package deploy
