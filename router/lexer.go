package router

import (
	"strings"
	"unicode/utf8"
)

// tokKind is the class of one lexical token.
type tokKind uint8

const (
	tokEOF    tokKind = iota
	tokSemi           // ';'
	tokIdent          // unquoted identifier or keyword
	tokQIdent         // "quoted identifier", also U&"..."
	tokString         // '...', E'...', N'...', B'...', X'...', U&'...'
	tokDollar         // $tag$...$tag$
	tokNumber         // numeric literal
	tokParam          // $1
	tokOp             // any other single character: ( ) , . = + ...
)

// token is one lexical token, by its byte offsets into the lexed text, so that lexing never
// allocates. bad marks an unterminated quoted token.
type token struct {
	kind       tokKind
	bad        bool
	start, end int
}

// lexer splits SQL text into tokens the way the Postgres scanner does, as far as the session
// analyzer needs: it skips whitespace and comments and knows every quoting form, so that
// nothing inside a literal, a quoted identifier or a comment is ever taken for a keyword or a
// statement boundary. It assumes standard_conforming_strings=on (the default since 9.1): in
// a plain '...' literal a backslash is an ordinary character.
type lexer struct {
	s   string
	pos int
}

// next returns the next token; at the end of the text it returns tokEOF, again and again.
func (l *lexer) next() token {
	l.skipSpace()
	s, i := l.s, l.pos
	if i >= len(s) {
		return token{kind: tokEOF, start: len(s), end: len(s)}
	}
	c := s[i]
	var t token
	switch {
	case c == ';':
		t = token{kind: tokSemi, start: i, end: i + 1}
	case c == '\'':
		t = l.quoted(i, i+1, '\'', false, tokString)
	case c == '"':
		t = l.quoted(i, i+1, '"', false, tokQIdent)
	case c == '$':
		t = l.dollar(i)
	case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
		j := i + 1
		for j < len(s) && (isIdentCont(s[j]) || s[j] == '.') && s[j] != '$' {
			j++
		}
		t = token{kind: tokNumber, start: i, end: j}
	case isIdentStart(c):
		t = l.word(i)
	default:
		t = token{kind: tokOp, start: i, end: i + 1}
	}
	l.pos = t.end
	return t
}

// word lexes an identifier or keyword starting at i, or a prefixed literal (E'...', B'...',
// X'...', N'...', U&'...', U&"...").
func (l *lexer) word(i int) token {
	s := l.s
	if i+1 < len(s) && s[i+1] == '\'' {
		switch s[i] {
		case 'e', 'E':
			return l.quoted(i, i+2, '\'', true, tokString)
		case 'n', 'N':
			return l.quoted(i, i+2, '\'', false, tokString)
		case 'b', 'B', 'x', 'X':
			// A bit string ends at its first quote: Postgres does not read a doubled quote
			// inside one (B'''' is B'' followed by another literal).
			for j := i + 2; j < len(s); j++ {
				if s[j] == '\'' {
					return token{kind: tokString, start: i, end: j + 1}
				}
			}
			return token{kind: tokString, bad: true, start: i, end: len(s)}
		}
	}
	if (s[i] == 'u' || s[i] == 'U') && i+2 < len(s) && s[i+1] == '&' {
		switch s[i+2] {
		case '\'':
			return l.quoted(i, i+3, '\'', false, tokString)
		case '"':
			return l.quoted(i, i+3, '"', false, tokQIdent)
		}
	}
	j := i + 1
	for j < len(s) && isIdentCont(s[j]) {
		j++
	}
	return token{kind: tokIdent, start: i, end: j}
}

// quoted lexes a quoted token whose body starts at body and ends at the first q not doubled
// (nor, when backslash is set, escaped by a backslash).
func (l *lexer) quoted(start, body int, q byte, backslash bool, kind tokKind) token {
	s := l.s
	for j := body; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return token{kind: kind, start: start, end: j + 1}
		}
	}
	return token{kind: kind, bad: true, start: start, end: len(s)}
}

