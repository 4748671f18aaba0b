package copydata

import (
	"bytes"
	"encoding/binary"
)

// This file splits a complete text or CSV line into fields as CopyReadAttributesText and
// CopyReadAttributesCSV in Postgres's copyfromparse.c do, far enough to find the shard key
// (or to the end, when the field count is checked), and reads the key as int8in would.

// lineKey returns the shard key of the line's content (terminator excluded).
func (s *Splitter) lineKey(line []byte) (int64, error) {
	var r fieldScan
	var err error
	if s.lines.csv {
		err = s.scanCSVFields(line, &r)
	} else {
		s.scanTextFields(line, &r)
	}
	if err != nil {
		return 0, err
	}
	fields := s.opts.Fields
	if fields > 0 && r.count > fields {
		return 0, s.rowError(CodeBadCopyFormat, "extra data after last expected column")
	}
	if !r.found {
		return 0, s.rowError(CodeBadCopyFormat, "missing data for column %d (the shard key is column %d)", r.count+1, s.opts.KeyIndex+1)
	}
	// Postgres converts the columns in order and checks NOT NULL after the whole row.
	var key int64
	if !r.null {
		if key, err = s.parseKey(s.keyBuf); err != nil {
			return 0, err
		}
	}
	if fields > 0 && r.count < fields {
		return 0, s.rowError(CodeBadCopyFormat, "missing data for column %d", r.count+1)
	}
	if r.null {
		return 0, s.rowError(CodeNullKey, "null shard key in column %d", s.opts.KeyIndex+1)
	}
	return key, nil
}

// fieldScan is what a field scan found.
type fieldScan struct {
	// count is the number of fields scanned: all of them when the count is checked, else up
	// to the key.
	count int
	// found: the key field exists; null: it is NULL. Its de-escaped value is in keyBuf.
	found bool
	null  bool
}

// scanTextFields scans text-format fields: split on the delimiter, a backslash escapes the
// next byte (\ooo octal and \xhh hex take their digits), the raw field equal to Null is
// NULL.
func (s *Splitter) scanTextFields(line []byte, r *fieldScan) {
	delim := s.opts.Delimiter
	want := s.opts.KeyIndex
	all := s.opts.Fields > 0
	p := 0
	for {
		start := p
		end := p
		foundDelim := false
		for {
			// Skip to the next delimiter or backslash.
			if k := indexEither(line[p:], delim, '\\'); k < 0 {
				p = len(line)
			} else {
				p += k
			}
			end = p
			if p >= len(line) {
				break
			}
			c := line[p]
			p++
			if c == delim {
				foundDelim = true
				break
			}
			// A backslash: it and what it escapes are data. A backslash ending the line is
			// dropped, and ends the raw field before itself.
			if p >= len(line) {
				break
			}
			c = line[p]
			p++
			switch {
			case c >= '0' && c <= '7':
				for d := 0; d < 2 && p < len(line) && line[p] >= '0' && line[p] <= '7'; d++ {
					p++
				}
			case c == 'x':
				for d := 0; d < 2 && p < len(line) && isHexDigit(line[p]); d++ {
					p++
				}
			}
		}
		if r.count == want {
			r.found = true
			raw := line[start:end]
			if string(raw) == s.opts.Null {
				r.null = true
			} else {
				s.keyBuf = unescapeText(s.keyBuf[:0], raw)
			}
		}
		r.count++
		if !foundDelim || (!all && r.count > want) {
			return
		}
	}
}

// indexEither returns the index of the first c1 or c2 in b, or -1. It tests eight bytes at
// a time for either one (fields are short, so this beats two calls of bytes.IndexByte).
func indexEither(b []byte, c1, c2 byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	m1, m2 := ones*uint64(c1), ones*uint64(c2)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		x1, x2 := w^m1, w^m2
		// A zero byte in x1 or x2 is a c1 or c2 in w.
		if ((x1-ones)&^x1|(x2-ones)&^x2)&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == c1 || c == c2 {
			return i
		}
	}
	return -1
}

