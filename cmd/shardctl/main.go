// Command shardctl is the operator CLI of a shardwire cluster. It talks to any node's admin
// API (--admin or SHARDWIRE_ADMIN): status shows the members, the backends and the 16-shard
// map; map prints the shard map; group add and group remove change the groups of the map.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes shardctl with args, writing to stdout and stderr, and returns the exit code:
// 0 on success, 1 after printing "shardctl: <reason>" on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		_, _ = fmt.Fprintln(stderr, "shardctl:", err)
		return 1
	}
	return 0
}
