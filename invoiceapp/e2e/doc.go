// Package e2e holds invoiced's end-to-end tests: the HTTP API, migrations and partition
// maintenance against a real 4-group shardwire dev cluster (one per test run, started in
// TestMain), everything through the proxy's single DSN, with direct connections to the group
// writers only to check where rows landed. It has no non-test code.
package e2e
