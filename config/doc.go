// Package config holds the shardwire proxy node's configuration: its YAML form, defaults,
// validation and the lookups the proxy makes per connection (which pool settings apply to a
// database and user). Unknown YAML keys are rejected with an error naming the key.
package config
