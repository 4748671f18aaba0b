package move

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATEs this package acts on.
const (
	codeLockNotAvailable = "55P03" // lock_timeout expired
	codeDeadlock         = "40P01" // deadlock_detected
	codeObjectInUse      = "55006" // a replication slot is active
	codeUndefinedObject  = "42704" // e.g. the replication slot does not exist
	codeDuplicateObject  = "42710" // e.g. the publication already exists
)

// pgState returns the SQLSTATE of a Postgres error, or "".
func pgState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// lockConflict reports whether err is a lock wait that gave up (lock_timeout) or a
// deadlock: the transaction did nothing and may be tried again.
func lockConflict(err error) bool {
	switch pgState(err) {
	case codeLockNotAvailable, codeDeadlock:
		return true
	}
	return false
}

// Back-off between attempts to take locks.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = time.Second
)

// backoff returns the wait after the given failed attempt (1 for the first): 50ms,
// doubling, at most 1s.
func backoff(attempt int) time.Duration {
	d := firstBackoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}
