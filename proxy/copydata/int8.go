package copydata

import "math"

// int8Result says how parsing an int8 went.
type int8Result uint8

const (
	int8OK int8Result = iota
	int8Syntax
	int8Range
)

// parseInt8 reads v as Postgres's int8in (pg_strtoint64) does: surrounding whitespace, an
// optional sign, then decimal digits, or 0x/0o/0b and hex/octal/binary digits, with single
// underscores between digits. The prefixes and underscores are Postgres 16's; Postgres 15
// rejects them, and then the row fails there, so taking them here routes no row wrongly.
func parseInt8(v []byte) (int64, int8Result) {
	p := 0
	for p < len(v) && isSpace(v[p]) {
		p++
	}
	neg := false
	if p < len(v) && (v[p] == '-' || v[p] == '+') {
		neg = v[p] == '-'
		p++
	}
	base := uint64(10)
	if p+1 < len(v) && v[p] == '0' {
		switch v[p+1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 10 {
			p += 2
		}
	}
	// limit is the largest magnitude that may still take another digit.
	limit := uint64(-(math.MinInt64 / int64(base)))
	first := p
	var mag uint64
	for p < len(v) {
		c := v[p]
		if d, ok := digitValue(c, base); ok {
			if mag > limit {
				return 0, int8Range
			}
			mag = mag*base + d
			p++
			continue
		}
		if c != '_' {
			break
		}
		// An underscore may not come first in decimal, and must be followed by a digit.
		if base == 10 && p == first {
			return 0, int8Syntax
		}
		p++
		if p >= len(v) {
			return 0, int8Syntax
		}
		if _, ok := digitValue(v[p], base); !ok {
			return 0, int8Syntax
		}
	}
	if p == first {
		return 0, int8Syntax
	}
	for p < len(v) && isSpace(v[p]) {
		p++
	}
	if p != len(v) {
		return 0, int8Syntax
	}
	if neg {
		if mag > uint64(math.MaxInt64)+1 {
			return 0, int8Range
		}
		return int64(-mag), int8OK
	}
	if mag > math.MaxInt64 {
		return 0, int8Range
	}
	return int64(mag), int8OK
}

// digitValue returns the value of digit c in base.
func digitValue(c byte, base uint64) (uint64, bool) {
	var d uint64
	switch {
	case c >= '0' && c <= '9':
		d = uint64(c - '0')
	case c >= 'a' && c <= 'f':
		d = uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		d = uint64(c-'A') + 10
	default:
		return 0, false
	}
	return d, d < base
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}
