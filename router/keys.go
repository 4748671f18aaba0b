package router

import (
	"encoding/binary"
	"math"

	"github.com/shardwire/shardwire/shardmap"
)

// A statement's shard keys are kept as a small tree (keyNode) over leaves. A leaf is one key
// predicate or insert column: `customer_id = v`, `customer_id IN (v1, v2)`, `= ANY(array)`,
// or the key values of every row an INSERT writes. Its values are found at plan time — in
// literal tokens of the text, in bound parameters, or fixed in the statement — and folded into
// a leafAcc: the union of their shards and, while they are few, the values themselves, or a
// flag saying a value is not an integer, is NULL, or cannot be known (a parameter in a simple
// query).

// leafAcc accumulates the values of one key leaf.
type leafAcc struct {
	set   shardmap.ShardSet
	flags uint8
	keys  KeySet // the distinct values, unless accMany
}

const (
	accNull    uint8 = 1 << iota // a value is NULL
	accBad                       // a value is not an integer
	accUnknown                   // a value cannot be known here
	accMany                      // more than MaxExactKeys distinct values: keys is incomplete
)

func (a *leafAcc) addInt(v int64) {
	a.set = a.set.Add(shardmap.ShardOf(v))
	if a.flags&accMany == 0 && !a.keys.add(v) {
		a.flags |= accMany
	}
}

// merge folds in the values and flags of o.
func (a *leafAcc) merge(o leafAcc) {
	a.set |= o.set
	a.flags |= o.flags
	if a.flags&accMany != 0 {
		return
	}
	if !a.keys.unionWith(&o.keys) {
		a.flags |= accMany
	}
}

// addNumber folds in a numeric literal token's text, negated when neg is set.
func (a *leafAcc) addNumber(text string, neg bool) {
	v, ok := parseIntToken(text, neg)
	if !ok {
		a.flags |= accBad
		return
	}
	a.addInt(v)
}

// textBytes is text held in a string or a byte slice (a bound parameter), so that both
// parse without a conversion that would allocate.
type textBytes interface{ ~string | ~[]byte }

// addText folds in a value in Postgres' text form of an integer.
func addText[T textBytes](a *leafAcc, text T, neg bool) {
	v, ok := parseIntText(text, neg)
	if !ok {
		a.flags |= accBad
		return
	}
	a.addInt(v)
}

// addBinary folds in a binary int2, int4 or int8 parameter.
func (a *leafAcc) addBinary(b []byte) {
	switch len(b) {
	case 2:
		a.addInt(int64(int16(binary.BigEndian.Uint16(b))))
	case 4:
		a.addInt(int64(int32(binary.BigEndian.Uint32(b))))
	case 8:
		a.addInt(int64(binary.BigEndian.Uint64(b)))
	default:
		a.flags |= accBad
	}
}

// addArrayText folds in every element of an array in text form ('{1,2,3}').
func addArrayText[T textBytes](a *leafAcc, s T) {
	i := 0
	// Optional dimension decoration: [1:3]={1,2,3}.
	if i < len(s) && s[i] == '[' {
		for i < len(s) && s[i] != '=' {
			i++
		}
		i++
	}
	for i < len(s) && isArraySpace(s[i]) {
		i++
	}
	if i >= len(s) || s[i] != '{' {
		a.flags |= accBad
		return
	}
	depth := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '{':
			depth++
			i++
		case c == '}':
			depth--
			i++
			if depth == 0 {
				for i < len(s) && isArraySpace(s[i]) {
					i++
				}
				if i != len(s) {
					a.flags |= accBad
				}
				return
			}
		case c == ',' || isArraySpace(c):
			i++
		case depth == 0:
			a.flags |= accBad
			return
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' { // an escape cannot be part of an integer
					a.flags |= accBad
					return
				}
				j++
			}
			if j >= len(s) {
				a.flags |= accBad
				return
			}
			addText(a, s[i+1:j], false)
			i = j + 1
		default:
			j := i
			for j < len(s) && s[j] != ',' && s[j] != '}' && s[j] != '{' && s[j] != '"' && !isArraySpace(s[j]) {
				j++
			}
			if isNullWord(s[i:j]) {
				a.flags |= accNull
			} else {
				addText(a, s[i:j], false)
			}
			i = j
		}
	}
	a.flags |= accBad // unbalanced braces
}

