package migrations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease timings: a holder that dies keeps others waiting at most leaseTTL.
const (
	leaseTTL      = 2 * time.Minute
	leasePollWait = 200 * time.Millisecond
)

// lease is this process's hold on schema_migrations_lock.
type lease struct {
	db     DB
	holder string
}

// acquire waits until it holds the migration lease (or ctx ends).
func acquire(ctx context.Context, db DB) (*lease, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lease holder id: %w", err)
	}
	l := &lease{db: db, holder: hex.EncodeToString(b[:])}
	for {
		ok, err := l.take(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the migration lease: %w", ctx.Err())
		case <-time.After(leasePollWait):
		}
	}
}

// take takes the lease when it is free, expired or already ours, extending it by leaseTTL.
func (l *lease) take(ctx context.Context) (bool, error) {
	var holder string
	err := l.db.QueryRow(ctx, `INSERT INTO schema_migrations_lock (id, holder, expires_at)
VALUES (1, $1, now() + make_interval(secs => $2))
ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE schema_migrations_lock.expires_at < now() OR schema_migrations_lock.holder = EXCLUDED.holder
RETURNING holder`, l.holder, leaseTTL.Seconds()).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take the migration lease: %w", err)
	}
	return true, nil
}

// renew extends the lease; losing it (it expired and another process took it) is an error.
func (l *lease) renew(ctx context.Context) error {
	ok, err := l.take(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("lost the migration lease to another process")
	}
	return nil
}

// release gives the lease up.
func (l *lease) release(ctx context.Context) error {
	if _, err := l.db.Exec(ctx, `DELETE FROM schema_migrations_lock WHERE id = 1 AND holder = $1`, l.holder); err != nil {
		return fmt.Errorf("release the migration lease: %w", err)
	}
	return nil
}
