package copydata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// row is one emitted row, copied out of the callback.
type row struct {
	Raw string
	Key int64
}

// recorder is a Sink that keeps copies of what it gets.
type recorder struct {
	prefix      []byte
	prefixCalls int
	rows        []row
	// order records "P" for the prefix and "R" for each row, to check the prefix comes first.
	order []byte
}

func (r *recorder) Prefix(b []byte) error {
	r.prefixCalls++
	r.prefix = append([]byte(nil), b...)
	r.order = append(r.order, 'P')
	return nil
}

func (r *recorder) Row(raw []byte, key int64) error {
	r.rows = append(r.rows, row{Raw: string(raw), Key: key})
	r.order = append(r.order, 'R')
	return nil
}

// outcome is everything a split produced.
type outcome struct {
	Prefix      string
	PrefixCalls int
	Rows        []row
	Ended       bool
	Err         string
	ErrLine     int64
	ErrRow      int64
	ErrCode     string
}

// split feeds input to a new splitter cut at the given offsets (ascending) and finishes it.
func split(t testing.TB, o Options, input []byte, cuts []int) outcome {
	t.Helper()
	s, err := NewSplitter(o)
	if err != nil {
		t.Fatalf("NewSplitter: %v", err)
	}
	var rec recorder
	prev := 0
	for _, c := range append(cuts, len(input)) {
		if err = s.Feed(input[prev:c], &rec); err != nil {
			break
		}
		prev = c
	}
	if err == nil {
		err = s.Finish(&rec)
	}
	out := outcome{Prefix: string(rec.prefix), PrefixCalls: rec.prefixCalls, Rows: rec.rows, Ended: s.Ended()}
	if err != nil {
		out.Err = err.Error()
		var re *RowError
		if errors.As(err, &re) {
			out.ErrLine, out.ErrRow, out.ErrCode = re.Line, re.Row, re.Code
		}
		// A spent splitter repeats its error.
		if again := s.Feed([]byte("x"), &rec); again == nil || again.Error() != err.Error() {
			t.Fatalf("Feed after error %q returned %v", err, again)
		}
	}
	if got := s.Rows(); got != int64(len(rec.rows)) {
		t.Fatalf("Rows() = %d, sink got %d", got, len(rec.rows))
	}
	if i := bytes.IndexByte(rec.order, 'P'); i > 0 {
		t.Fatalf("prefix came after %d rows", i)
	}
	return out
}

// splitEveryWay splits input whole, byte by byte and at every single cut, checks all agree,
// and returns the outcome.
func splitEveryWay(t *testing.T, o Options, input []byte) outcome {
	t.Helper()
	whole := split(t, o, input, nil)
	var bytewise []int
	for i := 1; i < len(input); i++ {
		bytewise = append(bytewise, i)
	}
	if got := split(t, o, input, bytewise); !reflect.DeepEqual(got, whole) {
		t.Fatalf("byte by byte:\n got %+v\nwant %+v", got, whole)
	}
	for i := 0; i <= len(input); i++ {
		if got := split(t, o, input, []int{i}); !reflect.DeepEqual(got, whole) {
			t.Fatalf("cut at %d:\n got %+v\nwant %+v", i, got, whole)
		}
	}
	return whole
}

// binaryStream builds binary COPY data. A nil field is NULL.
type binaryStream struct {
	buf bytes.Buffer
}

func newBinaryStream(extension []byte) *binaryStream {
	b := &binaryStream{}
	b.buf.WriteString(binarySignature)
	b.u32(0)
	b.u32(uint32(len(extension)))
	b.buf.Write(extension)
	return b
}

func (b *binaryStream) u16(v uint16) { _ = binary.Write(&b.buf, binary.BigEndian, v) }
func (b *binaryStream) u32(v uint32) { _ = binary.Write(&b.buf, binary.BigEndian, v) }

// tuple appends a tuple and returns its bytes.
func (b *binaryStream) tuple(fields ...[]byte) []byte {
	start := b.buf.Len()
	b.u16(uint16(len(fields)))
	for _, f := range fields {
		if f == nil {
			b.u32(0xffffffff)
			continue
		}
		b.u32(uint32(len(f)))
		b.buf.Write(f)
	}
	return append([]byte(nil), b.buf.Bytes()[start:]...)
}

func (b *binaryStream) trailer() { b.u16(0xffff) }

func (b *binaryStream) bytes() []byte { return append([]byte(nil), b.buf.Bytes()...) }

func int8Field(v int64) []byte  { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
func int4Field(v int32) []byte  { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func int2Field(v int16) []byte  { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func textField(v string) []byte { return []byte(v) }

func (o outcome) String() string {
	return fmt.Sprintf("prefix=%q rows=%v ended=%v err=%q line=%d row=%d code=%s",
		o.Prefix, o.Rows, o.Ended, o.Err, o.ErrLine, o.ErrRow, o.ErrCode)
}

func TestIndexEither(t *testing.T) {
	naive := func(b []byte, c1, c2 byte) int {
		for i, c := range b {
			if c == c1 || c == c2 {
				return i
			}
		}
		return -1
	}
	// Every length up to 40, with the targets at every position, and bytes next to them in
	// value (a SWAR test must not confuse them).
	for n := 0; n <= 40; n++ {
		for at := -1; at < n; at++ {
			for _, target := range []byte{',', '"', 0x00, 0x80, 0xff} {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(i*37) | 1
					if b[i] == ',' || b[i] == '"' || b[i] == 0x00 || b[i] == 0x80 || b[i] == 0xff {
						b[i] = 'a'
					}
				}
				if at >= 0 {
					b[at] = target
				}
				for _, pair := range [][2]byte{{',', '"'}, {'"', ','}, {0x00, 0x80}, {0xff, 0x01}} {
					if got, want := indexEither(b, pair[0], pair[1]), naive(b, pair[0], pair[1]); got != want {
						t.Fatalf("indexEither(%x, %q, %q) = %d, want %d", b, pair[0], pair[1], got, want)
					}
				}
			}
		}
	}
}
