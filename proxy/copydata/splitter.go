package copydata

import (
	"fmt"
)

// keepCarry is the largest carry buffer a Splitter keeps after the row it held is emitted;
// a larger one (left by an unusually long row) is dropped.
const keepCarry = 1 << 20

// Sink receives what a Splitter finds. Its methods are called from Feed and Finish, on the
// caller's goroutine, never concurrently. An error they return stops the splitter: Feed or
// Finish returns it, wrapped, and so does every later call.
type Sink interface {
	// Prefix receives the bytes every destination must get before its first row: the header
	// line for text and CSV with Options.Header, the signature, flags and header extension
	// for binary. It is called at most once, before the first Row, when the prefix is
	// complete. b is valid only during the call.
	Prefix(b []byte) error
	// Row receives one complete row: raw is its exact bytes as the client sent them, line
	// terminator included (a last line may have none), or the whole binary tuple; key is its
	// shard key. raw is valid only during the call: copy it to keep it.
	Row(raw []byte, key int64) error
}

// Splitter cuts the data of one COPY ... FROM STDIN stream, fed in CopyData payloads with
// arbitrary boundaries, into rows, and finds each row's shard key, the way Postgres's own
// COPY parser (copyfromparse.c) reads the same stream. It does no I/O and, once its carry
// buffer has grown to the longest row, allocates nothing per row.
//
// A Splitter is not safe for concurrent use.
type Splitter struct {
	opts Options

	// carry holds the bytes of the unfinished row (or header) from earlier chunks.
	carry []byte
	// keyBuf holds a text or CSV key field after de-escaping.
	keyBuf []byte

	rows int64
	// line is Postgres's cur_lineno: lines read (text, CSV) or tuples read (binary).
	line int64
	// headerPending: the next complete line (or the binary header) is the prefix.
	headerPending bool
	// ended: the end-of-data marker was read; what follows is not data.
	ended    bool
	finished bool
	err      error

	lines  lineScanner
	binary binaryScanner
}

// NewSplitter returns a Splitter for a stream with options o, after checking them.
func NewSplitter(o Options) (*Splitter, error) {
	o, err := o.normalize()
	if err != nil {
		return nil, err
	}
	s := &Splitter{opts: o, headerPending: o.Header || o.Format == Binary}
	if o.Format != Binary {
		s.lines.init(o)
	}
	return s, nil
}

// Reset readies the splitter for a new stream with the same options, keeping its buffers.
func (s *Splitter) Reset() {
	*s = Splitter{
		opts:          s.opts,
		carry:         s.carry[:0],
		keyBuf:        s.keyBuf[:0],
		headerPending: s.opts.Header || s.opts.Format == Binary,
	}
	if s.opts.Format != Binary {
		s.lines.init(s.opts)
	}
}

// Options returns the splitter's options, defaults filled in.
func (s *Splitter) Options() Options { return s.opts }

// Rows returns how many rows have been handed to Sink.Row.
func (s *Splitter) Rows() int64 { return s.rows }

// Ended reports whether the stream's end-of-data marker has been read: `\.` (text, CSV) or
// the binary trailer. Data after it is not forwarded.
func (s *Splitter) Ended() bool { return s.ended }

// Trailer returns the bytes every destination must get after its last row: the binary
// trailer, or nil for text and CSV (their end is the protocol's CopyDone). The slice is
// fresh on each call.
func (s *Splitter) Trailer() []byte {
	if s.opts.Format == Binary {
		return []byte{0xff, 0xff} // a field count of -1
	}
	return nil
}

// Feed consumes the next chunk of the stream (one CopyData payload, or any part of the
// stream), calling sink for the prefix and for every row the chunk completes. Bytes of an
// incomplete row are kept until the next Feed or Finish; chunk itself is not retained.
// After the end-of-data marker, text and CSV data is ignored (Postgres discards it) and any
// binary data is an error. A *RowError reports malformed data; after any error the splitter
// is spent and returns that error again.
func (s *Splitter) Feed(chunk []byte, sink Sink) error {
	if s.err != nil {
		return s.err
	}
	if s.finished {
		return ErrFinished
	}
	var err error
	if s.opts.Format == Binary {
		err = s.feedBinary(chunk, sink)
	} else {
		err = s.feedLines(chunk, sink)
	}
	if err != nil {
		s.err = err
	}
	return err
}

// Finish ends the stream (the client sent CopyDone): a last text or CSV line without a line
// terminator is a row; binary data may end after its trailer or after a whole tuple. Data
// ending inside a row (or the header) is a *RowError.
func (s *Splitter) Finish(sink Sink) error {
	if s.err != nil {
		return s.err
	}
	if s.finished {
		return ErrFinished
	}
	var err error
	if s.opts.Format == Binary {
		err = s.finishBinary()
	} else {
		err = s.finishLines(sink)
	}
	if err != nil {
		s.err = err
		return err
	}
	s.finished = true
	s.release()
	return nil
}

// rowError builds a RowError at the current line for the row being read.
func (s *Splitter) rowError(code, format string, args ...any) *RowError {
	e := &RowError{Format: s.opts.Format, Line: s.line, Code: code, Msg: fmt.Sprintf(format, args...)}
	if !s.headerPending {
		e.Row = s.rows + 1
	}
	return e
}

// unit returns the whole of the unit (row, header) that ends at chunk[end]: the carried
// bytes followed by chunk[start:end], contiguous.
func (s *Splitter) unit(chunk []byte, start, end int) []byte {
	if len(s.carry) == 0 {
		return chunk[start:end]
	}
	s.carry = append(s.carry, chunk[start:end]...)
	return s.carry
}

// release forgets the carried bytes once the unit they belong to has been handled.
func (s *Splitter) release() {
	if cap(s.carry) > keepCarry {
		s.carry = nil
		return
	}
	s.carry = s.carry[:0]
}

// keep carries chunk[start:] over to the next Feed, within the row size limit.
func (s *Splitter) keep(chunk []byte, start int) error {
	if start >= len(chunk) {
		return nil
	}
	if len(s.carry)+len(chunk)-start > s.opts.MaxRowSize {
		return s.tooLarge()
	}
	s.carry = append(s.carry, chunk[start:]...)
	return nil
}

func (s *Splitter) tooLarge() *RowError {
	what := "row"
	if s.headerPending {
		what = "header"
	}
	return s.rowError(CodeProgramLimit, "%s exceeds the limit of %d bytes", what, s.opts.MaxRowSize)
}

// emitPrefix hands the finished header to sink.
func (s *Splitter) emitPrefix(b []byte, sink Sink) error {
	if len(b) > s.opts.MaxRowSize {
		return s.tooLarge()
	}
	s.headerPending = false
	if err := sink.Prefix(b); err != nil {
		return fmt.Errorf("copydata: prefix: %w", err)
	}
	return nil
}

// emitRow hands a finished row to sink.
func (s *Splitter) emitRow(raw []byte, key int64, sink Sink) error {
	if len(raw) > s.opts.MaxRowSize {
		return s.tooLarge()
	}
	if err := sink.Row(raw, key); err != nil {
		return fmt.Errorf("copydata: row %d: %w", s.rows+1, err)
	}
	s.rows++
	return nil
}
