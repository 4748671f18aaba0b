package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a regular message header: one type byte and a 4-byte length.
const HeaderSize = 5

// keepScratch is the largest scratch buffer a Reader keeps between messages.
const keepScratch = 1 << 20

// ErrInvalidLength reports a message length below the protocol minimum.
var ErrInvalidLength = errors.New("invalid message length")

// TooLargeError reports a message longer than the configured limit.
type TooLargeError struct {
	Type  byte
	Size  int
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message %q of %d bytes exceeds the limit of %d bytes", e.Type, e.Size, e.Limit)
}

// Frame is one whole protocol message: type byte, 4-byte length, body.
type Frame []byte

// Type returns the message type byte.
func (f Frame) Type() byte { return f[0] }

// Body returns the message body, after the header.
func (f Frame) Body() []byte { return f[HeaderSize:] }

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	limit   int
	scratch []byte
	pending int // bytes of the previous in-place frame still to discard
}

// NewReader returns a Reader over r with a read buffer of bufSize bytes that refuses messages
// larger than limit bytes (header included).
func NewReader(r io.Reader, bufSize, limit int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), limit: limit}
}

// Reset makes the Reader read from r, dropping any buffered data.
func (r *Reader) Reset(rd io.Reader) {
	r.br.Reset(rd)
	r.pending = 0
}

// Buffered returns the number of bytes that can be read without touching the stream.
func (r *Reader) Buffered() int { return r.br.Buffered() - r.pending }

// Next returns the next frame. The frame is valid until the next call to Next or ReadStartup.
// A frame longer than the limit is not read: Next returns a *TooLargeError and the stream is
// left unusable.
func (r *Reader) Next() (Frame, error) {
	if err := r.discardPending(); err != nil {
		return nil, err
	}
	hdr, err := r.br.Peek(HeaderSize)
	if err != nil {
		return nil, eofOrUnexpected(err, len(hdr))
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[1:])))
	if n < 4 {
		return nil, fmt.Errorf("%w: %d for message %q", ErrInvalidLength, n, hdr[0])
	}
	total := n + 1
	if total > r.limit {
		return nil, &TooLargeError{Type: hdr[0], Size: total, Limit: r.limit}
	}
	return r.read(total)
}

// ReadStartup reads one startup-phase packet (a 4-byte length then the payload, no type byte)
// and returns the payload after the length.
func (r *Reader) ReadStartup(maxLen int) ([]byte, error) {
	if err := r.discardPending(); err != nil {
		return nil, err
	}
	hdr, err := r.br.Peek(4)
	if err != nil {
		return nil, eofOrUnexpected(err, len(hdr))
	}
	n := int(int32(binary.BigEndian.Uint32(hdr)))
	if n < 8 || n > maxLen {
		return nil, fmt.Errorf("%w: startup packet of %d bytes", ErrInvalidLength, n)
	}
	f, err := r.read(n)
	if err != nil {
		return nil, err
	}
	return f[4:], nil
}

func (r *Reader) read(total int) ([]byte, error) {
	if total <= r.br.Size() {
		f, err := r.br.Peek(total)
		if err != nil {
			return nil, eofOrUnexpected(err, 1)
		}
		r.pending = total
		return f, nil
	}
	if cap(r.scratch) < total {
		r.scratch = make([]byte, total)
	}
	buf := r.scratch[:total]
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return nil, eofOrUnexpected(err, 1)
	}
	if cap(r.scratch) > keepScratch {
		r.scratch = nil // do not keep a huge buffer for a rare huge message; buf stays valid
	}
	return buf, nil
}

func (r *Reader) discardPending() error {
	if r.pending == 0 {
		return nil
	}
	n := r.pending
	r.pending = 0
	_, err := r.br.Discard(n)
	return err
}

func eofOrUnexpected(err error, got int) error {
	if errors.Is(err, io.EOF) && got > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}