// unescapeText appends the de-escaped value of a raw text-format field to dst.
func unescapeText(dst, raw []byte) []byte {
	for p := 0; p < len(raw); {
		k := bytes.IndexByte(raw[p:], '\\')
		if k < 0 {
			return append(dst, raw[p:]...)
		}
		dst = append(dst, raw[p:p+k]...)
		p += k + 1
		if p >= len(raw) {
			return dst
		}
		c := raw[p]
		p++
		switch c {
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for d := 0; d < 2 && p < len(raw) && raw[p] >= '0' && raw[p] <= '7'; d++ {
				v = v<<3 + int(raw[p]-'0')
				p++
			}
			c = byte(v)
		case 'x':
			if p < len(raw) && isHexDigit(raw[p]) {
				v := hexValue(raw[p])
				p++
				if p < len(raw) && isHexDigit(raw[p]) {
					v = v<<4 + hexValue(raw[p])
					p++
				}
				c = v
			}
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'v':
			c = '\v'
		}
		dst = append(dst, c)
	}
	return dst
}

// scanCSVFields scans CSV fields: split on unquoted delimiters; inside quotes the escape
// character escapes a quote or itself; an unquoted raw field equal to Null is NULL.
func (s *Splitter) scanCSVFields(line []byte, r *fieldScan) error {
	delim, quote, escape := s.opts.Delimiter, s.opts.Quote, s.opts.Escape
	want := s.opts.KeyIndex
	all := s.opts.Fields > 0
	p := 0
	for {
		start := p
		end := p
		foundDelim := false
		sawQuote := false
		isKey := r.count == want
		if isKey {
			s.keyBuf = s.keyBuf[:0]
		}
	field:
		for {
			// Outside quotes: up to a delimiter or a quote.
			k := indexEither(line[p:], delim, quote)
			if k < 0 {
				k = len(line) - p
			}
			if isKey {
				s.keyBuf = append(s.keyBuf, line[p:p+k]...)
			}
			p += k
			end = p
			if p >= len(line) {
				break field
			}
			p++
			if line[p-1] == delim {
				foundDelim = true
				break field
			}
			sawQuote = true
			// Inside quotes: up to the closing quote; the escape character escapes a quote or
			// itself, and is data before anything else.
			for {
				if escape == quote {
					k = bytes.IndexByte(line[p:], quote)
				} else {
					k = indexEither(line[p:], quote, escape)
				}
				if k < 0 {
					return s.rowError(CodeBadCopyFormat, "unterminated CSV quoted field")
				}
				if isKey {
					s.keyBuf = append(s.keyBuf, line[p:p+k]...)
				}
				p += k + 1
				c := line[p-1]
				if c == escape && p < len(line) && (line[p] == escape || line[p] == quote) {
					if isKey {
						s.keyBuf = append(s.keyBuf, line[p])
					}
					p++
					continue
				}
				if c == quote {
					break
				}
				if isKey {
					s.keyBuf = append(s.keyBuf, c)
				}
			}
		}
		if isKey {
			r.found = true
			r.null = !sawQuote && string(line[start:end]) == s.opts.Null
		}
		r.count++
		if !foundDelim || (!all && r.count > want) {
			return nil
		}
	}
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexValue(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// parseKey reads a text or CSV key value as Postgres's int8in does.
func (s *Splitter) parseKey(v []byte) (int64, error) {
	key, res := parseInt8(v)
	switch res {
	case int8Syntax:
		return 0, s.rowError(CodeInvalidText, "shard key in column %d is not an integer: %s", s.opts.KeyIndex+1, quoteValue(v))
	case int8Range:
		return 0, s.rowError(CodeOutOfRange, "shard key in column %d is out of range for bigint: %s", s.opts.KeyIndex+1, quoteValue(v))
	}
	return key, nil
}
