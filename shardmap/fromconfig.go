package shardmap

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shardwire/shardwire/config"
)

// FromConfig builds the bootstrap map (epoch 0) from a node's configuration: the configured
// groups in order, shard ownership from sharding.shards (or contiguous equal runs), every
// shard active, the default group, a column rule for sharding.key_column and a named rule
// per sharding.tables entry (names and columns lower-cased). The map has no Tables; resolve
// them with ResolveTables. It is what Catalog.Bootstrap stores when the catalog is empty, and
// the whole map of a node without a catalog.
func FromConfig(cfg *config.Config) (*Map, error) {
	owner, err := cfg.Sharding.Assignment(cfg.Groups)
	if err != nil {
		return nil, fmt.Errorf("shard map from config: sharding: %w", err)
	}
	m := &Map{Owner: owner}
	for _, g := range cfg.Groups {
		m.Groups = append(m.Groups, Group{
			Name:           g.Name,
			Region:         g.Region,
			Writer:         g.Writer,
			Replicas:       slices.Clone(g.Replicas),
			ReplicaRegions: maps.Clone(g.ReplicaRegions),
		})
	}
	for s := range m.State {
		m.State[s] = StateActive
	}
	if name := cfg.Sharding.DefaultGroup; name != "" {
		if m.DefaultGroup = m.GroupIndex(name); m.DefaultGroup < 0 {
			return nil, fmt.Errorf("shard map from config: default_group %q is not a configured group", name)
		}
	}
	if cfg.Sharding.KeyColumn != "" {
		m.Rules = append(m.Rules, TableRule{Column: strings.ToLower(cfg.Sharding.KeyColumn)})
	}
	for i, t := range cfg.Sharding.Tables {
		if strings.Contains(t.Name, ".") {
			return nil, fmt.Errorf("shard map from config: sharding.tables[%d]: %q: name the table without its schema", i, t.Name)
		}
		m.Rules = append(m.Rules, TableRule{Table: strings.ToLower(t.Name), Column: strings.ToLower(t.Column)})
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("shard map from config: %w", err)
	}
	return m, nil
}
