package shardmap

import (
	"math"
	"sync/atomic"
	"time"
)

// Lease says whether a node may still route by its shard map: the map is usable for TTL after
// the node last confirmed, by reading the catalog, that it holds the catalog's current epoch.
// Watch renews it (WatchOptions.Lease); the proxy asks Valid before routing a statement and
// refuses routed work with a retryable error while it is not.
//
// A nil *Lease is always valid: it is the lease of a standalone node, which has no catalog and
// whose configured map is the whole truth. Renew on a nil *Lease does nothing.
//
// Times are measured on the monotonic clock, so wall-clock steps neither extend nor cut a
// lease. A Lease is safe for concurrent use; Valid takes no lock and allocates nothing.
type Lease struct {
	ttl  time.Duration
	base time.Time // carries a monotonic reading; the origin of expiry

	// expiry is the end of the lease in nanoseconds since base, neverRenewed before the first
	// Renew. It only grows.
	expiry atomic.Int64
}

// neverRenewed is Lease.expiry before the first renewal: earlier than any instant, so the
// lease is not valid.
const neverRenewed = math.MinInt64

// NewLease returns a lease of the given time to live that has never been renewed (so it is not
// valid until the first Renew). ttl must be positive: NewLease panics otherwise, as
// time.NewTicker does, since a lease that can never be valid is a programming error (the
// configuration rejects it first).
func NewLease(ttl time.Duration) *Lease {
	if ttl <= 0 {
		panic("shardmap: NewLease: ttl must be positive")
	}
	l := &Lease{ttl: ttl, base: time.Now()}
	l.expiry.Store(neverRenewed)
	return l
}

// Renew extends the lease to at+TTL, where at is when the caller started the catalog read
// that confirmed the map (the start, not the end, so that the lease never outlives what was
// confirmed by more than TTL). A renewal never moves the lease backwards: an at earlier than
// the last renewal's does nothing. An at in the future counts as now; a zero at does nothing.
// Give at a time from time.Now (it carries a monotonic reading); a time without one is
// compared by the wall clock.
func (l *Lease) Renew(at time.Time) {
	if l == nil || at.IsZero() {
		return
	}
	now := time.Since(l.base)
	offset := at.Sub(l.base)
	if offset > now {
		offset = now
	}
	next := int64(offset + l.ttl)
	for {
		cur := l.expiry.Load()
		if next <= cur || l.expiry.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Valid reports whether the lease is in force: it was renewed, and less than TTL has passed
// since that renewal. It is one atomic load and one monotonic clock read, meant for the proxy's
// per-statement path. A nil *Lease is always valid.
func (l *Lease) Valid() bool {
	if l == nil {
		return true
	}
	return int64(time.Since(l.base)) < l.expiry.Load()
}

// LeaseStatus is a snapshot of a lease, for the admin API, gossip metadata and metrics.
type LeaseStatus struct {
	// Valid is what Valid returned at the snapshot.
	Valid bool `json:"valid"`
	// TTL is the lease's time to live; 0 for the nil lease of a standalone node.
	TTL time.Duration `json:"ttl"`
	// Age is the time since the last renewal or, when the lease was never renewed, since it
	// was created. 0 for the nil lease.
	Age time.Duration `json:"age"`
	// RenewedAt is the time of the last renewal (the start of the confirming catalog read),
	// zero when the lease was never renewed and for the nil lease.
	RenewedAt time.Time `json:"renewed_at"`
}

// Status returns a snapshot of the lease. For a nil *Lease it is {Valid: true} and zero
// otherwise.
func (l *Lease) Status() LeaseStatus {
	if l == nil {
		return LeaseStatus{Valid: true}
	}
	now := time.Since(l.base)
	expiry := l.expiry.Load()
	st := LeaseStatus{Valid: int64(now) < expiry, TTL: l.ttl, Age: now}
	if expiry != neverRenewed {
		renewed := time.Duration(expiry) - l.ttl
		st.Age = now - renewed
		st.RenewedAt = l.base.Add(renewed)
	}
	return st
}

// TTL returns the lease's time to live; 0 for a nil *Lease.
func (l *Lease) TTL() time.Duration {
	if l == nil {
		return 0
	}
	return l.ttl
}
