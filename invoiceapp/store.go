package invoiceapp

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// StoreOptions configures a Store.
type StoreOptions struct {
	// Now is the clock; nil means time.Now. "Today" (issue-date defaults, overdue) is its UTC
	// calendar day.
	Now func() time.Time
	// Log receives the store's log lines; nil discards them.
	Log *zap.Logger
}

// Store runs the invoice platform's operations on a DB. It is safe for concurrent use.
type Store struct {
	db  DB
	now func() time.Time
	log *zap.Logger

	mu         sync.Mutex
	partitions map[string]bool // partitions known to exist, by name
}

// NewStore returns a Store over db (one pool on the proxy's DSN).
func NewStore(db DB, opts StoreOptions) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	return &Store{db: db, now: opts.Now, log: opts.Log, partitions: make(map[string]bool)}
}

// today returns the current UTC calendar day.
func (s *Store) today() Date { return DateOf(s.now()) }
