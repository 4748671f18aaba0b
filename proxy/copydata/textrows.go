package copydata

// This file turns the lines the scanner finds into the prefix (a header line) and rows, and
// ends a text or CSV stream.

// feedLines splits a chunk of text or CSV data.
func (s *Splitter) feedLines(chunk []byte, sink Sink) error {
	start := 0 // where the current line begins in chunk; earlier bytes are in s.carry
	i := 0
	for i < len(chunk) && !s.ended {
		j, ev, err := s.scanLine(chunk, i, len(s.carry)-start)
		if err != nil {
			return err
		}
		switch ev {
		case evLine:
			if err := s.lineDone(s.unit(chunk, start, j), s.lines.termLen, sink); err != nil {
				return err
			}
			s.release()
			start = j
		case evMarker:
			line := s.unit(chunk, start, j)[:s.lines.markerAt]
			if err := s.markerDone(line, sink); err != nil {
				return err
			}
			s.release()
			return nil
		}
		i = j
	}
	if s.ended {
		return nil
	}
	return s.keep(chunk, start)
}

// markerDone ends the data at the `\.` marker. Text data before the marker on its line is
// a last row without a terminator, as Postgres takes it.
func (s *Splitter) markerDone(line []byte, sink Sink) error {
	s.ended = true
	s.lines.open = false
	if len(line) == 0 || s.headerPending {
		// A header line ended by the marker is dropped, and no rows follow.
		return nil
	}
	return s.rowDone(line, 0, sink)
}

// lineDone handles a complete line: the header, or a row.
func (s *Splitter) lineDone(line []byte, termLen int, sink Sink) error {
	if s.headerPending {
		return s.emitPrefix(line, sink)
	}
	return s.rowDone(line, termLen, sink)
}

// rowDone finds the key of a complete row and emits it.
func (s *Splitter) rowDone(raw []byte, termLen int, sink Sink) error {
	key, err := s.lineKey(raw[:len(raw)-termLen])
	if err != nil {
		return err
	}
	return s.emitRow(raw, key, sink)
}

// finishLines ends a text or CSV stream: it resolves a pending read-ahead as Postgres does
// at end of input, and takes a last unterminated line as a row.
func (s *Splitter) finishLines(sink Sink) error {
	if s.ended {
		return nil
	}
	ls := &s.lines
	for {
		switch ls.step {
		case stepAfterCR:
			if ls.eol == eolCRNL {
				return s.rowError(CodeBadCopyFormat, "%s", ls.msgCR())
			}
			ls.eol = eolCR
			ls.endLine(1)
			err := s.lineDone(s.carry, 1, sink)
			s.release()
			return err
		case stepAfterBackslash:
			// A backslash just before the end is data.
			ls.step = stepPlain
		case stepMarker:
			out, msg := ls.markerStep(0, ls.lookN)
			if out == markerError || !ls.csv {
				if msg == "" {
					msg = ls.msgMarkerBad()
				}
				return s.rowError(CodeBadCopyFormat, "%s", msg)
			}
			if err := s.replayMarker(); err != nil {
				return err
			}
			continue
		}
		break
	}
	if !ls.open {
		return nil
	}
	if ls.csv && ls.inQuote && !s.headerPending {
		return s.rowError(CodeBadCopyFormat, "unterminated CSV quoted field")
	}
	ls.endLine(0)
	err := s.lineDone(s.carry, 0, sink)
	s.release()
	return err
}
