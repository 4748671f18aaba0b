package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

const (
	// localShards is the number of independently locked parts of a
	// localStore, so that concurrent requests rarely contend.
	localShards = 64
	// localSweepEvery is how often (on the limiter's clock) a shard drops
	// the keys whose buckets are full again.
	localSweepEvery = time.Minute
)

// localStore is the in-process GCRA used when Redis is unavailable: the same
// two limits and arithmetic as the Redis script, over this process's
// requests only. Safe for concurrent use.
type localStore struct {
	seed   maphash.Seed
	shards [localShards]localShard
}

// localShard holds the state of the keys that hash to it.
type localShard struct {
	mu        sync.Mutex
	tats      map[string]tatPair
	lastSweep int64 // µs; when the shard was last swept
}

// tatPair is one key's theoretical arrival times, µs since the Unix epoch.
type tatPair struct{ minute, hour int64 }

// newLocalStore returns an empty store.
func newLocalStore() *localStore {
	s := &localStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].tats = make(map[string]tatPair)
	}
	return s
}

// allow decides one request for key at now (µs) and records it if admitted.
func (s *localStore) allow(key string, lim limits, now int64) Decision {
	sh := &s.shards[maphash.String(s.seed, key)%localShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now-sh.lastSweep >= localSweepEvery.Microseconds() {
		sh.sweep(now)
	}
	st := sh.tats[key]
	m := lim.minute.check(st.minute, now)
	h := lim.hour.check(st.hour, now)
	if m.ok && h.ok {
		sh.tats[key] = tatPair{minute: m.tat, hour: h.tat}
	}
	return decide(lim, m, h, true)
}

// sweep drops keys whose buckets are both full at now: forgetting them
// changes no decision. Called with sh.mu held.
func (sh *localShard) sweep(now int64) {
	for k, st := range sh.tats {
		if st.minute <= now && st.hour <= now {
			delete(sh.tats, k)
		}
	}
	sh.lastSweep = now
}

// len returns the number of keys held, for tests.
func (s *localStore) len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].tats)
		s.shards[i].mu.Unlock()
	}
	return n
}
