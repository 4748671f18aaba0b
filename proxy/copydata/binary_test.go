package copydata

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestSplitBinary(t *testing.T) {
	o := DefaultOptions(Binary)

	t.Run("int8 int4 int2 keys", func(t *testing.T) {
		b := newBinaryStream(nil)
		header := b.bytes()
		r1 := b.tuple(int8Field(math.MinInt64), textField("a"))
		r2 := b.tuple(int4Field(-7), nil)
		r3 := b.tuple(int2Field(300), textField(""))
		r4 := b.tuple(int8Field(math.MaxInt64), textField(strings.Repeat("x", 300)))
		b.trailer()
		got := splitEveryWay(t, o, b.bytes())
		want := []row{{string(r1), math.MinInt64}, {string(r2), -7}, {string(r3), 300}, {string(r4), math.MaxInt64}}
		if got.Err != "" || got.Prefix != string(header) || got.PrefixCalls != 1 || !got.Ended || !reflect.DeepEqual(got.Rows, want) {
			t.Fatalf("got %v", got)
		}
	})

	t.Run("header extension is part of the prefix", func(t *testing.T) {
		b := newBinaryStream([]byte("ext!"))
		header := b.bytes()
		r1 := b.tuple(int8Field(5))
		got := splitEveryWay(t, o, b.bytes())
		if got.Err != "" || got.Prefix != string(header) || !reflect.DeepEqual(got.Rows, []row{{string(r1), 5}}) || got.Ended {
			t.Fatalf("got %v", got)
		}
	})

	t.Run("key in another field", func(t *testing.T) {
		o := o
		o.KeyIndex = 2
		o.Fields = 3
		b := newBinaryStream(nil)
		r1 := b.tuple(textField("a"), nil, int4Field(77))
		got := splitEveryWay(t, o, b.bytes())
		if got.Err != "" || !reflect.DeepEqual(got.Rows, []row{{string(r1), 77}}) {
			t.Fatalf("got %v", got)
		}
	})

	t.Run("no trailer, one stray byte", func(t *testing.T) {
		b := newBinaryStream(nil)
		r1 := b.tuple(int8Field(1))
		data := append(b.bytes(), 0x00)
		got := splitEveryWay(t, o, data)
		if got.Err != "" || !reflect.DeepEqual(got.Rows, []row{{string(r1), 1}}) {
			t.Fatalf("got %v", got)
		}
	})

	t.Run("empty", func(t *testing.T) {
		b := newBinaryStream(nil)
		b.trailer()
		got := splitEveryWay(t, o, b.bytes())
		if got.Err != "" || len(got.Rows) != 0 || got.PrefixCalls != 1 || !got.Ended {
			t.Fatalf("got %v", got)
		}
	})

	type errCase struct {
		name            string
		opts            func(*Options)
		data            func() []byte
		rows            int
		err             string
		errLine, errRow int64
		errCode         string
	}
	for _, tc := range []errCase{
		{name: "no data at all", data: func() []byte { return nil },
			err: "COPY file signature not recognized", errCode: CodeBadCopyFormat},
		{name: "bad signature", data: func() []byte { return []byte("PGCOPY\n\377\r\n\x01\x00\x00\x00\x00") },
			err: "COPY file signature not recognized", errCode: CodeBadCopyFormat},
		{name: "missing flags", data: func() []byte { return []byte(binarySignature + "\x00\x00") },
			err: "invalid COPY file header (missing flags)", errCode: CodeBadCopyFormat},
		{name: "missing length", data: func() []byte { return []byte(binarySignature + "\x00\x00\x00\x00\x00") },
			err: "invalid COPY file header (missing length)", errCode: CodeBadCopyFormat},
		{name: "negative extension", data: func() []byte { return []byte(binarySignature + "\x00\x00\x00\x00\xff\xff\xff\xff") },
			err: "invalid COPY file header (missing length)", errCode: CodeBadCopyFormat},
		{name: "short extension", data: func() []byte { return []byte(binarySignature + "\x00\x00\x00\x00\x00\x00\x00\x05ab") },
			err: "invalid COPY file header (wrong length)", errCode: CodeBadCopyFormat},
		{name: "with oids", data: func() []byte { return []byte(binarySignature + "\x00\x01\x00\x00\x00\x00\x00\x00") },
			err: "invalid COPY file header (WITH OIDS)", errCode: CodeBadCopyFormat},
		{name: "critical flag", data: func() []byte { return []byte(binarySignature + "\x80\x00\x00\x00\x00\x00\x00\x00") },
			err: "unrecognized critical flags in COPY file header", errCode: CodeBadCopyFormat},
		{name: "null key", data: func() []byte {
			b := newBinaryStream(nil)
			b.tuple(int8Field(1))
			b.tuple(nil)
			return b.bytes()
		}, rows: 1, err: "null shard key in column 1", errLine: 2, errRow: 2, errCode: CodeNullKey},
		{name: "numeric key", data: func() []byte {
			b := newBinaryStream(nil)
			b.tuple([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 5})
			return b.bytes()
		}, err: "supports int2, int4 and int8 keys only (not numeric)", errLine: 1, errRow: 1, errCode: CodeNotSupported},
		{name: "field count", opts: func(o *Options) { o.Fields = 2 }, data: func() []byte {
			b := newBinaryStream(nil)
			b.tuple(int8Field(1), nil)
			b.tuple(int8Field(1), nil, nil)
			return b.bytes()
		}, rows: 1, err: "row field count is 3, expected 2", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "too few fields for the key", opts: func(o *Options) { o.KeyIndex = 1 }, data: func() []byte {
			b := newBinaryStream(nil)
			b.tuple(int8Field(1))
			return b.bytes()
		}, err: "row has 1 fields, the shard key is field 2", errLine: 1, errRow: 1, errCode: CodeBadCopyFormat},
		{name: "invalid field size", data: func() []byte {
			b := newBinaryStream(nil)
			b.tuple(int8Field(1))
			b.u16(1)
			b.u32(0xfffffffe)
			return b.bytes()
		}, rows: 1, err: "invalid field size", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "truncated tuple", data: func() []byte {
			b := newBinaryStream(nil)
			b.tuple(int8Field(1), textField("abc"))
			data := b.bytes()
			b.tuple(int8Field(2), textField("abc"))
			return b.bytes()[:len(data)+10]
		}, rows: 1, err: "unexpected EOF in COPY data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "truncated length", data: func() []byte {
			b := newBinaryStream(nil)
			b.u16(1)
			b.u16(0)
			return b.bytes()
		}, err: "unexpected EOF in COPY data", errLine: 1, errRow: 1, errCode: CodeBadCopyFormat},
		{name: "data after trailer", data: func() []byte {
			b := newBinaryStream(nil)
			b.tuple(int8Field(1))
			b.trailer()
			return append(b.bytes(), 0)
		}, rows: 1, err: "received copy data after EOF marker", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions(Binary)
			if tc.opts != nil {
				tc.opts(&o)
			}
			got := splitEveryWay(t, o, tc.data())
			if len(got.Rows) != tc.rows || !strings.Contains(got.Err, tc.err) ||
				got.ErrLine != tc.errLine || got.ErrRow != tc.errRow || got.ErrCode != tc.errCode {
				t.Fatalf("got %v\nwant %d rows, error %q at line %d row %d code %s", got, tc.rows, tc.err, tc.errLine, tc.errRow, tc.errCode)
			}
		})
	}

	if !bytes.Equal(mustSplitter(t, o).Trailer(), []byte{0xff, 0xff}) {
		t.Fatal("binary trailer is not 0xffff")
	}
}

func TestBinaryFieldTooLarge(t *testing.T) {
	o := DefaultOptions(Binary)
	o.MaxRowSize = 100
	b := newBinaryStream(nil)
	b.tuple(int8Field(1), make([]byte, 50))
	b.u16(2)
	b.u32(8)
	b.buf.Write(int8Field(2))
	b.u32(1 << 30) // announced, never sent: refused before it is buffered
	got := split(t, o, b.bytes(), nil)
	if got.ErrCode != CodeProgramLimit || got.ErrLine != 2 || len(got.Rows) != 1 {
		t.Fatalf("got %v", got)
	}
}

func mustSplitter(t *testing.T, o Options) *Splitter {
	t.Helper()
	s, err := NewSplitter(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
