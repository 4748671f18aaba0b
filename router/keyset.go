package router

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// MaxExactKeys is the most shard-key values a KeySet holds.
const MaxExactKeys = 4

// KeySet is a small set of shard-key values: at most MaxExactKeys distinct values, in
// ascending order. A Plan's Keys is exact when the statement's rows are provably restricted to
// these values (see Plan.Keys); the zero value is "not exact". It is a fixed-size value: copying
// it, and planning one, allocates nothing.
type KeySet struct {
	n    uint8
	vals [MaxExactKeys]int64
}

// NewKeySet returns the set of vals (duplicates folded). ok is false, with the zero set, when
// vals holds no value or more than MaxExactKeys distinct ones.
func NewKeySet(vals ...int64) (k KeySet, ok bool) {
	for _, v := range vals {
		if !k.add(v) {
			return KeySet{}, false
		}
	}
	return k, k.n > 0
}

// Exact reports whether the set holds the values the statement's rows are restricted to.
func (k KeySet) Exact() bool { return k.n > 0 }

// Len returns the number of values (0 when not exact).
func (k KeySet) Len() int { return int(k.n) }

// At returns value i, 0 <= i < Len(), in ascending order. It panics when i is out of range.
func (k KeySet) At(i int) int64 { return k.vals[:k.n][i] }

// Contains reports whether v is in the set.
func (k KeySet) Contains(v int64) bool {
	_, found := k.search(v)
	return found
}

// AppendTo appends the values, in ascending order, to dst.
func (k KeySet) AppendTo(dst []int64) []int64 { return append(dst, k.vals[:k.n]...) }

// String prints the values, e.g. "[3 19]", or "[]" when not exact.
func (k KeySet) String() string {
	b := []byte{'['}
	for i := 0; i < int(k.n); i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, k.vals[i], 10)
	}
	return string(append(b, ']'))
}

// IsZero reports whether the set is not exact (for the omitzero JSON option).
func (k KeySet) IsZero() bool { return k.n == 0 }

// MarshalJSON writes the values as a JSON array.
func (k KeySet) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i := 0; i < int(k.n); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, k.vals[i], 10)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads a JSON array of at most MaxExactKeys integers (null or [] is not exact).
func (k *KeySet) UnmarshalJSON(b []byte) error {
	var vals []int64
	if err := json.Unmarshal(b, &vals); err != nil {
		return fmt.Errorf("router: key set: %w", err)
	}
	if len(vals) == 0 {
		*k = KeySet{}
		return nil
	}
	s, ok := NewKeySet(vals...)
	if !ok {
		return fmt.Errorf("router: key set %s: more than %d distinct values", b, MaxExactKeys)
	}
	*k = s
	return nil
}

// search returns where v is or would be inserted in the sorted values, and whether it is
// there. The set is small: a linear scan beats a binary search.
func (k *KeySet) search(v int64) (int, bool) {
	for i := 0; i < int(k.n); i++ {
		if k.vals[i] >= v {
			return i, k.vals[i] == v
		}
	}
	return int(k.n), false
}

// add inserts v, keeping the values sorted and distinct. It returns false, leaving the set as
// it was, when v is new and the set is full.
func (k *KeySet) add(v int64) bool {
	i, found := k.search(v)
	if found {
		return true
	}
	if int(k.n) == MaxExactKeys {
		return false
	}
	for j := int(k.n); j > i; j-- {
		k.vals[j] = k.vals[j-1]
	}
	k.vals[i] = v
	k.n++
	return true
}

// unionWith adds the values of o to k. It returns false, leaving k undefined, when they are
// more than MaxExactKeys.
func (k *KeySet) unionWith(o *KeySet) bool {
	if k.n == 0 {
		*k = *o
		return true
	}
	for i := 0; i < int(o.n); i++ {
		if !k.add(o.vals[i]) {
			return false
		}
	}
	return true
}

// intersectWith keeps in k only the values o holds too.
func (k *KeySet) intersectWith(o *KeySet) {
	n := uint8(0)
	for i := 0; i < int(k.n); i++ {
		if o.Contains(k.vals[i]) {
			k.vals[n] = k.vals[i]
			n++
		}
	}
	for i := n; i < k.n; i++ {
		k.vals[i] = 0 // keep the zero value canonical: equal sets compare equal
	}
	k.n = n
}
