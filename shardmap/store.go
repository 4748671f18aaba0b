package shardmap

import (
	"sync"
	"sync/atomic"
)

// Store holds a node's current map. Readers call Current, which takes no lock; a new map
// arrives through Set, which only ever moves the store forward.
//
// The Store holds maps exactly as given: it neither fills in nor carries over Tables (maps
// loaded from the catalog have none). Whoever needs Tables resolves them (ResolveTables) and
// Sets the resolved map, or keeps its own resolution keyed by epoch.
//
// A Store is safe for concurrent use.
type Store struct {
	cur atomic.Pointer[Map]

	// mu serializes Set, Subscribe and unsubscribing, so that subscribers see maps one at a
	// time, in the order they were set.
	mu      sync.Mutex
	subs    map[uint64]func(*Map)
	nextSub uint64
	changed chan struct{} // closed by the next successful Set
}

// NewStore returns a store holding initial, which may be nil (Current returns nil until the
// first Set) or the bootstrap map of epoch 0.
func NewStore(initial *Map) *Store {
	s := &Store{subs: make(map[uint64]func(*Map)), changed: make(chan struct{})}
	s.cur.Store(initial)
	return s
}

// Current returns the current map. The map is shared and must not be modified.
func (s *Store) Current() *Map { return s.cur.Load() }

// Set makes m the current map when it moves the store forward: when m's Epoch is higher than
// the current map's, or when the store holds no map or a map of epoch 0 (the bootstrap map
// from the configuration, which any map replaces). It reports whether m was taken; a nil map
// never is. The store keeps m itself, which must not be modified afterwards.
//
// When m is taken, Set closes the channel Changed returned and then calls every subscriber
// with m, in the calling goroutine, before it returns.
func (s *Store) Set(m *Map) bool {
	if m == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.cur.Load(); cur != nil && cur.Epoch != 0 && m.Epoch <= cur.Epoch {
		return false
	}
	s.cur.Store(m)
	close(s.changed)
	s.changed = make(chan struct{})
	for _, fn := range s.subs {
		fn(m)
	}
	return true
}

// Changed returns a channel that is closed when the next map is set after this call. The way
// to follow the store without missing a map is: ch := Changed(); read Current(); act; wait on
// ch; repeat.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Subscribe registers fn to be called with every map set from now on, and returns a function
// that unregisters it (idempotent). fn is not called with the map current at subscription
// time: subscribe first, then read Current, to miss nothing.
//
// Concurrency contract: fn runs synchronously inside Set, in the goroutine that called Set,
// with the store's lock held. Calls never overlap and come in ascending epoch order (an
// epoch-0 map aside). fn must not block and must not call Set, Subscribe, Changed or an
// unsubscribe function (that deadlocks); Current is fine and returns the map fn was given.
// The order in which several subscribers are called is unspecified.
func (s *Store) Subscribe(fn func(*Map)) (unsubscribe func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, id)
	}
}
