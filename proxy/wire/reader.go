package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// HeaderSize is the size of a regular message header: one type byte and a 4-byte length.
const HeaderSize = 5

// keepScratch is the largest scratch buffer a Reader keeps between messages.
const keepScratch = 1 << 20

// idleReadSize is how much a pooled Reader reads while it holds no buffer: enough for most
// whole requests, so going idle does not cost an extra read.
const idleReadSize = 512

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

// BufferPool hands out byte buffers of one size. Readers and Writers that share one hold a
// buffer only while they have data in it, so an idle connection costs almost nothing.
type BufferPool struct {
	size int
	pool sync.Pool
}

// NewBufferPool returns a pool of buffers of size bytes.
func NewBufferPool(size int) *BufferPool {
	p := &BufferPool{size: size}
	p.pool.New = func() any { b := make([]byte, size); return &b }
	return p
}

func (p *BufferPool) get() *[]byte { return p.pool.Get().(*[]byte) }

func (p *BufferPool) put(b *[]byte) { p.pool.Put(b) }

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	src     io.Reader
	pool    *BufferPool // nil: the Reader owns one buffer for life
	bufp    *[]byte
	buf     []byte // nil while a pooled Reader is idle
	r, w    int
	size    int
	limit   int
	scratch []byte
	idle    []byte // small buffer for the blocking read of an idle pooled Reader
}

// NewReader returns a Reader over r with a read buffer of bufSize bytes that refuses messages
// larger than limit bytes (header included).
func NewReader(r io.Reader, bufSize, limit int) *Reader {
	return &Reader{src: r, size: bufSize, limit: limit}
}

// NewPooledReader is NewReader with buffers from pool, held only while unread data remains.
func NewPooledReader(r io.Reader, pool *BufferPool, limit int) *Reader {
	return &Reader{src: r, pool: pool, size: pool.size, limit: limit}
}

// Reset makes the Reader read from rd, dropping any buffered data.
func (r *Reader) Reset(rd io.Reader) {
	r.src = rd
	r.r, r.w = 0, 0
	r.release()
}

// Buffered returns the number of bytes that can be read without touching the stream.
func (r *Reader) Buffered() int { return r.w - r.r }

// Next returns the next frame. The frame is valid until the next call to Next or ReadStartup.
// A frame longer than the limit is not read: Next returns a *TooLargeError and the stream is
// left unusable.
func (r *Reader) Next() (Frame, error) {
	if err := r.ensure(HeaderSize); err != nil {
		return nil, err
	}
	hdr := r.buf[r.r : r.r+HeaderSize]
	n := int(int32(binary.BigEndian.Uint32(hdr[1:])))
	if n < 4 {
		return nil, fmt.Errorf("%w: %d for message %q", ErrInvalidLength, n, hdr[0])
	}
	total := n + 1
	if total > r.limit {
		return nil, &TooLargeError{Type: hdr[0], Size: total, Limit: r.limit}
	}
	return r.take(total)
}

// ReadStartup reads one startup-phase packet (a 4-byte length then the payload, no type byte)
// and returns the payload after the length.
func (r *Reader) ReadStartup(maxLen int) ([]byte, error) {
	if err := r.ensure(4); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(r.buf[r.r:])))
	if n < 8 || n > maxLen {
		return nil, fmt.Errorf("%w: startup packet of %d bytes", ErrInvalidLength, n)
	}
	f, err := r.take(n)
	if err != nil {
		return nil, err
	}
	return f[4:], nil
}

// take returns the next total bytes, in place when they fit the buffer.
func (r *Reader) take(total int) ([]byte, error) {
	if total <= r.size {
		if err := r.ensure(total); err != nil {
			return nil, unexpected(err)
		}
		f := r.buf[r.r : r.r+total]
		r.r += total
		return f, nil
	}
	if cap(r.scratch) < total {
		r.scratch = make([]byte, total)
	}
	out := r.scratch[:total]
	k := copy(out, r.buf[r.r:r.w])
	r.r += k
	if _, err := io.ReadFull(r.src, out[k:]); err != nil {
		return nil, unexpected(err)
	}
	if cap(r.scratch) > keepScratch {
		r.scratch = nil // do not keep a huge buffer for a rare huge message; out stays valid
	}
	return out, nil
}

// ensure makes n bytes available at r.buf[r.r:].
func (r *Reader) ensure(n int) error {
	for r.w-r.r < n {
		if err := r.fill(); err != nil {
			if errors.Is(err, io.EOF) && r.w > r.r {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// fill reads once from the stream.
func (r *Reader) fill() error {
	if r.r == r.w {
		r.r, r.w = 0, 0
		if r.pool != nil && r.buf != nil {
			r.release()
		}
	}
	if r.buf == nil {
		if r.pool != nil {
			// Idle: block on a small read, and take a buffer only once data has arrived.
			if r.idle == nil {
				r.idle = make([]byte, idleReadSize)
			}
			n, err := r.src.Read(r.idle)
			if n == 0 {
				if err == nil {
					err = io.ErrNoProgress
				}
				return err
			}
			r.bufp = r.pool.get()
			r.buf = *r.bufp
			r.w = copy(r.buf, r.idle[:n])
			return nil
		}
		r.buf = make([]byte, r.size)
	}
	if r.w == len(r.buf) { // compact: the unread part moves to the front
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	n, err := r.src.Read(r.buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (r *Reader) release() {
	if r.pool != nil && r.bufp != nil {
		r.pool.put(r.bufp)
	}
	r.bufp = nil
	if r.pool != nil {
		r.buf = nil
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
