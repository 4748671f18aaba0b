package copydata

import "bytes"

// This file finds the lines of text and CSV data as CopyReadLineText in Postgres's
// copyfromparse.c does: line terminators (\n, \r\n or \r, the style fixed by the first
// line), CSV quoting, text backslash escapes and the `\.` end-of-data marker, with the same
// errors and the same line count. Its state survives chunk boundaries; where Postgres reads
// ahead, the scanner waits in a step for the next byte.

// eolType is the line terminator style, fixed by the first line that ends.
type eolType uint8

const (
	eolUnknown eolType = iota
	eolNL
	eolCR
	eolCRNL
)

// lineStep says how the scanner reads the next byte.
type lineStep uint8

const (
	// stepPlain reads an ordinary character.
	stepPlain lineStep = iota
	// stepAfterCR follows an unquoted \r while the style is unknown or \r\n: the next byte
	// says whether the terminator is \r\n.
	stepAfterCR
	// stepAfterBackslash follows a backslash that may begin `\.` (anywhere in text, first on
	// the line in CSV); in text it escapes the next byte otherwise.
	stepAfterBackslash
	// stepMarker follows `\.`: its line terminator is checked.
	stepMarker
)

// lineEvent is what a scan stopped at.
type lineEvent uint8

const (
	// evMore: the chunk is used up inside a line.
	evMore lineEvent = iota
	// evLine: a line ended, with lineScanner.termLen terminator bytes.
	evLine
	// evMarker: the end-of-data marker was read; data ends at lineScanner.markerAt.
	evMarker
)

// lineScanner is the line-finding state of a text or CSV stream.
type lineScanner struct {
	csv bool
	// strictMarker: Postgres 18 rules, `\.` must be alone on a text line and is data in CSV.
	strictMarker bool
	quote        byte
	escape       byte
	hasEscape    bool // CSV escape differs from quote (Postgres then tracks it separately)
	// special marks the bytes a plain run stops at.
	special [256]bool
	// marker is the byte besides \r and \n that matters outside CSV quotes: the backslash in
	// text, the quote in CSV.
	marker byte

	eol  eolType
	step lineStep
	// open: a line has begun, and its number was counted.
	open bool
	// first: the next byte is the first of the line.
	first bool
	// fastTried: this line's first plain run was searched with bytes.IndexByte; later runs
	// use the table, so that no byte is searched twice.
	fastTried  bool
	inQuote    bool
	lastWasEsc bool
	// markerAt is the line offset of the backslash of a possible end marker.
	markerAt int
	// look holds the bytes read after `\` while checking an end marker; CSV reads them
	// again as data when they turn out not to be one.
	look  [3]byte
	lookN int
	// termLen is the length of the terminator of the line just ended.
	termLen int
}

func (ls *lineScanner) init(o Options) {
	ls.csv = o.Format == CSV
	ls.strictMarker = o.ServerMajor >= 18
	ls.special['\n'] = true
	ls.special['\r'] = true
	if ls.csv {
		ls.quote = o.Quote
		ls.escape = o.Escape
		ls.hasEscape = o.Escape != o.Quote
		ls.special[ls.quote] = true
		if ls.hasEscape {
			ls.special[ls.escape] = true
		}
		ls.marker = ls.quote
	} else {
		ls.special['\\'] = true
		ls.marker = '\\'
	}
}

// endLine resets the per-line state after a line ends.
func (ls *lineScanner) endLine(termLen int) {
	ls.termLen = termLen
	ls.open = false
	ls.fastTried = false
	ls.inQuote = false
	ls.lastWasEsc = false
	ls.step = stepPlain
}

// Messages Postgres gives for line-level faults.
func (ls *lineScanner) msgCR() string {
	if ls.csv {
		return "unquoted carriage return found in data"
	}
	return "literal carriage return found in data"
}

func (ls *lineScanner) msgNL() string {
	if ls.csv {
		return "unquoted newline found in data"
	}
	return "literal newline found in data"
}

const (
	msgMarkerStyle    = "end-of-copy marker does not match previous newline style"
	msgMarkerCorrupt  = "end-of-copy marker corrupt"
	msgMarkerNotAlone = "end-of-copy marker is not alone on its line"
)

// msgMarkerBad is the message for `\.` followed by something other than a terminator.
func (ls *lineScanner) msgMarkerBad() string {
	if ls.strictMarker {
		return msgMarkerNotAlone
	}
	return msgMarkerCorrupt
}

// markerOutcome is what the byte after `\.` (or after `\.\r` in a \r\n stream) decides.
type markerOutcome uint8

const (
	markerNeedMore markerOutcome = iota
	markerEnd
	markerNotMarker // CSV only: `\.` was data
	markerError
)

// markerStep judges byte c read after `\.`; ls.look already holds `.` and the bytes read
// before c. At end of input c is 0, as Postgres's padded buffer gives it.
func (ls *lineScanner) markerStep(c byte, afterDot int) (markerOutcome, string) {
	if ls.eol == eolCRNL && afterDot == 1 {
		switch {
		case c == '\n':
			if ls.csv {
				return markerNotMarker, ""
			}
			return markerError, msgMarkerStyle
		case c != '\r':
			if ls.csv {
				return markerNotMarker, ""
			}
			return markerError, ls.msgMarkerBad()
		}
		return markerNeedMore, ""
	}
	if c != '\r' && c != '\n' {
		if ls.csv {
			return markerNotMarker, ""
		}
		return markerError, ls.msgMarkerBad()
	}
	if (ls.eol == eolNL && c != '\n') || (ls.eol == eolCRNL && c != '\n') || (ls.eol == eolCR && c != '\r') {
		return markerError, msgMarkerStyle
	}
	return markerEnd, ""
}

