package devcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// clearStaleData removes the Postgres data a previous, stopped dev cluster left in dir, and
// refuses when a server still runs from it. The dev cluster's data is not meant to outlive it.
func clearStaleData(dir string) error {
	pids, _ := filepath.Glob(filepath.Join(dir, "*", "postmaster.pid"))
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("a Postgres server (pid %d) still runs from %s: stop the other dev cluster first", pid, filepath.Dir(f))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove stale data in %s: %w", dir, err)
	}
	return nil
}
