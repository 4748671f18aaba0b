package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/admin"
)

// shardGridRows is the number of rows of the shard grid in `status`; the 16 shards fill it
// column by column.
const shardGridRows = 4

// newStatusCmd returns `shardctl status`.
func newStatusCmd(o *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the members and their epochs, the backends' health and lag, and the shard map",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := c.Cluster(ctx)
			if err != nil {
				return o.explain(c, err)
			}
			v, err := c.ShardMap(ctx)
			if err != nil {
				return o.explain(c, err)
			}
			return writeStatus(cmd.OutOrStdout(), st, v)
		},
	}
}

// writeStatus writes the members, a line per problem among them, the backends and the shard
// map as a grid.
func writeStatus(w io.Writer, st admin.ClusterStatus, v admin.ShardMapView) error {
	t := newTable(w)
	members := slices.Clone(st.Members)
	slices.SortStableFunc(members, func(a, b admin.MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	if st.Clustered {
		row(t, fmt.Sprintf("cluster of %d members, as node %s sees it", len(members), st.Node))
	} else {
		row(t, fmt.Sprintf("single node %s (no gossip configured)", st.Node))
	}
	row(t, "NAME", "STATE", "REGION", "EPOCH", "LEASE", "READY", "PG", "ADMIN")
	for _, m := range members {
		name := m.Name
		if m.Self {
			name += " (self)"
		}
		leaseState := "expired"
		if m.LeaseOK {
			leaseState = "valid"
		}
		row(t, name, orDash(m.State), orDash(m.Region), fmt.Sprint(m.Epoch), leaseState, yesNo(m.Ready),
			orDash(m.PgAddr), orDash(m.AdminAddr))
	}
	for _, p := range memberProblems(members) {
		row(t, p)
	}
	_, _ = fmt.Fprintln(t)

	row(t, "GROUP", "ENDPOINT", "ROLE", "REGION", "UP", "LAG", "NOTE")
	for _, e := range st.Endpoints {
		lagText := "-" // a writer has no lag
		if e.Role != "writer" {
			lagText = lag(e.LagSeconds)
		}
		row(t, e.Group, e.Addr, orDash(e.Role), orDash(e.Region), yesNo(e.Up), lagText, endpointNote(e))
	}
	_, _ = fmt.Fprintln(t)

	row(t, fmt.Sprintf("shard map at epoch %d, default group %s, lease %s", v.Epoch, orDash(v.DefaultGroup), leaseWord(v.Lease)))
	writeShardGrid(t, v.Shards)
	if err := t.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// memberProblems returns one line per kind of problem among members: differing epochs, members
// not alive, alive members without a valid lease or not ready. With none, one line saying so.
func memberProblems(members []admin.MemberStatus) []string {
	var lines, epochs, notAlive, noLease, notReady []string
	distinct := map[int64]bool{}
	for _, m := range members {
		if m.State != "alive" {
			notAlive = append(notAlive, fmt.Sprintf("%s (%s)", m.Name, m.State))
			continue
		}
		distinct[m.Epoch] = true
		epochs = append(epochs, fmt.Sprintf("%s=%d", m.Name, m.Epoch))
		if !m.LeaseOK {
			noLease = append(noLease, m.Name)
		}
		if !m.Ready {
			notReady = append(notReady, m.Name)
		}
	}
	if len(distinct) > 1 {
		lines = append(lines, "epochs differ: "+strings.Join(epochs, ", "))
	}
	if len(notAlive) > 0 {
		lines = append(lines, "not alive: "+strings.Join(notAlive, ", "))
	}
	if len(noLease) > 0 {
		lines = append(lines, "lease expired (routed work refused): "+strings.Join(noLease, ", "))
	}
	if len(notReady) > 0 {
		lines = append(lines, "not ready: "+strings.Join(notReady, ", "))
	}
	if len(lines) == 0 && len(members) > 0 {
		lines = append(lines, fmt.Sprintf("all %d members alive, ready, with a valid lease, at epoch %d",
			len(members), members[0].Epoch))
	}
	return lines
}

// endpointNote says why reads avoid an endpoint, "-" when nothing is wrong. A healthy
// endpoint's last error is old news and is left out.
func endpointNote(e admin.EndpointStatus) string {
	var notes []string
	if e.Banned {
		notes = append(notes, "banned")
	}
	if (e.Banned || !e.Up) && e.LastError != "" {
		notes = append(notes, "last error: "+e.LastError)
	}
	return orDash(strings.Join(notes, "; "))
}

// leaseWord is "valid" or "expired".
func leaseWord(l admin.LeaseView) string {
	if l.Valid {
		return "valid"
	}
	return "expired"
}

// writeShardGrid writes the shards as columns of SHARD GROUP STATE, shardGridRows rows deep,
// filled column by column: 0-3 in the first, 4-7 in the second, and so on.
func writeShardGrid(w io.Writer, shards []admin.ShardView) {
	cols := (len(shards) + shardGridRows - 1) / shardGridRows
	var header []string
	for range cols {
		header = append(header, "SHARD", "GROUP", "STATE")
	}
	row(w, header...)
	for r := range min(shardGridRows, len(shards)) {
		var cells []string
		for c := range cols {
			i := c*shardGridRows + r
			if i >= len(shards) {
				break
			}
			s := shards[i]
			cells = append(cells, fmt.Sprint(s.Shard), orDash(s.Group), orDash(s.State))
		}
		row(w, cells...)
	}
}
