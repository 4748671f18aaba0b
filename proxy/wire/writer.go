package wire

import "io"

// Writer buffers frames to a stream with a buffer taken from a BufferPool on the first Write
// and returned by Flush, so an idle connection holds none. It is not safe for concurrent use.
type Writer struct {
	dst  io.Writer
	pool *BufferPool
	bufp *[]byte
	buf  []byte
	err  error
}

// NewWriter returns a Writer to dst with buffers from pool.
func NewWriter(dst io.Writer, pool *BufferPool) *Writer {
	return &Writer{dst: dst, pool: pool}
}

// Write buffers p, flushing first when it does not fit. After a write error every call
// returns that error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.bufp == nil {
		w.bufp = w.pool.get()
		w.buf = (*w.bufp)[:0]
	}
	if len(w.buf)+len(p) > cap(w.buf) {
		if err := w.flushBuf(); err != nil {
			return 0, err
		}
		if len(p) > cap(w.buf) {
			n, err := w.dst.Write(p)
			w.err = err
			return n, err
		}
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Err returns the write error that made the Writer stop, if any.
func (w *Writer) Err() error { return w.err }

// Buffered returns the number of bytes waiting to be flushed.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes what is buffered and returns the buffer to the pool.
func (w *Writer) Flush() error {
	err := w.flushBuf()
	if w.bufp != nil {
		w.pool.put(w.bufp)
		w.bufp, w.buf = nil, nil
	}
	return err
}

func (w *Writer) flushBuf() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.buf)
	w.buf = w.buf[:0]
	w.err = err
	return err
}
