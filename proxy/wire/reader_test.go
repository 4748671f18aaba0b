package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func frame(typ byte, body string) []byte {
	return append(AppendHeader(nil, typ, len(body)), body...)
}

func TestReaderFrames(t *testing.T) {
	big := string(bytes.Repeat([]byte("x"), 100))
	stream := bytes.Join([][]byte{frame('Q', "select 1\x00"), frame('S', ""), frame('d', big)}, nil)
	r := NewReader(bytes.NewReader(stream), 32, 1024)
	want := []struct {
		typ  byte
		body string
	}{{'Q', "select 1\x00"}, {'S', ""}, {'d', big}}
	for i, w := range want {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Type() != w.typ || string(f.Body()) != w.body {
			t.Fatalf("frame %d: got %q %q", i, f.Type(), f.Body())
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestReaderRejects(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		check  func(error) bool
	}{
		{"too large", frame('Q', string(make([]byte, 200))), func(err error) bool { var e *TooLargeError; return errors.As(err, &e) && e.Size == 205 }},
		{"negative length", []byte{'Q', 0xff, 0xff, 0xff, 0xff}, func(err error) bool { return errors.Is(err, ErrInvalidLength) }},
		{"short length", []byte{'Q', 0, 0, 0, 3}, func(err error) bool { return errors.Is(err, ErrInvalidLength) }},
		{"truncated body", frame('Q', "select")[:8], func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"truncated header", []byte{'Q', 0, 0}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(c.stream), 64, 128).Next()
			if !c.check(err) {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
}

// TestReaderNoAllocs proves the forwarding path allocates nothing per message.
func TestReaderNoAllocs(t *testing.T) {
	one := frame('D', "\x00\x01\x00\x00\x00\x03abc")
	stream := bytes.Repeat(one, 1000)
	src := bytes.NewReader(stream)
	r := NewReader(src, 8192, 1<<20)
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := r.Next(); err != nil {
			src.Reset(stream)
			r.Reset(src)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %v times per frame, want 0", allocs)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(frame('Q', "select 1\x00"))
	f.Add(append(frame('P', "s\x00select $1\x00\x00\x00"), frame('S', "")...))
	f.Add([]byte{'Q', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 64, 4096)
		for range 1000 {
			fr, err := r.Next()
			if err != nil {
				return
			}
			if len(fr) < HeaderSize || len(fr) > 4096 {
				t.Fatalf("frame of %d bytes escaped the limits", len(fr))
			}
		}
	})
}

func BenchmarkReaderNext(b *testing.B) {
	one := frame('D', "\x00\x02\x00\x00\x00\x03abc\x00\x00\x00\x05hello")
	stream := bytes.Repeat(one, 4096)
	src := bytes.NewReader(stream)
	r := NewReader(src, 8192, 1<<20)
	b.ReportAllocs()
	b.SetBytes(int64(len(one)))
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			src.Reset(stream)
			r.Reset(src)
		}
	}
}

// TestPooledReaderReleasesWhenIdle: a pooled Reader holds a buffer only while data is
// buffered, reads frames that span the idle read, and allocates nothing per frame.
func TestPooledReaderReleasesWhenIdle(t *testing.T) {
	pool := NewBufferPool(64)
	big := strings.Repeat("y", 40)
	stream := bytes.Join([][]byte{frame('Q', big), frame('S', ""), frame('d', strings.Repeat("z", 100))}, nil)
	r := NewPooledReader(iotest.OneByteReader(bytes.NewReader(stream)), pool, 1024)
	for i, want := range []string{big, "", strings.Repeat("z", 100)} {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if string(f.Body()) != want {
			t.Fatalf("frame %d: got %q", i, f.Body())
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
	if r.buf != nil {
		t.Fatal("idle reader still holds a buffer")
	}

	one := frame('D', "\x00\x01\x00\x00\x00\x03abc")
	many := bytes.Repeat(one, 1000)
	src := bytes.NewReader(many)
	pr := NewPooledReader(src, NewBufferPool(8192), 1<<20)
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := pr.Next(); err != nil {
			src.Reset(many)
			pr.Reset(src)
		}
	})
	if allocs != 0 {
		t.Fatalf("pooled Next allocates %v times per frame", allocs)
	}
}

func TestWriterFlushReturnsBuffer(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, NewBufferPool(16))
	for _, p := range []string{"hello", " ", "world, this is longer than sixteen", "!"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello world, this is longer than sixteen!" {
		t.Fatalf("got %q", out.String())
	}
	if w.bufp != nil || w.Buffered() != 0 {
		t.Fatal("writer kept its buffer after Flush")
	}
}
