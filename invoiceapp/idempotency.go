package invoiceapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MaxIdempotencyKeyLen is the longest Idempotency-Key accepted.
const MaxIdempotencyKeyLen = 255

// IdempotencyKey names one logical request: the client's key and a fingerprint of the
// request (method, path and body), so that reusing a key for another request is caught.
type IdempotencyKey struct {
	Key         string
	Fingerprint [sha256.Size]byte
}

// NewIdempotencyKey checks key (1-255 visible ASCII characters) and fingerprints the request.
// The error is a KindInvalid *Error about the "Idempotency-Key" header.
func NewIdempotencyKey(key, method, path string, body []byte) (*IdempotencyKey, error) {
	if len(key) == 0 || len(key) > MaxIdempotencyKeyLen {
		return nil, invalid(CodeInvalidValue, "Idempotency-Key", "must be 1 to %d characters", MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return nil, invalid(CodeInvalidValue, "Idempotency-Key", "must be visible ASCII characters only")
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", method, path)
	h.Write(body)
	k := &IdempotencyKey{Key: key}
	h.Sum(k.Fingerprint[:0])
	return k, nil
}

// errKeyReused says that a key was used before for another request.
func errKeyReused() *Error {
	return &Error{Kind: KindKeyReused, Code: CodeKeyReused,
		Message: "this Idempotency-Key was used for a different request; use a new key"}
}

// Do runs op in one transaction on customerID's shard group, for a customer that must exist
// (else a KindNotFound error). With a key it first claims the key in that transaction:
//
//   - a key seen before with the same fingerprint returns the stored response (Replayed set)
//     and runs nothing; with another fingerprint it fails with KindKeyReused;
//   - a key another transaction is claiming right now makes Do wait until that transaction
//     ends (Postgres blocks the insert on the unique key), then replay its response or, if it
//     rolled back, claim the key itself;
//   - otherwise op runs and its response is stored with the key before the commit, so the
//     write and its response commit together or not at all.
//
// op returns the success response or an error; on error nothing is written or stored, so the
// same key may be retried. Every statement op runs must name customerID.
func (s *Store) Do(ctx context.Context, customerID int64, key *IdempotencyKey, op func(context.Context, pgx.Tx) (Response, error)) (Response, error) {
	return s.do(ctx, customerID, key, true, op)
}

// do is Do; with mustExist false it is for creating the customer, which must not exist yet
// (else a KindConflict error) unless the request is a replay.
func (s *Store) do(ctx context.Context, customerID int64, key *IdempotencyKey, mustExist bool, op func(context.Context, pgx.Tx) (Response, error)) (Response, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return Response{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // no-op after Commit
	exists, err := pinCustomer(ctx, tx, customerID)
	if err != nil {
		return Response{}, err
	}
	if key != nil {
		stored, found, err := claimKey(ctx, tx, customerID, key)
		if err != nil {
			return Response{}, err
		}
		if found {
			return stored, nil
		}
	}
	switch {
	case mustExist && !exists:
		return Response{}, errCustomerNotFound(customerID)
	case !mustExist && exists:
		return Response{}, conflict(CodeCustomerExists, "customer %d already exists", customerID)
	}
	resp, err := op(ctx, tx)
	if err != nil {
		return Response{}, err
	}
	if key != nil {
		if _, err := tx.Exec(ctx, `UPDATE idempotency_keys SET status = $3, response = $4, location = $5
WHERE customer_id = $1 AND idem_key = $2`, customerID, key.Key, resp.Status, resp.Body, resp.Location); err != nil {
			return Response{}, fmt.Errorf("store idempotent response: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Response{}, fmt.Errorf("commit: %w", err)
	}
	return resp, nil
}

// pinCustomer is the first statement of every write transaction: it routes the transaction to
// customerID's shard group (shardwire pins a transaction to the group of its first routed
// statement; preparing it inside BEGIN does not) and tells whether the customer exists.
func pinCustomer(ctx context.Context, tx pgx.Tx, customerID int64) (bool, error) {
	var exists bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = $1)`,
		customerID).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("look up customer %d: %w", customerID, err)
	}
	return exists, nil
}

// claimKey inserts key's row, or returns the response stored under it (found).
func claimKey(ctx context.Context, tx pgx.Tx, customerID int64, key *IdempotencyKey) (Response, bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (customer_id, idem_key, fingerprint) VALUES ($1, $2, $3)
ON CONFLICT (customer_id, idem_key) DO NOTHING`, customerID, key.Key, key.Fingerprint[:])
	if err != nil {
		return Response{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return Response{}, false, nil
	}
	// The key exists and its transaction has committed (the insert waited for it). A new
	// statement sees it under READ COMMITTED.
	var (
		fp   []byte
		resp = Response{Replayed: true}
	)
	err = tx.QueryRow(ctx, `SELECT fingerprint, status, response, location FROM idempotency_keys
WHERE customer_id = $1 AND idem_key = $2`, customerID, key.Key).Scan(&fp, &resp.Status, &resp.Body, &resp.Location)
	if errors.Is(err, pgx.ErrNoRows) {
		// Pruned between the two statements: the key is older than the retention period.
		return Response{}, false, fmt.Errorf("idempotency key %q vanished while being read; retry", key.Key)
	}
	if err != nil {
		return Response{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	if !bytes.Equal(fp, key.Fingerprint[:]) {
		return Response{}, false, errKeyReused()
	}
	return resp, true, nil
}

// PruneIdempotencyKeys deletes idempotency records created more than olderThan ago, shard by
// shard (a keyless DELETE on a sharded table is refused by the proxy, so each statement
// carries a shard_key hint and is restricted to that shard's customers). It returns how many
// it deleted.
func PruneIdempotencyKeys(ctx context.Context, db DB, olderThan time.Duration) (int64, error) {
	var total int64
	cutoff := time.Now().Add(-olderThan)
	for shard := 0; shard < shardCount; shard++ {
		tag, err := db.Exec(ctx, fmt.Sprintf(`/* shard_key=%d */ DELETE FROM idempotency_keys
WHERE customer_id %% %d = %d AND created_at < $1`, shard, shardCount, shard), cutoff)
		if err != nil {
			return total, fmt.Errorf("prune idempotency keys of shard %d: %w", shard, err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}

// shardCount is the number of logical shards shardwire spreads customers over.
const shardCount = 16
