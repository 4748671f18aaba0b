package cache

import (
	"sync"
	"time"
)

// genMemory is this node's short-lived copy of generation values read from (or written
// to) Redis. A value is served for at most ttl after the operation that produced it
// started; a pub/sub message naming a key replaces its value with a tombstone, and a
// clear forgets everything.
//
// Operations that read Redis take a sequence number (begin) before they send their
// request and store their results with it: a result is dropped when the key was
// invalidated, or memory cleared, after the operation began, because the message that did
// it may describe a bump newer than the result. Among values, the larger counter wins:
// within one Redis epoch a counter only grows. A result from a new epoch (Redis lost its
// data) drops the values held, and the results of operations begun before it, first.
//
// All methods are safe for concurrent use.
type genMemory struct {
	ttl     time.Duration // how long a value is served
	tombTTL time.Duration // how long a tombstone is kept (longer than any operation)

	mu       sync.Mutex
	on       bool   // served only while the pub/sub subscription is live
	seq      uint64 // advances on every change
	clearSeq uint64 // seq of the last clear
	epoch    string // the Redis epoch the values belong to; "" before the first result
	m        map[string]memEntry
}

// memEntry is one key's value or tombstone.
type memEntry struct {
	val  GenValue
	at   time.Time // value: when the operation that produced it began; tombstone: when set
	seq  uint64
	tomb bool
}

func newGenMemory(ttl, tombTTL time.Duration) *genMemory {
	return &genMemory{ttl: ttl, tombTTL: max(ttl, tombTTL), m: make(map[string]memEntry)}
}

// lookup fills dst[i] for every keys[i] held fresh at now, appends the indexes of the
// others to missing, and returns the sequence number to pass to store with their values.
func (m *genMemory) lookup(keys []string, dst []GenValue, now time.Time, missing []int) (uint64, []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, k := range keys {
		e, ok := m.m[k]
		if !m.on || !ok || e.tomb || now.Sub(e.at) >= m.ttl {
			missing = append(missing, i)
			continue
		}
		dst[i] = e.val
	}
	return m.seq, missing
}

// begin returns the sequence number an operation that does not look up first (a bump)
// passes to store.
func (m *genMemory) begin() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq
}

// store records vals (for keys) produced by an operation that began at seq0 and at time
// at, in Redis epoch epoch.
func (m *genMemory) store(keys []string, vals []GenValue, seq0 uint64, at time.Time, epoch string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on || seq0 < m.clearSeq {
		return
	}
	if epoch != m.epoch {
		// Redis lost its data (or this is the first result): the values held belong to
		// counters that no longer exist. Tombstones stay: they may be about the new ones.
		// Operations begun before the switch are dropped (they may carry the old epoch).
		for k, e := range m.m {
			if !e.tomb {
				delete(m.m, k)
			}
		}
		m.seq++
		m.clearSeq = m.seq
		m.epoch = epoch
	}
	for i, k := range keys {
		v := vals[i]
		if e, ok := m.m[k]; ok && e.seq > seq0 && (e.tomb || e.val.V >= v.V) {
			continue
		}
		m.seq++
		m.m[k] = memEntry{val: v, at: at, seq: m.seq}
	}
}

// invalidate replaces keys' values with tombstones.
func (m *genMemory) invalidate(keys []string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.seq++
		m.m[k] = memEntry{at: now, seq: m.seq, tomb: true}
	}
}

// clear forgets every value and fails every operation in flight.
func (m *genMemory) clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clearLocked()
}

func (m *genMemory) clearLocked() {
	m.seq++
	m.clearSeq = m.seq
	if len(m.m) > 0 {
		m.m = make(map[string]memEntry)
	}
}

// enable turns serving on (on = true, after a clear: the pub/sub subscription is live
// again) or off (and clears).
func (m *genMemory) enable(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clearLocked()
	m.on = on
}

// sweep removes values and tombstones too old to matter.
func (m *genMemory) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.m {
		if age := now.Sub(e.at); (e.tomb && age >= m.tombTTL) || (!e.tomb && age >= m.ttl) {
			delete(m.m, k)
		}
	}
}

// held returns how many values (not tombstones) are held, fresh or not yet swept.
func (m *genMemory) held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.m {
		if !e.tomb {
			n++
		}
	}
	return n
}