// isNullWord reports whether s is NULL in any case.
func isNullWord[T textBytes](s T) bool {
	return len(s) == 4 && s[0]|0x20 == 'n' && s[1]|0x20 == 'u' && s[2]|0x20 == 'l' && s[3]|0x20 == 'l'
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// addArrayBinary folds in every element of an array in binary form: ndim, has-null flag,
// element type, per dimension its length and lower bound, then each element as a length
// (-1 for NULL) and its bytes.
func (a *leafAcc) addArrayBinary(b []byte) {
	if len(b) < 12 {
		a.flags |= accBad
		return
	}
	ndim := int32(binary.BigEndian.Uint32(b))
	if ndim < 0 || ndim > 6 {
		a.flags |= accBad
		return
	}
	b = b[12:]
	n := int64(1)
	if ndim == 0 {
		n = 0
	}
	for d := int32(0); d < ndim; d++ {
		if len(b) < 8 {
			a.flags |= accBad
			return
		}
		dl := int32(binary.BigEndian.Uint32(b))
		if dl < 0 {
			a.flags |= accBad
			return
		}
		n *= int64(dl)
		if n > math.MaxInt32 {
			a.flags |= accBad
			return
		}
		b = b[8:]
	}
	for ; n > 0; n-- {
		if len(b) < 4 {
			a.flags |= accBad
			return
		}
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l == -1 {
			a.flags |= accNull
			continue
		}
		if l < 0 || int(l) > len(b) {
			a.flags |= accBad
			return
		}
		a.addBinary(b[:l])
		b = b[l:]
	}
	if len(b) != 0 {
		a.flags |= accBad
	}
}

// parseIntToken parses a numeric literal token as Postgres 16+ does for integers: decimal,
// 0x/0o/0b prefixed, with single underscores between digits. neg negates the value (the
// parser folds a leading '-' into the constant).
func parseIntToken[T textBytes](s T, neg bool) (int64, bool) {
	base := uint64(10)
	if len(s) > 2 && s[0] == '0' {
		switch s[1] {
		case 'x', 'X':
			base, s = 16, s[2:]
		case 'o', 'O':
			base, s = 8, s[2:]
		case 'b', 'B':
			base, s = 2, s[2:]
		}
		if base != 10 && len(s) > 1 && s[0] == '_' {
			s = s[1:] // 0x_ff: an underscore may follow the prefix
		}
	}
	if len(s) == 0 || s[0] == '_' || s[len(s)-1] == '_' {
		return 0, false
	}
	var u uint64
	prevUnderscore := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			if prevUnderscore {
				return 0, false
			}
			prevUnderscore = true
			continue
		}
		prevUnderscore = false
		hv := hexVal(c)
		if hv < 0 || uint64(hv) >= base {
			return 0, false
		}
		d := uint64(hv)
		if u > (math.MaxUint64-d)/base {
			return 0, false
		}
		u = u*base + d
	}
	return signed(u, neg)
}

// parseIntText parses an integer in text form the way int8in does: optional surrounding
// whitespace, an optional sign, then digits as in parseIntToken. neg negates the result.
func parseIntText[T textBytes](s T, neg bool) (int64, bool) {
	for len(s) > 0 && isArraySpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isArraySpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		if s[0] == '-' {
			neg = !neg
		}
		s = s[1:]
	}
	if len(s) == 0 || !isDigit(s[0]) {
		return 0, false
	}
	return parseIntToken(s, neg)
}

// parseIntParam parses a text-format parameter: base-10 digits with an optional sign and
// surrounding whitespace.
func parseIntParam(b []byte) (int64, bool) {
	i, j := 0, len(b)
	for i < j && isArraySpace(b[i]) {
		i++
	}
	for j > i && isArraySpace(b[j-1]) {
		j--
	}
	neg := false
	if i < j && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	if i >= j {
		return 0, false
	}
	var u uint64
	for ; i < j; i++ {
		c := b[i]
		if !isDigit(c) {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	return signed(u, neg)
}

func signed(u uint64, neg bool) (int64, bool) {
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// keyOp is the operation of a keyNode.
type keyOp uint8

const (
	keyLeaf keyOp = iota // the leaf's values
	keyOr                // an OR whose every branch has a key: the union; unknown if any is
	keyAnd               // an AND: the intersection of its known children
	keyAny               // independent parts of a statement: the union of the known ones
)

// keyNode is one node of a statement's key tree.
type keyNode struct {
	op   keyOp
	leaf int32   // keyLeaf: index in template.leaves
	kids []int32 // the other ops: indexes in template.nodes
}

// keyState is what a key (sub)tree evaluates to.
type keyState uint8

const (
	keyUnknown keyState = iota // no usable key
	keyKnown                   // the shards in the set
	keyBad                     // a key value is not an integer (or NULL): reject
)

// evalKey evaluates node i of nodes over the leaves' accumulated values. For keyBad, bad is
// the leaf at fault.
func evalKey(nodes []keyNode, acc []leafAcc, i int32) (set shardmap.ShardSet, st keyState, bad int32) {
	n := &nodes[i]
	switch n.op {
	case keyLeaf:
		a := acc[n.leaf]
		switch {
		case a.flags&(accNull|accBad) != 0:
			return 0, keyBad, n.leaf
		case a.flags&accUnknown != 0 || a.set.Empty():
			return 0, keyUnknown, -1
		}
		return a.set, keyKnown, -1
	case keyOr:
		var union shardmap.ShardSet
		unknown := false
		for _, k := range n.kids {
			s, st, b := evalKey(nodes, acc, k)
			switch st {
			case keyBad:
				return 0, keyBad, b
			case keyUnknown:
				unknown = true
			}
			union |= s
		}
		if unknown {
			return 0, keyUnknown, -1
		}
		return union, keyKnown, -1
	default: // keyAnd, keyAny
		var union shardmap.ShardSet
		inter := shardmap.AllShards
		known := false
		for _, k := range n.kids {
			s, st, b := evalKey(nodes, acc, k)
			switch st {
			case keyBad:
				return 0, keyBad, b
			case keyKnown:
				known = true
				union |= s
				inter &= s
			}
		}
		if !known {
			return 0, keyUnknown, -1
		}
		if n.op == keyAnd && !inter.Empty() {
			return inter, keyKnown, -1
		}
		// keyAny, or contradictory conjuncts (no row can match them all): every shard a
		// known part names.
		return union, keyKnown, -1
	}
}
