package twopc

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// leaderLockKey returns the session advisory lock key whose holder is the recovery leader
// of the catalog in schema. It hashes a text of its own, so it differs from the shard map
// catalog's lock key for the same schema (which hashes "shardwire shard map catalog "
// and the schema name) and from the key of any other schema.
func leaderLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("shardwire two-phase commit recovery " + schema))
	return int64(h.Sum64())
}

// lead makes sure of this node's leadership and reports whether it holds it. The leader
// holds a session advisory lock on a dedicated catalog connection; when that connection
// is lost, so is the leadership (the server releases the lock with the session), and the
// node competes again from the next call on, on a new connection. The caller holds passMu.
func (r *Recovery) lead(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if r.leading {
		held, err := r.holdsLock(ctx)
		if err == nil && held {
			return true, nil
		}
		r.resign()
		r.log.Warn("lost the two-phase recovery leadership", zap.Error(err))
		if err != nil {
			return false, fmt.Errorf("check leadership: %w", err)
		}
		return false, nil
	}
	if r.leaderConn != nil && r.leaderConn.IsClosed() {
		r.resign()
	}
	if r.leaderConn == nil {
		cfg := r.dlog.connConfig()
		cfg.RuntimeParams["application_name"] = "shardwire-twopc-recovery"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return false, fmt.Errorf("connect to the catalog: %w", err)
		}
		r.leaderConn = conn
	}
	var got bool
	if err := r.leaderConn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", r.lockKey).Scan(&got); err != nil {
		r.resign()
		return false, fmt.Errorf("take the leader lock: %w", err)
	}
	if got {
		r.leading = true
		r.metrics.leader.Set(1)
		r.log.Info("took the two-phase recovery leadership")
	}
	return got, nil
}

// holdsLock reports whether the leader connection is alive and still holds the leader
// lock. The caller holds passMu.
func (r *Recovery) holdsLock(ctx context.Context) (bool, error) {
	if r.leaderConn == nil || r.leaderConn.IsClosed() {
		return false, fmt.Errorf("the leader connection is closed")
	}
	key := uint64(r.lockKey)
	var held bool
	err := r.leaderConn.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_locks
		   WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
		     AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)`,
		int64(key>>32), int64(key&0xffffffff)).Scan(&held)
	return held, err
}

// resign closes the leader connection, which releases the leader lock if held. The caller
// holds passMu.
func (r *Recovery) resign() {
	if r.leaderConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
		_ = r.leaderConn.Close(ctx)
		cancel()
		r.leaderConn = nil
	}
	if r.leading {
		r.leading = false
		r.metrics.inDoubt.Set(0)
	}
	r.metrics.leader.Set(0)
}