// dollar lexes at a '$': a parameter ($1), a dollar-quoted string ($$...$$, $tag$...$tag$),
// or a lone '$' operator character.
func (l *lexer) dollar(i int) token {
	s := l.s
	j := i + 1
	if j < len(s) && isDigit(s[j]) {
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return token{kind: tokParam, start: i, end: j}
	}
	for j < len(s) && isIdentCont(s[j]) && s[j] != '$' {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return token{kind: tokOp, start: i, end: i + 1}
	}
	tag := s[i : j+1]
	k := strings.Index(s[j+1:], tag)
	if k < 0 {
		return token{kind: tokDollar, bad: true, start: i, end: len(s)}
	}
	return token{kind: tokDollar, start: i, end: j + 1 + k + len(tag)}
}

// skipSpace skips whitespace, -- line comments and (nested) /* block comments */.
func (l *lexer) skipSpace() {
	s, i := l.s, l.pos
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			// A -- comment ends at a newline or a carriage return, as in the server.
			k := strings.IndexAny(s[i:], "\n\r")
			if k < 0 {
				i = len(s)
			} else {
				i += k + 1
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			depth := 1
			i += 2
			for i < len(s) && depth > 0 {
				switch {
				case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
					depth++
					i += 2
				case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
					depth--
					i += 2
				default:
					i++
				}
			}
		default:
			l.pos = i
			return
		}
	}
	l.pos = i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// eqFold reports whether s equals the lower-case ASCII word w, ignoring ASCII case.
func eqFold(s, w string) bool {
	if len(s) != len(w) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases ASCII letters, as Postgres does for unquoted identifiers; it returns
// s itself, without allocating, when s has no upper-case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// identText returns the name an identifier token denotes: unquoted ones lower-cased, quoted
// ones with "" undone. ok is false for an unterminated or Unicode-escaped (U&"") identifier.
func identText(s string, t token) (name string, ok bool) {
	switch {
	case t.kind == tokIdent:
		return lowerASCII(s[t.start:t.end]), true
	case t.kind == tokQIdent && !t.bad && s[t.start] == '"':
		return strings.ReplaceAll(s[t.start+1:t.end-1], `""`, `"`), true
	}
	return "", false
}

// stringText returns the value of a string literal token. ok is false for tokens that are not
// character string literals or whose value this lexer does not decode (unterminated, bit
// strings, U&'...' strings).
func stringText(s string, t token) (val string, ok bool) {
	if t.bad {
		return "", false
	}
	switch t.kind {
	case tokDollar:
		k := strings.IndexByte(s[t.start+1:], '$') + t.start + 2 // just past the opening tag
		return s[k : t.end-(k-t.start)], true
	case tokString:
	default:
		return "", false
	}
	switch s[t.start] {
	case '\'':
		return strings.ReplaceAll(s[t.start+1:t.end-1], "''", "'"), true
	case 'n', 'N':
		return strings.ReplaceAll(s[t.start+2:t.end-1], "''", "'"), true
	case 'e', 'E':
		return unescapeE(s[t.start+2 : t.end-1])
	}
	return "", false
}

// unescapeE decodes the body of an E'...' literal. ok is false for an escape that Postgres
// would reject or that yields an invalid or NUL character.
func unescapeE(b string) (string, bool) {
	if strings.IndexByte(b, '\\') < 0 {
		return strings.ReplaceAll(b, "''", "'"), true
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\'' { // a doubled quote; the lexer guarantees the second one
			out = append(out, '\'')
			i++
			continue
		}
		if c != '\\' || i+1 >= len(b) {
			out = append(out, c)
			continue
		}
		i++
		switch c = b[i]; c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x', 'u', 'U':
			digits := 2
			if c == 'u' {
				digits = 4
			} else if c == 'U' {
				digits = 8
			}
			v, n := 0, 0
			for n < digits && i+1 < len(b) && hexVal(b[i+1]) >= 0 {
				v = v<<4 | hexVal(b[i+1])
				i++
				n++
			}
			if n == 0 || (c != 'x' && n != digits) {
				return "", false
			}
			if c == 'x' {
				out = append(out, byte(v))
			} else {
				if v == 0 || !utf8.ValidRune(rune(v)) {
					return "", false
				}
				out = utf8.AppendRune(out, rune(v))
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for n := 1; n < 3 && i+1 < len(b) && b[i+1] >= '0' && b[i+1] <= '7'; n++ {
				v = v<<3 | int(b[i+1]-'0')
				i++
			}
			out = append(out, byte(v))
		default:
			out = append(out, c)
		}
	}
	if strings.IndexByte(string(out), 0) >= 0 || !utf8.Valid(out) {
		return "", false
	}
	return string(out), true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
