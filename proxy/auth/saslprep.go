package auth

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
)

// saslPrep normalizes a password for SCRAM key derivation the way Postgres's
// pg_saslprep does (RFC 4013), and like Postgres falls back to the raw bytes
// when the password is not valid UTF-8 or does not survive SASLprep (so any
// password still works, it just is not normalized). ASCII passwords are used
// as they are.
//
// Unlike Postgres it judges "unassigned code point" by Go's Unicode tables
// rather than Unicode 3.2, so a password using a character assigned after
// 3.2 is normalized here but used raw by Postgres; such a verifier would not
// match one made by Postgres. Plain passwords in the proxy's own config are
// unaffected, since both sides of the exchange use this function.
func saslPrep(password string) string {
	ascii := true
	for i := 0; i < len(password); i++ {
		if password[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii || !utf8.ValidString(password) {
		return password
	}

	// Mapping: non-ASCII spaces to SPACE (C.1.2), and the characters
	// "commonly mapped to nothing" (B.1) removed.
	var b strings.Builder
	for _, r := range password {
		switch {
		case inRanges(r, nonASCIISpace):
			b.WriteByte(' ')
		case inRanges(r, mappedToNothing):
		default:
			b.WriteRune(r)
		}
	}
	mapped := norm.NFKC.String(b.String())
	if mapped == "" {
		return password
	}

	hasRandAL, hasL := false, false
	for _, r := range mapped {
		if inRanges(r, prohibited) || unassigned(r) {
			return password
		}
		p, _ := bidi.LookupRune(r)
		switch p.Class() {
		case bidi.R, bidi.AL:
			hasRandAL = true
		case bidi.L:
			hasL = true
		}
	}
	if hasRandAL {
		// RFC 3454 section 6: no LCat, and RandALCat first and last.
		first, _ := utf8.DecodeRuneInString(mapped)
		last, _ := utf8.DecodeLastRuneInString(mapped)
		if hasL || !isRandAL(first) || !isRandAL(last) {
			return password
		}
	}
	return mapped
}

func isRandAL(r rune) bool {
	p, _ := bidi.LookupRune(r)
	return p.Class() == bidi.R || p.Class() == bidi.AL
}

func unassigned(r rune) bool {
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

type runeRange struct{ lo, hi rune }

func inRanges(r rune, table []runeRange) bool {
	for _, rr := range table {
		if r >= rr.lo && r <= rr.hi {
			return true
		}
	}
	return false
}

// RFC 3454 C.1.2.
var nonASCIISpace = []runeRange{
	{0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200B},
	{0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
}

// RFC 3454 B.1.
var mappedToNothing = []runeRange{
	{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x1806, 0x1806}, {0x180B, 0x180D},
	{0x200B, 0x200D}, {0x2060, 0x2060}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
}

// RFC 4013 section 2.3: RFC 3454 C.1.2, C.2.1, C.2.2, C.3 to C.9.
var prohibited = []runeRange{
	{0x0000, 0x001F}, {0x007F, 0x009F}, {0x00A0, 0x00A0}, {0x0340, 0x0341},
	{0x06DD, 0x06DD}, {0x070F, 0x070F}, {0x1680, 0x1680}, {0x180E, 0x180E},
	{0x2000, 0x200F}, {0x2028, 0x202F}, {0x205F, 0x2063}, {0x206A, 0x206F},
	{0x2FF0, 0x2FFB}, {0x3000, 0x3000}, {0xD800, 0xF8FF}, {0xFDD0, 0xFDEF},
	{0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFF}, {0x1D173, 0x1D17A},
	{0x1FFFE, 0x1FFFF}, {0x2FFFE, 0x2FFFF}, {0x3FFFE, 0x3FFFF},
	{0x4FFFE, 0x4FFFF}, {0x5FFFE, 0x5FFFF}, {0x6FFFE, 0x6FFFF},
	{0x7FFFE, 0x7FFFF}, {0x8FFFE, 0x8FFFF}, {0x9FFFE, 0x9FFFF},
	{0xAFFFE, 0xAFFFF}, {0xBFFFE, 0xBFFFF}, {0xCFFFE, 0xCFFFF},
	{0xDFFFE, 0xDFFFF}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
	{0xEFFFE, 0x10FFFF},
}
