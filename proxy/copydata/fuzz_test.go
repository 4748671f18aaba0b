package copydata

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
)

// fuzzOptions picks options from one byte: format, header, key position, field count,
// server version and CSV escape.
func fuzzOptions(mode byte) Options {
	o := DefaultOptions(Format(mode % 3))
	if o.Format != Binary && mode&0x04 != 0 {
		o.Header = true
	}
	o.KeyIndex = int(mode>>3) & 1
	switch (mode >> 4) & 3 {
	case 1:
		o.Fields = 2
	case 2:
		o.Fields = 3
	}
	if mode&0x40 != 0 {
		o.ServerMajor = 18
	}
	if o.Format == CSV && mode&0x80 != 0 {
		o.Escape = '\\'
	}
	return o
}

// FuzzSplitter checks, for any input, that splitting it whole and in random chunks gives
// the same prefix, rows and error; that the prefix and rows are the input's own bytes, in
// order; and that each destination, given the prefix, its rows and the trailer, reads back
// exactly those rows.
func FuzzSplitter(f *testing.F) {
	b := newBinaryStream([]byte("x"))
	b.tuple(int8Field(3), textField("a"))
	b.tuple(int4Field(-4), nil)
	b.tuple(int2Field(5), textField("b"))
	b.trailer()
	seeds := []struct {
		data string
		mode byte
	}{
		{"1\ta\n2\tb\n", 0},
		{"k\tv\r\n1\ta\r\n\\.\r\n2\n", 0x04},
		{"1\ta\r2\tb\\\r\r3\\.\r", 0x10},
		{"\\x31\\062\t\\N\n\\N\t1\n 7 \t8\n", 0x08},
		{"1,\"a\nb\"\n\"2\",\"c\"\"d\"\n,3\n\\.\n", 1},
		{"h,\"x\r\ny\"\r\n1,2\r\n\\.x,3\r\n", 0x05},
		{"\"1\\\"\",\"a\\\\\"\n2,b\n", 0x81},
		{"1,a\n\\.\n", 0x41},
		{"1\n2\\.\n", 0x40},
		{string(b.bytes()), 2},
		{string(b.bytes()[:40]), 0x12},
	}
	for _, s := range seeds {
		f.Add([]byte(s.data), s.mode, uint64(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode byte, seed uint64) {
		o := fuzzOptions(mode)
		whole := split(t, o, data, nil)

		rng := rand.New(rand.NewPCG(seed, seed>>1|1))
		var cuts []int
		for at := 0; at < len(data); {
			at += rng.IntN(17) // zero-length chunks too
			if at > len(data) {
				break
			}
			cuts = append(cuts, at)
		}
		if chunked := split(t, o, data, cuts); !reflect.DeepEqual(chunked, whole) {
			t.Fatalf("chunks at %v:\n got %v\nwant %v", cuts, chunked, whole)
		}

		// The prefix and rows are the input's bytes, in order.
		var out bytes.Buffer
		out.WriteString(whole.Prefix)
		for _, r := range whole.Rows {
			out.WriteString(r.Raw)
		}
		if !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("prefix and rows %q are not the start of the input %q", out.Bytes(), data)
		}
		if whole.Err == "" && !whole.Ended {
			rest := data[out.Len():]
			if o.Format != Binary && len(rest) != 0 || o.Format == Binary && len(rest) > 1 {
				t.Fatalf("input %q left %q unaccounted for", data, rest)
			}
		}
		if whole.Err == "" && whole.Ended && o.Format == Binary && !bytes.Equal(data[out.Len():], []byte{0xff, 0xff}) {
			t.Fatalf("binary input %q does not end with the trailer after its rows", data)
		}

		// Each destination reads back exactly its rows.
		if o.Format == Binary && whole.PrefixCalls == 0 {
			return // no header, so no rows and no destinations
		}
		trailer := mustSplitter(t, o).Trailer()
		for d := 0; d < 2; d++ {
			var part bytes.Buffer
			var want []row
			part.WriteString(whole.Prefix)
			for _, r := range whole.Rows {
				if uint64(r.Key)%2 == uint64(d) {
					part.WriteString(r.Raw)
					want = append(want, r)
				}
			}
			part.Write(trailer)
			got := split(t, o, part.Bytes(), nil)
			if got.Err != "" || got.Prefix != whole.Prefix || !reflect.DeepEqual(got.Rows, want) {
				t.Fatalf("destination %d got %v from %q, want rows %v", d, got, part.Bytes(), want)
			}
		}
	})
}
