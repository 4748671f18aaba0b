package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/admin"
)

// newCacheCmd returns `shardctl cache` with its status and flush subcommands.
func newCacheCmd(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Show or flush the read-through cache",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("cache needs a subcommand, status or flush (see shardctl cache --help)")
		},
	}
	cmd.AddCommand(newCacheStatusCmd(o), newCacheFlushCmd(o))
	return cmd
}

// newCacheStatusCmd returns `shardctl cache status`.
func newCacheStatusCmd(o *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node's cache: entries, bytes, hit rates per layer, Redis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			st, err := c.Cache(cmd.Context())
			if err != nil {
				return o.explain(c, err)
			}
			return writeCacheStatus(cmd.OutOrStdout(), st)
		},
	}
}

// writeCacheStatus prints a cache status.
func writeCacheStatus(w io.Writer, st admin.CacheStatus) error {
	if !st.Enabled {
		_, err := fmt.Fprintf(w, "node %s: the cache is off (no table is listed in cache.tables)\n", st.Node)
		return err
	}
	state := "serving"
	if !st.Usable {
		state = "not serving (Redis unreachable: reads go to Postgres)"
	}
	fmt.Fprintf(w, "node %s: cache %s, redis %s\n", st.Node, state, upDown(st.RedisUp))
	fmt.Fprintf(w, "entries %d, %d bytes in memory; %d misses, %d fills, hit rate %.1f%%\n",
		st.Entries, st.Bytes, st.Misses, st.Fills, 100*st.HitRate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tHITS\tHIT RATE")
	for _, l := range st.Layers {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\n", l.Layer, l.Hits, 100*l.HitRate)
	}
	fmt.Fprintln(tw, "\nTABLE\tTTL\t")
	tables := make([]string, 0, len(st.Tables))
	for t := range st.Tables {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		fmt.Fprintf(tw, "%s\t%s\t\n", t, st.Tables[t])
	}
	return tw.Flush()
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// newCacheFlushCmd returns `shardctl cache flush`.
func newCacheFlushCmd(o *globalOptions) *cobra.Command {
	var table string
	var customer int64
	cmd := &cobra.Command{
		Use:   "flush",
		Short: "Make cached replies unreachable on every node: all, a table's, or a customer's",
		Long: "Flush bumps generations, so every node stops using the replies built before: with no\n" +
			"flag, everything; with --table, that table's; with --customer, that customer's (of\n" +
			"--table only, when given). Nothing is deleted: the old entries expire with their TTL.",
		Example: "  shardctl cache flush --table invoices\n  shardctl cache flush --customer 42",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req admin.CacheFlushRequest
			req.Table = table
			if cmd.Flags().Changed("customer") {
				req.Customer = &customer
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			res, err := c.FlushCache(cmd.Context(), req)
			if err != nil {
				return o.explain(c, err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "flushed %s (%d generations bumped)\n", res.Scope, res.Generations)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "table", "", "flush only this table's replies")
	f.Int64Var(&customer, "customer", 0, "flush only this customer's replies (shard-key value)")
	return cmd
}
