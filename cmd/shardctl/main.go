// Command shardctl is the operator CLI for a shardwire cluster. For now it only prints its
// version; status, map, group add, move and rebalance come with the shard map.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	root := &cobra.Command{
		Use:           "shardctl",
		Short:         "shardctl operates a shardwire cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(buildinfo.Command("shardctl", version))
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "shardctl:", err)
		os.Exit(1)
	}
}
