// Package ctxwait waits for a duration or a context, whichever ends first.
package ctxwait

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends; it returns ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
