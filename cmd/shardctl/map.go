package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/admin"
)

// newMapCmd returns `shardctl map`.
func newMapCmd(o *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "map",
		Short: "Print the shard map the node serves: groups, shard owners and sharding rules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			v, err := c.ShardMap(cmd.Context())
			if err != nil {
				return o.explain(c, err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			return writeMap(cmd.OutOrStdout(), v)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the map as the admin API's JSON, indented")
	return cmd
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// writeMap writes the shard map for humans: a summary, the groups, every shard and the rules.
func writeMap(w io.Writer, v admin.ShardMapView) error {
	t := newTable(w)
	row(t, "epoch", fmt.Sprint(v.Epoch))
	row(t, "default group", orDash(v.DefaultGroup))
	row(t, "lease", lease(v.Lease))
	_, _ = fmt.Fprintln(t)
	writeGroups(t, v.Groups)
	_, _ = fmt.Fprintln(t)
	row(t, "SHARD", "GROUP", "STATE")
	for _, s := range v.Shards {
		row(t, fmt.Sprint(s.Shard), orDash(s.Group), orDash(s.State))
	}
	_, _ = fmt.Fprintln(t)
	if len(v.Rules) == 0 {
		row(t, "no sharding rules: every table lives on the default group")
	} else {
		row(t, "SHARDED TABLE", "BY COLUMN")
		for _, r := range v.Rules {
			table := r.Table
			if table == "" {
				table = "(any table with the column)"
			}
			row(t, table, r.Column)
		}
	}
	if err := t.Flush(); err != nil {
		return fmt.Errorf("write map: %w", err)
	}
	return nil
}

// writeGroups writes a table of groups with their endpoints and shards.
func writeGroups(w io.Writer, groups []admin.GroupView) {
	row(w, "GROUP", "REGION", "WRITER", "REPLICAS", "SHARDS")
	for _, g := range groups {
		row(w, g.Name, orDash(g.Region), orDash(g.Writer), orDash(strings.Join(g.Replicas, ",")), shardSet(g.Shards))
	}
}

// lease describes a node's lease on its map.
func lease(l admin.LeaseView) string {
	state := "expired: the node refuses routed work until it reads the catalog"
	if l.Valid {
		state = "valid"
	}
	if l.TTLSeconds == 0 && l.AgeSeconds == 0 {
		return state + " (no catalog, never expires)"
	}
	ttl := time.Duration(l.TTLSeconds * float64(time.Second)).Round(time.Millisecond)
	return fmt.Sprintf("%s (age %s of %v)", state, seconds(l.AgeSeconds), ttl)
}
