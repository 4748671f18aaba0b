// Command shardwire runs a shardwire proxy node (serve) or a whole local cluster on real
// Postgres (dev).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/shardwire/shardwire/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	if err := newRootCmd().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "shardwire:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "shardwire",
		Short:         "shardwire is a Postgres wire-protocol proxy with transaction pooling",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newDevCmd(), buildinfo.Command("shardwire", version))
	return root
}
