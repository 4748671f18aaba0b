package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/internal/buildinfo"
)

// Where the admin address comes from when --admin is not given.
const (
	envAdmin     = "SHARDWIRE_ADMIN"
	defaultAdmin = "127.0.0.1:9930"
)

// defaultTimeout bounds each admin API request unless --timeout says otherwise.
const defaultTimeout = admin.DefaultClientTimeout

// globalOptions are the flags every command shares.
type globalOptions struct {
	admin   string
	timeout time.Duration
	// adminSource says where admin came from: "--admin", envAdmin or "the default".
	adminSource string
}

// newRootCmd returns the shardctl command tree. It reads SHARDWIRE_ADMIN when called.
func newRootCmd() *cobra.Command {
	o := &globalOptions{}
	root := &cobra.Command{
		Use:   "shardctl",
		Short: "shardctl operates a shardwire cluster through a node's admin API",
		Long: "shardctl operates a shardwire cluster. It talks to the admin API of any one node\n" +
			"(--admin, else $" + envAdmin + ", else " + defaultAdmin + "); every node answers for the cluster.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def, source := defaultAdmin, "the default"
	if env := os.Getenv(envAdmin); env != "" {
		def, source = env, envAdmin
	}
	flags := root.PersistentFlags()
	flags.StringVar(&o.admin, "admin", def, "admin address of any node, host:port or http(s)://host:port (env "+envAdmin+")")
	flags.DurationVar(&o.timeout, "timeout", defaultTimeout, "time limit of each admin API request")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		o.adminSource = source
		if cmd.Flags().Changed("admin") {
			o.adminSource = "--admin"
		}
		if o.timeout <= 0 {
			return fmt.Errorf("--timeout %v: want a positive duration", o.timeout)
		}
		return nil
	}
	root.AddCommand(
		newStatusCmd(o),
		newMapCmd(o),
		newGroupCmd(o),
		newCacheCmd(o),
		newTransactionsCmd(o),
		newMoveCmd(o),
		newMovesCmd(o),
		newCleanupCmd(o),
		newRebalanceCmd(o),
		buildinfo.Command("shardctl", version),
	)
	return root
}

// client returns an admin API client for --admin.
func (o *globalOptions) client() (*admin.Client, error) {
	c, err := admin.NewClient(o.admin, &http.Client{Timeout: o.timeout})
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, o.adminSource)
	}
	return c, nil
}
