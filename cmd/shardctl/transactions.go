package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/admin"
)

// newTransactionsCmd returns `shardctl transactions`: the two-phase transactions of the
// cluster, as the decision log and the groups' writers hold them.
func newTransactionsCmd(o *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "transactions",
		Short: "List two-phase transactions: decision records and prepared transactions in doubt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			st, err := c.Transactions(cmd.Context())
			if err != nil {
				return o.explain(c, err)
			}
			return writeTransactions(cmd.OutOrStdout(), st, time.Now())
		},
	}
}

// writeTransactions prints the two-phase transactions; ages are relative to now.
func writeTransactions(w io.Writer, st admin.TransactionsStatus, now time.Time) error {
	if !st.Enabled {
		_, err := fmt.Fprintf(w, "node %s: no database uses two_phase_commit\n", st.Node)
		return err
	}
	fmt.Fprintf(w, "node %s: %d decision record(s), %d prepared transaction(s) on the groups\n", st.Node, len(st.Records), len(st.InDoubt))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(st.Records) > 0 {
		fmt.Fprintln(tw, "GID\tSTATE\tCOORDINATOR\tDATABASE\tGROUPS\tAGE")
		for _, r := range st.Records {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.GID, r.State, r.Node, r.Database, strings.Join(r.Groups, ","), age(now, r.Created))
		}
	}
	if len(st.InDoubt) > 0 {
		if len(st.Records) > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "GROUP\tGID\tRECORD\tDATABASE\tOWNER\tPREPARED")
		for _, b := range st.InDoubt {
			state := b.State
			if state == "" {
				state = "none (presumed abort)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\n", b.Group, b.GID, state, b.Database, b.Owner, age(now, b.Prepared))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "warning: %s\n", e)
	}
	return nil
}

// age is how long ago t was, to the millisecond.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return now.Sub(t).Round(time.Millisecond).String()
}