// scanLine reads b from i until a line ends, the end marker is read, or b is used up. base
// turns an index of b into an offset in the current line. It returns the index after the
// last byte consumed: after a line's terminator, or at the byte after a lone \r, which is
// not consumed.
func (s *Splitter) scanLine(b []byte, i, base int) (int, lineEvent, error) {
	ls := &s.lines
	n := len(b)
	for i < n {
		if !ls.open {
			ls.open = true
			ls.first = true
			s.line++
		}
		switch ls.step {
		case stepAfterCR:
			ls.step = stepPlain
			if b[i] == '\n' {
				ls.eol = eolCRNL
				ls.endLine(2)
				return i + 1, evLine, nil
			}
			if ls.eol == eolCRNL {
				return i, evMore, s.rowError(CodeBadCopyFormat, "%s", ls.msgCR())
			}
			ls.eol = eolCR
			ls.endLine(1)
			return i, evLine, nil

		case stepAfterBackslash:
			if b[i] == '.' {
				i++
				ls.step = stepMarker
				ls.look[0] = '.'
				ls.lookN = 1
				continue
			}
			ls.step = stepPlain
			if !ls.csv {
				i++ // text: the escaped byte is data, whatever it is
			}
			continue

		case stepMarker:
			c := b[i]
			i++
			ls.look[ls.lookN] = c
			ls.lookN++
			out, msg := ls.markerStep(c, ls.lookN-1)
			switch out {
			case markerNeedMore:
				continue
			case markerEnd:
				if ls.strictMarker && ls.markerAt > 0 {
					return i, evMore, s.rowError(CodeBadCopyFormat, msgMarkerNotAlone)
				}
				return i, evMarker, nil
			case markerError:
				return i, evMore, s.rowError(CodeBadCopyFormat, "%s", msg)
			}
			if err := s.replayMarker(); err != nil {
				return i, evMore, err
			}
			continue
		}

		// stepPlain. Skip a run of ordinary bytes; in CSV the first byte of a line is read
		// singly, since a backslash there may begin the end marker.
		if !ls.first || !ls.csv {
			if j := ls.skipPlain(b, i); j > i {
				ls.lastWasEsc = false
				i = j
				if i == n {
					return n, evMore, nil
				}
			}
		}
		c := b[i]
		i++
		first := ls.first
		ls.first = false
		if ls.csv {
			if ls.inQuote && ls.hasEscape && c == ls.escape {
				ls.lastWasEsc = !ls.lastWasEsc
			}
			if c == ls.quote && !ls.lastWasEsc {
				ls.inQuote = !ls.inQuote
			}
			if !ls.hasEscape || c != ls.escape {
				ls.lastWasEsc = false
			}
			// Postgres counts a line for each newline inside quotes, judged by the style
			// known at that moment (\r while it is still unknown).
			if ls.inQuote {
				nl := byte('\r')
				if ls.eol == eolNL {
					nl = '\n'
				}
				if c == nl {
					s.line++
				}
			}
		}
		if c == '\r' && (!ls.csv || !ls.inQuote) {
			switch ls.eol {
			case eolUnknown, eolCRNL:
				ls.step = stepAfterCR
				continue
			case eolNL:
				return i, evMore, s.rowError(CodeBadCopyFormat, "%s", ls.msgCR())
			}
			ls.endLine(1)
			return i, evLine, nil
		}
		if c == '\n' && (!ls.csv || !ls.inQuote) {
			if ls.eol == eolCR || ls.eol == eolCRNL {
				return i, evMore, s.rowError(CodeBadCopyFormat, "%s", ls.msgNL())
			}
			ls.eol = eolNL
			ls.endLine(1)
			return i, evLine, nil
		}
		if c == '\\' && (!ls.csv || first && !ls.strictMarker) {
			ls.step = stepAfterBackslash
			ls.markerAt = i - 1 + base
		}
	}
	return n, evMore, nil
}

// skipPlain returns the index of the first byte at or after i that the scan must look at,
// or len(b). Outside CSV quotes those are \r, \n and ls.marker; the line's first run is
// found with bytes.IndexByte, searching no further than the line's terminator (or the
// chunk's end, where the line goes on), and later runs with the table.
func (ls *lineScanner) skipPlain(b []byte, i int) int {
	if !ls.fastTried && !ls.inQuote {
		ls.fastTried = true
		end, other := byte('\n'), byte('\r')
		if ls.eol == eolCR {
			end, other = '\r', '\n'
		}
		rest := b[i:]
		k := bytes.IndexByte(rest, end)
		if k < 0 {
			k = len(rest)
		}
		seg := rest[:k]
		if j := bytes.IndexByte(seg, other); j >= 0 {
			k, seg = j, seg[:j]
		}
		if j := bytes.IndexByte(seg, ls.marker); j >= 0 {
			k = j
		}
		return i + k
	}
	special := &ls.special
	for k, c := range b[i:] {
		if special[c] {
			return i + k
		}
	}
	return len(b)
}

// replayMarker reads the bytes after a CSV `\` that did not make an end marker again as
// ordinary data, as Postgres does. They cannot end the line: the only terminators among
// them are ones that break the line style, which are errors.
func (s *Splitter) replayMarker() error {
	ls := &s.lines
	ls.step = stepPlain
	look := ls.look
	_, ev, err := s.scanLine(look[:ls.lookN], 0, 0)
	if err != nil {
		return err
	}
	if ev != evMore {
		return s.rowError(CodeBadCopyFormat, "internal error: end-of-copy marker check ended a line")
	}
	return nil
}
