package invoiceapp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"
)

// Ids are unique across every shard group without sequences, so a shard's rows can move to
// another group without renumbering or colliding.
//
// Invoices and payments get UUIDv7 ids: 48 bits of Unix milliseconds then 74 random bits.
// That is time-ordered (index inserts stay at the right edge of the B-tree, and listing
// order among invoices issued on one day follows creation time) and needs no coordination
// between invoiced instances; a hand-rolled 64-bit id would have to trade random bits for
// node ids, which need assigning. Postgres stores them as uuid (16 bytes).
//
// Customer ids are the shard key, so they stay integers: chosen by the caller (the platform
// imports its customer numbers), else drawn at random from [MinGeneratedCustomerID,
// MaxGeneratedCustomerID) — random low bits spread new customers evenly over the 16 shards,
// where a time-ordered id would not. Generated ids stay below 2^52 so that JavaScript clients
// read them exactly. A collision is detected by the primary key (equal ids land in the same
// shard) and retried with a fresh id.

const (
	// MaxCustomerID is the largest customer id accepted: 2^53-1, the largest integer a JSON
	// number read as a float64 holds exactly.
	MaxCustomerID int64 = 1<<53 - 1
	// MinGeneratedCustomerID and MaxGeneratedCustomerID bound the ids the service chooses
	// itself; ids below the minimum are left to callers.
	MinGeneratedCustomerID int64 = 1 << 40
	// MaxGeneratedCustomerID is exclusive.
	MaxGeneratedCustomerID int64 = 1 << 52
)

// NewID returns a new UUIDv7 for an invoice or a payment.
func NewID() (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("new id: %w", err)
	}
	return id, nil
}

// RandomCustomerID returns a random id in [MinGeneratedCustomerID, MaxGeneratedCustomerID).
func RandomCustomerID() (int64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("random customer id: %w", err)
	}
	return generatedID(binary.BigEndian.Uint64(b[:])), nil
}

// CustomerIDForKey returns the id a customer created with Idempotency-Key key and no explicit
// id gets: the same for every retry with that key, so that the retry finds the first
// attempt's record in the same shard.
func CustomerIDForKey(key string) int64 {
	sum := sha256.Sum256([]byte("invoiced/customer-id/" + key))
	return generatedID(binary.BigEndian.Uint64(sum[:8]))
}

// generatedID maps 64 random bits into the generated id range.
func generatedID(v uint64) int64 {
	span := uint64(MaxGeneratedCustomerID - MinGeneratedCustomerID)
	return MinGeneratedCustomerID + int64(v%span)
}
