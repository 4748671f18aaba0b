package cache

import (
	"math/rand/v2"
	"sync"
)

// localGens holds the generations of a node that runs alone without Redis. A counter is
// created at a random value on first use; when more than limit are held, arbitrary ones
// are forgotten, which is safe: a forgotten counter comes back at a new random value, so
// keys built from its old value are never built again.
//
// All methods are safe for concurrent use.
type localGens struct {
	limit int

	mu sync.Mutex
	m  map[string]GenValue
}

func newLocalGens(limit int) *localGens {
	return &localGens{limit: limit, m: make(map[string]GenValue)}
}

// get appends the values of keys to dst, creating missing counters.
func (l *localGens) get(keys []string, dst []GenValue) []GenValue {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		dst = append(dst, l.getLocked(k))
	}
	return dst
}

// bump advances every key (distinct) as bumpScript does and appends the new values to dst.
// conditional skips a key that records group at lsn or later.
func (l *localGens) bump(keys []string, group string, lsn uint64, conditional bool, dst []GenValue) []GenValue {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		v := l.getLocked(k)
		if conditional && lsn != 0 && v.Group == group && v.LSN >= lsn {
			dst = append(dst, v)
			continue
		}
		g, at := mergeBump(v.Group, v.LSN, group, lsn)
		v = GenValue{V: v.V + 1, Group: g, LSN: at}
		l.m[k] = v
		dst = append(dst, v)
	}
	return dst
}

func (l *localGens) getLocked(k string) GenValue {
	if v, ok := l.m[k]; ok {
		return v
	}
	if len(l.m) >= l.limit {
		for old := range l.m {
			delete(l.m, old)
			if len(l.m) < l.limit*7/8 {
				break
			}
		}
	}
	v := GenValue{V: randomStart()}
	l.m[k] = v
	return v
}

// size returns how many counters are held.
func (l *localGens) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// randomStart returns a random 62-bit start value for a new counter: far from overflow
// and, with overwhelming probability, never a value an earlier counter of the same name
// had.
func randomStart() uint64 { return rand.Uint64() >> 2 }
