package cdc

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// lockCheckInterval is how often the leader checks the connection holding its lock.
	lockCheckInterval = time.Second
	// lockCheckTimeout bounds one check; a writer that does not answer within it is
	// treated as lost.
	lockCheckTimeout = 3 * time.Second
)

// tryLock tries to take the session advisory lock key on conn without waiting.
func tryLock(ctx context.Context, conn *pgconn.PgConn, key int64) (bool, error) {
	v, err := queryValue(ctx, conn, "SELECT pg_try_advisory_lock($1::bigint)", strconv.FormatInt(key, 10))
	if err != nil {
		return false, fmt.Errorf("try advisory lock: %w", err)
	}
	return v == "t", nil
}

// watchLock checks conn, which holds the leader's lock, every lockCheckInterval until ctx
// ends; when a check fails the lock may be gone, and it cancels the term with the reason.
// Every syncEvery (0: never) it runs sync on conn instead of the plain check (the
// publication follows tables created and dropped meanwhile). It is the only user of conn
// while it runs.
func watchLock(ctx context.Context, conn *pgconn.PgConn, cancel context.CancelCauseFunc, syncEvery time.Duration,
	sync func(context.Context) error) {
	t := time.NewTicker(min(lockCheckInterval, max(syncEvery, 10*time.Millisecond)))
	defer t.Stop()
	lastSync, lastCheck := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		checkCtx, done := context.WithTimeout(ctx, lockCheckTimeout)
		var err error
		switch {
		case syncEvery > 0 && time.Since(lastSync) >= syncEvery:
			err, lastSync, lastCheck = sync(checkCtx), time.Now(), time.Now()
		case time.Since(lastCheck) >= lockCheckInterval:
			_, err = conn.Exec(checkCtx, "SELECT 1").ReadAll()
			lastCheck = time.Now()
		}
		done()
		if err != nil {
			if ctx.Err() == nil {
				cancel(fmt.Errorf("connection holding the leader lock failed: %w", err))
			}
			return
		}
	}
}
