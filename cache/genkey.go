package cache

import (
	"encoding/hex"
	"fmt"
	"strconv"
)

// Redis names; doc.go describes the layout.
const (
	genPrefix    = "sw:{gen}:"
	epochKey     = genPrefix + "epoch"
	bumpChannel  = genPrefix + "bumped"
	entryPrefix  = "sw:e:"
	zeroLSNField = "0000000000000000"
)

// genKey returns the Redis key (and generation-memory key) of g.
func genKey(g Gen) (string, error) {
	b := make([]byte, 0, len(genPrefix)+len(g.DB)+len(g.Table)+len(g.Group)+24)
	b = append(b, genPrefix...)
	b = appendEscaped(b, g.DB)
	switch g.Kind {
	case GenCustomer, GenShard:
		if g.Kind == GenCustomer {
			b = append(b, ":c:"...)
		} else {
			b = append(b, ":s:"...)
		}
		b = appendEscaped(b, g.Table)
		b = append(b, ':')
		b = strconv.AppendInt(b, g.N, 10)
	case GenTable:
		b = append(b, ":t:"...)
		b = appendEscaped(b, g.Table)
		b = append(b, ':')
		b = appendEscaped(b, g.Group)
	case GenGlobal:
		b = append(b, ":g::"...)
	default:
		return "", fmt.Errorf("generation kind %d is unknown", g.Kind)
	}
	return string(b), nil
}

// genKeys appends the keys of gens to dst.
func genKeys(gens []Gen, dst []string) ([]string, error) {
	for _, g := range gens {
		k, err := genKey(g)
		if err != nil {
			return dst, err
		}
		dst = append(dst, k)
	}
	return dst, nil
}

// appendEscaped appends s with every byte that could make two keys alike, or a payload
// line ambiguous, percent-encoded.
func appendEscaped(dst []byte, s string) []byte {
	const digits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= ' ' || c >= 0x7f || c == ':' || c == '%' || c == '{' || c == '}':
			dst = append(dst, '%', digits[c>>4], digits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// entryKey returns the Redis key of an entry.
func entryKey(k Key) string {
	b := make([]byte, len(entryPrefix)+hex.EncodedLen(len(k)))
	copy(b, entryPrefix)
	hex.Encode(b[len(entryPrefix):], k[:])
	return string(b)
}

// formatLSN writes an LSN as the l field stores it: 16 hex digits, so that Lua compares
// LSNs as strings without losing precision.
func formatLSN(lsn uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[lsn&0xf]
		lsn >>= 4
	}
	return string(b[:])
}

// parseLSN reads an l field.
func parseLSN(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("lsn field %q: %w", s, err)
	}
	return v, nil
}

// UnknownLSN is the LSN a generation records after a write whose commit position is not
// known: no replica position reaches it, so only the writer fills under the counter — for
// good, since positions on one group only grow (max) and an unknown one may be the largest.
const UnknownLSN = ^uint64(0)

// mergeBump is the group and LSN a generation records after a bump by group at lsn when it
// was last bumped by oldGroup at oldLSN:
//   - group "" (a flush, not a write): the old ones stay;
//   - lsn 0 (a write at an unknown position) counts as UnknownLSN;
//   - on the same group the larger (the counter covers both writes, and bumps may race);
//   - on another group (the shard moved) the new one.
//
// The Lua bump script applies the same rule.
func mergeBump(oldGroup string, oldLSN uint64, group string, lsn uint64) (string, uint64) {
	if group == "" {
		return oldGroup, oldLSN
	}
	if lsn == 0 {
		lsn = UnknownLSN
	}
	if oldGroup != group {
		return group, lsn
	}
	return group, max(oldLSN, lsn)
}
