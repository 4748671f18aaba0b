package router

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// clockCache is a bounded, set-associative cache with CLOCK eviction inside each set. Lookups
// take no lock: they load the entries of one set atomically and set an entry's reference bit
// on a hit. Insertions lock one of a fixed number of stripes; the victim is the first way
// of the set whose reference bit is clear, clearing bits on the way (a second chance).
// Entries are immutable once stored, except for the reference bit.
type clockCache[V any] struct {
	sets  []cacheSet[V]
	locks [cacheStripes]sync.Mutex
}

const (
	cacheWays    = 8
	cacheStripes = 64
)

type cacheSet[V any] struct {
	ways [cacheWays]atomic.Pointer[cacheEntry[V]]
	hand uint8 // next way the clock looks at; guarded by the set's stripe lock
}

// cacheEntry is one cached value with the hash it was stored under.
type cacheEntry[V any] struct {
	hash uint64
	ref  atomic.Bool
	val  V
}

// touch marks the entry as recently used.
func (e *cacheEntry[V]) touch() {
	if !e.ref.Load() {
		e.ref.Store(true)
	}
}

// newClockCache returns a cache holding about size entries (at least one set).
func newClockCache[V any](size int) *clockCache[V] {
	n := (size + cacheWays - 1) / cacheWays
	if n < 1 {
		n = 1
	}
	return &clockCache[V]{sets: make([]cacheSet[V], n)}
}

// setIndex maps a hash to a set, by the high bits of hash*len(sets).
func (c *clockCache[V]) setIndex(hash uint64) uint64 {
	hi, _ := bits.Mul64(hash, uint64(len(c.sets)))
	return hi
}

// set returns the set a hash lives in; the caller scans its ways for entries with the hash.
func (c *clockCache[V]) set(hash uint64) *cacheSet[V] { return &c.sets[c.setIndex(hash)] }

// put stores v under hash. It replaces an entry of the same hash for which superseded
// returns true (when superseded is set), else takes an empty way, else evicts by CLOCK.
func (c *clockCache[V]) put(hash uint64, v V, superseded func(old V) bool) {
	idx := c.setIndex(hash)
	mu := &c.locks[idx%cacheStripes]
	mu.Lock()
	defer mu.Unlock()
	s := &c.sets[idx]
	e := &cacheEntry[V]{hash: hash, val: v}
	free := -1
	for i := range s.ways {
		old := s.ways[i].Load()
		if old == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		if superseded != nil && old.hash == hash && superseded(old.val) {
			s.ways[i].Store(e)
			return
		}
	}
	if free >= 0 {
		s.ways[free].Store(e)
		return
	}
	// Two sweeps clear every bit; readers may set them again meanwhile, so stop there.
	for n := 0; n < 2*cacheWays; n++ {
		i := s.hand % cacheWays
		s.hand++
		if old := s.ways[i].Load(); old.ref.Load() {
			old.ref.Store(false)
			continue
		}
		s.ways[i].Store(e)
		return
	}
	s.ways[s.hand%cacheWays].Store(e)
	s.hand++
}

// len counts the entries (for tests).
func (c *clockCache[V]) len() int {
	n := 0
	for i := range c.sets {
		for w := range c.sets[i].ways {
			if c.sets[i].ways[w].Load() != nil {
				n++
			}
		}
	}
	return n
}
