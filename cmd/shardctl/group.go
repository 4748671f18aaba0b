package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/admin"
)

// newGroupCmd returns `shardctl group` with its add and remove subcommands.
func newGroupCmd(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Add or remove shard groups of the map",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("group needs a subcommand, add or remove (see shardctl group --help)")
		},
	}
	cmd.AddCommand(newGroupAddCmd(o), newGroupRemoveCmd(o))
	return cmd
}

// newGroupAddCmd returns `shardctl group add`.
func newGroupAddCmd(o *globalOptions) *cobra.Command {
	var region, writer string
	var replicas []string
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a shard group (owning no shards) and publish the new map epoch",
		Long: "Add a shard group to the map. The writer and replicas are Postgres DSNs, libpq URLs\n" +
			"(postgres://host:port/db) or key=value strings (host=h port=p); only their host and\n" +
			"port are used. The new group owns no shards until shards are moved to it.",
		Example: "  shardctl group add g2 --region eu-west-1 --writer postgres://10.0.2.1:5432/app \\\n" +
			"      --replica 'host=10.0.2.2 port=5432'",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.GroupAddRequest{Name: args[0], Region: region}
			var err error
			if req.Writer, err = endpointFromDSN("--writer", writer); err != nil {
				return err
			}
			for i, dsn := range replicas {
				flag := "--replica"
				if len(replicas) > 1 {
					flag = fmt.Sprintf("--replica #%d", i+1)
				}
				addr, err := endpointFromDSN(flag, dsn)
				if err != nil {
					return err
				}
				req.Replicas = append(req.Replicas, addr)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			v, err := c.AddGroup(cmd.Context(), req)
			if err != nil {
				return o.explain(c, err)
			}
			return writeAdded(cmd.OutOrStdout(), req.Name, v)
		},
	}
	f := cmd.Flags()
	f.StringVar(&region, "region", "", "region of the group's writer (required)")
	f.StringVar(&writer, "writer", "", "DSN of the group's writer (required)")
	f.StringArrayVar(&replicas, "replica", nil, "DSN of a streaming replica of the writer; repeat for several")
	_ = cmd.MarkFlagRequired("region")
	_ = cmd.MarkFlagRequired("writer")
	return cmd
}

// newGroupRemoveCmd returns `shardctl group remove`.
func newGroupRemoveCmd(o *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a shard group that owns no shards and publish the new map epoch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			v, err := c.RemoveGroup(cmd.Context(), args[0])
			if err != nil {
				return o.explainRemove(cmd.Context(), c, args[0], err)
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "removed group %s: the shard map is now at epoch %d\n", args[0], v.Epoch)
			return nil
		},
	}
}

// writeAdded reports the epoch that added group name and the group as the new map holds it.
func writeAdded(w io.Writer, name string, v admin.ShardMapView) error {
	_, _ = fmt.Fprintf(w, "added group %s: the shard map is now at epoch %d\n", name, v.Epoch)
	i := slices.IndexFunc(v.Groups, func(g admin.GroupView) bool { return g.Name == name })
	if i < 0 {
		return fmt.Errorf("the node answered with epoch %d, whose groups do not include %s; check `shardctl map`", v.Epoch, name)
	}
	t := newTable(w)
	writeGroups(t, v.Groups[i:i+1])
	return t.Flush()
}

// explainRemove explains a failed group remove. When the group may not go because of what it
// holds, the map says which: being the default group, or the shards it owns.
func (o *globalOptions) explainRemove(ctx context.Context, c *admin.Client, name string, err error) error {
	var apiErr *admin.APIError
	if errors.As(err, &apiErr) && apiErr.Code == admin.CodeOwnsShards {
		if v, mapErr := c.ShardMap(ctx); mapErr == nil {
			if msg := whyNotRemovable(v, name); msg != "" {
				return &cliError{msg: msg, err: err}
			}
		}
	}
	return o.explain(c, err)
}

// whyNotRemovable says why map v keeps group name, "" when nothing in v does.
func whyNotRemovable(v admin.ShardMapView, name string) string {
	if name == v.DefaultGroup {
		return fmt.Sprintf("cannot remove group %s: it is the default group, which holds the unsharded tables", name)
	}
	for _, g := range v.Groups {
		if g.Name == name && len(g.Shards) > 0 {
			return fmt.Sprintf("cannot remove group %s: it owns shards %s; move them to other groups first, then remove it",
				name, shardSet(g.Shards))
		}
	}
	return ""
}
