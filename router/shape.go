package router

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// A statement's shape is its token sequence with every literal (number, string, dollar
// string) replaced by a placeholder of its class. Statements of one shape parse to the same
// tree except for the literals' values, so what the parser taught about one of them — kind,
// tables, where the keys are — holds for all, and the cache is keyed by shape.
//
// A shape is encoded token by token: a header byte (token kind, a "joined" bit when the
// token touches the previous one, a literal bit), then for a literal its class byte, for any
// other token its length (uvarint) and bytes. Whitespace and comments are dropped, except
// that the joined bit keeps "<=" apart from "< =". Identifiers keep their case.

const (
	headJoined  = 0x10
	headLit     = 0x20
	headNewline = 0x40 // a string follows a string across a newline: the parser joins them
	headOpen    = 0x80 // on EOF: the text ends inside a /* comment
)

// shapeLexer walks SQL text token by token, as the shape sees it.
type shapeLexer struct {
	lexer
	n        int     // tokens returned so far
	prevKind tokKind // kind of the previous token
}

// nextShape returns the next token, where the gap of whitespace and comments before it
// starts, the token's shape header and, for a literal, its class (else 0).
func (l *shapeLexer) nextShape() (t token, gap int, head, class byte) {
	gap = l.pos
	t = l.next()
	head = byte(t.kind)
	if t.start == gap && l.n > 0 {
		head |= headJoined
	}
	if class = literalClass(l.s, t); class != 0 {
		head |= headLit
	}
	if t.kind == tokEOF && unterminatedComment(l.s[gap:]) {
		head |= headOpen
	}
	if t.kind == tokString && l.prevKind == tokString && continuesString(l.s[gap:t.start]) {
		head |= headNewline
	}
	l.n++
	l.prevKind = t.kind
	return t, gap, head, class
}

// continuesString reports whether two string literals separated by gap are one to the
// parser: the gap has a newline before anything but spaces and tabs, and no /* comment.
func continuesString(gap string) bool {
	i := 0
	for i < len(gap) && (gap[i] == ' ' || gap[i] == '\t' || gap[i] == '\f') {
		i++
	}
	if i >= len(gap) || gap[i] != '\n' && gap[i] != '\r' {
		return false
	}
	return !strings.Contains(gap[i:], "/*")
}

// unterminatedComment reports whether gap, whitespace and comments up to the end of the
// text, ends inside a /* comment (which the lexer skips to the end without a word).
func unterminatedComment(gap string) bool {
	if !strings.Contains(gap, "/*") {
		return false
	}
	for i := 0; i < len(gap); {
		switch {
		case gap[i] == '-' && i+1 < len(gap) && gap[i+1] == '-':
			k := strings.IndexAny(gap[i:], "\n\r")
			if k < 0 {
				return false
			}
			i += k + 1
		case gap[i] == '/' && i+1 < len(gap) && gap[i+1] == '*':
			depth := 1
			for i += 2; depth > 0; {
				switch {
				case i >= len(gap):
					return true
				case gap[i] == '/' && i+1 < len(gap) && gap[i+1] == '*':
					depth++
					i += 2
				case gap[i] == '*' && i+1 < len(gap) && gap[i+1] == '/':
					depth--
					i += 2
				default:
					i++
				}
			}
		default:
			i++
		}
	}
	return false
}

// literalClass returns the placeholder class of a literal token, or 0 for a token that stays
// in the shape verbatim. Classes follow the parser's token types, so that strings of one shape
// parse alike: 'i' an integer that fits int4 (ICONST), 'I' a larger integer and 'f' a decimal
// or real (FCONST), 's' a string, 'e' an E'...' string, 'b' and 'x' bit strings, 'n' a national
// string, 'd' a dollar-quoted string. Malformed literals (trailing junk, bad escapes,
// unterminated quotes) and U&'...' strings are not placeholders: they stay verbatim, so they can
// share no template with well-formed ones.
func literalClass(s string, t token) byte {
	if t.bad {
		return 0
	}
	switch t.kind {
	case tokNumber:
		return numberClass(s[t.start:t.end])
	case tokDollar, tokString:
		// The parser (its protobuf form) takes only UTF-8 text.
		if !utf8.ValidString(s[t.start:t.end]) {
			return 0
		}
	}
	switch t.kind {
	case tokDollar:
		return 'd'
	case tokString:
		switch s[t.start] {
		case '\'':
			return 's'
		case 'e', 'E':
			if _, ok := unescapeE(s[t.start+2 : t.end-1]); !ok {
				return 0
			}
			return 'e'
		case 'b', 'B':
			return 'b'
		case 'x', 'X':
			return 'x'
		case 'n', 'N':
			return 'n'
		}
	}
	return 0
}

// numberClass classifies a number token as the Postgres scanner would read it: 'i', 'I' or
// 'f' (see literalClass), or 0 when it is not one well-formed number.
func numberClass(s string) byte {
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			if n := digitRun(s[2:], base, true); n == 0 || n != len(s)-2 {
				return 0
			}
			return intClass(s)
		}
	}
	n := digitRun(s, 10, false)
	if n == len(s) {
		return intClass(s)
	}
	i := n
	if s[i] == '.' {
		i++
		i += digitRun(s[i:], 10, false)
		if i == 1 { // a lone '.'
			return 0
		}
	} else if n == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		// An exponent with a sign is split by the lexer ("1e" "-" "5"): keep it verbatim.
		e := digitRun(s[i+1:], 10, false)
		if e == 0 {
			return 0
		}
		i += 1 + e
	}
	if i != len(s) {
		return 0
	}
	return 'f'
}

// digitRun returns the length of the run of digits of base at the start of s, with single
// underscores between digits (and, when leadingUnderscore is set, one before the first).
func digitRun(s string, base int, leadingUnderscore bool) int {
	n, last := 0, 0
	for n < len(s) {
		c := s[n]
		if c == '_' {
			if n+1 >= len(s) || (n == 0 && !leadingUnderscore) || (n > 0 && s[n-1] == '_') {
				break
			}
			n++
			continue
		}
		if v := hexVal(c); v < 0 || v >= base {
			break
		}
		n++
		last = n
	}
	return last
}

// intClass is 'i' for an integer literal that fits int4, else 'I'.
func intClass(s string) byte {
	if v, ok := parseIntToken(s, false); ok && v <= 1<<31-1 {
		return 'i'
	}
	return 'I'
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// lexedToken is a token as nextShape returned it, kept so that a second pass over the same
// text need not lex it again.
type lexedToken struct {
	token
	gap         int
	head, class byte
}

// tokenSource yields the shape tokens of a text: from a buffer filled by shapeHash when the
// text fit in it, else by lexing again.
type tokenSource struct {
	l   shapeLexer
	buf []lexedToken // every token up to and including EOF, or nil
	i   int
}

func newTokenSource(sql string, buf []lexedToken) tokenSource {
	return tokenSource{l: shapeLexer{lexer: lexer{s: sql}}, buf: buf}
}

func (s *tokenSource) next() (t token, gap int, head, class byte) {
	if s.buf == nil {
		return s.l.nextShape()
	}
	lt := &s.buf[s.i]
	if s.i < len(s.buf)-1 {
		s.i++
	}
	return lt.token, lt.gap, lt.head, lt.class
}

// shapeHash returns the hash of sql's shape. When buf has room for all of sql's tokens, it
// keeps them there and returns them; else it returns nil.
func shapeHash(sql string, buf []lexedToken) (uint64, []lexedToken) {
	l := shapeLexer{lexer: lexer{s: sql}}
	h := uint64(fnvOffset)
	buf = buf[:0]
	for {
		t, gap, head, class := l.nextShape()
		if buf != nil {
			if len(buf) < cap(buf) {
				buf = append(buf, lexedToken{token: t, gap: gap, head: head, class: class})
			} else {
				buf = nil
			}
		}
		if t.kind == tokEOF {
			h = (h ^ uint64(head)) * fnvPrime
			// A final mix spreads FNV's weak high bits, which pick the cache set.
			h ^= h >> 33
			h *= 0xff51afd7ed558ccd
			h ^= h >> 33
			return h, buf
		}
		h = (h ^ uint64(head)) * fnvPrime
		if class != 0 {
			h = (h ^ uint64(class)) * fnvPrime
			continue
		}
		h = (h ^ uint64(t.end-t.start)) * fnvPrime
		for i := t.start; i < t.end; i++ {
			h = (h ^ uint64(sql[i])) * fnvPrime
		}
	}
}

// shapeToken is one token of a statement seen while building its template.
type shapeToken struct {
	token
	lit int32 // index among the literal tokens, or -1
}

// tokenize returns sql's tokens and its encoded shape.
func tokenize(sql string) (toks []shapeToken, shape string) {
	l := shapeLexer{lexer: lexer{s: sql}}
	var enc []byte
	var lits int32
	for {
		t, _, head, class := l.nextShape()
		if t.kind == tokEOF {
			if head&headOpen != 0 {
				enc = append(enc, head)
			}
			return toks, string(enc)
		}
		st := shapeToken{token: t, lit: -1}
		enc = append(enc, head)
		if class != 0 {
			st.lit = lits
			lits++
			enc = append(enc, class)
		} else {
			enc = binary.AppendUvarint(enc, uint64(t.end-t.start))
			enc = append(enc, sql[t.start:t.end]...)
		}
		toks = append(toks, st)
	}
}
