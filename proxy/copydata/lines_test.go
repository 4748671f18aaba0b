package copydata

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// lineCase is one text or CSV stream and what splitting it must give.
type lineCase struct {
	name   string
	opts   func(*Options)
	input  string
	prefix string
	rows   []row
	ended  bool
	// err, when set, is a substring of the error; errLine, errRow and errCode must match.
	err     string
	errLine int64
	errRow  int64
	errCode string
}

func runLineCases(t *testing.T, format Format, cases []lineCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions(format)
			if tc.opts != nil {
				tc.opts(&o)
			}
			got := splitEveryWay(t, o, []byte(tc.input))
			if got.Prefix != tc.prefix {
				t.Errorf("prefix = %q, want %q", got.Prefix, tc.prefix)
			}
			wantCalls := 0
			if tc.prefix != "" {
				wantCalls = 1
			}
			if got.PrefixCalls != wantCalls {
				t.Errorf("prefix calls = %d, want %d", got.PrefixCalls, wantCalls)
			}
			if !reflect.DeepEqual(got.Rows, tc.rows) && (len(got.Rows) != 0 || len(tc.rows) != 0) {
				t.Errorf("rows = %v, want %v", got.Rows, tc.rows)
			}
			if got.Ended != tc.ended {
				t.Errorf("ended = %v, want %v", got.Ended, tc.ended)
			}
			if tc.err == "" {
				if got.Err != "" {
					t.Fatalf("unexpected error %s", got.Err)
				}
				return
			}
			if !strings.Contains(got.Err, tc.err) {
				t.Fatalf("error = %q, want it to contain %q", got.Err, tc.err)
			}
			if got.ErrLine != tc.errLine || got.ErrRow != tc.errRow || got.ErrCode != tc.errCode {
				t.Fatalf("error at line %d row %d code %s, want line %d row %d code %s (%s)",
					got.ErrLine, got.ErrRow, got.ErrCode, tc.errLine, tc.errRow, tc.errCode, got.Err)
			}
		})
	}
}

func keyAt(i int) func(*Options) { return func(o *Options) { o.KeyIndex = i } }

func withHeader(o *Options) { o.Header = true }

func TestSplitText(t *testing.T) {
	runLineCases(t, Text, []lineCase{
		{name: "newline rows", input: "1\ta\n2\tb\n",
			rows: []row{{"1\ta\n", 1}, {"2\tb\n", 2}}},
		{name: "last line without newline is a row", input: "1\ta\n-2\tb",
			rows: []row{{"1\ta\n", 1}, {"-2\tb", -2}}},
		{name: "crlf", input: "1\ta\r\n2\tb\r\n",
			rows: []row{{"1\ta\r\n", 1}, {"2\tb\r\n", 2}}},
		{name: "cr", input: "1\ta\r2\tb\r3",
			rows: []row{{"1\ta\r", 1}, {"2\tb\r", 2}, {"3", 3}}},
		{name: "cr at end of data", input: "7\r", rows: []row{{"7\r", 7}}},
		{name: "cr after newline style", input: "1\n2\r\n",
			rows: []row{{"1\n", 1}}, err: "literal carriage return found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "newline after crlf style", input: "1\r\n2\n",
			rows: []row{{"1\r\n", 1}}, err: "literal newline found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "newline after cr style", input: "1\r2\n",
			rows: []row{{"1\r", 1}}, err: "literal newline found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "lone cr in crlf style", input: "1\r\n2\r3\r\n",
			rows: []row{{"1\r\n", 1}}, err: "literal carriage return found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "lone cr at end in crlf style", input: "1\r\n2\r",
			rows: []row{{"1\r\n", 1}}, err: "literal carriage return found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "header", opts: withHeader, input: "id\tname\n1\ta\n2\tb\n",
			prefix: "id\tname\n", rows: []row{{"1\ta\n", 1}, {"2\tb\n", 2}}},
		{name: "header only", opts: withHeader, input: "id\tname\n", prefix: "id\tname\n"},
		{name: "header error lines count the header", opts: withHeader, input: "id\n1\nx\n",
			prefix: "id\n", rows: []row{{"1\n", 1}}, err: `not an integer: "x"`, errLine: 3, errRow: 2, errCode: CodeInvalidText},
		{name: "end marker", input: "1\n\\.\n2\n", rows: []row{{"1\n", 1}}, ended: true},
		{name: "end marker ignores what follows", input: "1\n\\.\ngarbage\r\n\\x\\.",
			rows: []row{{"1\n", 1}}, ended: true},
		{name: "end marker crlf", input: "1\r\n\\.\r\n2\r\n", rows: []row{{"1\r\n", 1}}, ended: true},
		{name: "end marker cr", input: "1\r\\.\r2\r", rows: []row{{"1\r", 1}}, ended: true},
		{name: "end marker first line", input: "\\.\n1\n", ended: true},
		{name: "end marker after data on its line", input: "1\n2\t\\.\n3\n",
			rows: []row{{"1\n", 1}, {"2\t", 2}}, ended: true},
		{name: "end marker as header", opts: withHeader, input: "\\.\n1\n", ended: true},
		{name: "end marker at end of data", input: "1\n\\.",
			rows: []row{{"1\n", 1}}, err: "end-of-copy marker corrupt", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "end marker corrupt", input: "1\n\\.x\n",
			rows: []row{{"1\n", 1}}, err: "end-of-copy marker corrupt", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "end marker newline in crlf style", input: "1\r\n\\.\n",
			rows: []row{{"1\r\n", 1}}, err: "end-of-copy marker does not match previous newline style", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "end marker cr in newline style", input: "1\n\\.\r",
			rows: []row{{"1\n", 1}}, err: "end-of-copy marker does not match previous newline style", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "escaped backslash then dot is data", input: "5\tx\\\\.\n", rows: []row{{"5\tx\\\\.\n", 5}}},
		{name: "backslash at end of data", input: "5\tx\\", rows: []row{{"5\tx\\", 5}}},
		{name: "escaped newline continues the line", input: "1\tab\\\ncd\n2\tx\n",
			rows: []row{{"1\tab\\\ncd\n", 1}, {"2\tx\n", 2}}},
		{name: "escaped cr continues the line", input: "1\tab\\\rcd\n", rows: []row{{"1\tab\\\rcd\n", 1}}},
		{name: "escapes in key", input: "\\x31\\062\\063\tv\n", rows: []row{{"\\x31\\062\\063\tv\n", 123}}},
		{name: "escaped delimiter is data", opts: keyAt(1), input: "a\\\tb\t9\n", rows: []row{{"a\\\tb\t9\n", 9}}},
		{name: "escaped key spaces", input: "\\t42\\n\tv\n", rows: []row{{"\\t42\\n\tv\n", 42}}},
		{name: "spaces around key", input: " 42 \tv\n", rows: []row{{" 42 \tv\n", 42}}},
		{name: "plus sign", input: "+42\n", rows: []row{{"+42\n", 42}}},
		{name: "bigint limits", input: "9223372036854775807\n-9223372036854775808\n",
			rows: []row{{"9223372036854775807\n", math.MaxInt64}, {"-9223372036854775808\n", math.MinInt64}}},
		{name: "key out of range", input: "9223372036854775808\n",
			err: "out of range for bigint", errLine: 1, errRow: 1, errCode: CodeOutOfRange},
		{name: "null key", input: "1\tx\n\\N\tx\n",
			rows: []row{{"1\tx\n", 1}}, err: "null shard key in column 1", errLine: 2, errRow: 2, errCode: CodeNullKey},
		{name: "null key second column", opts: keyAt(1), input: "x\t\\N\n",
			err: "null shard key in column 2", errLine: 1, errRow: 1, errCode: CodeNullKey},
		{name: "garbage key", input: "abc\tx\n", err: `not an integer: "abc"`, errLine: 1, errRow: 1, errCode: CodeInvalidText},
		{name: "empty line", input: "1\n\n2\n", rows: []row{{"1\n", 1}}, err: `not an integer: ""`, errLine: 2, errRow: 2, errCode: CodeInvalidText},
		{name: "long garbage key is cut", input: strings.Repeat("a", 60) + "\n",
			err: `not an integer: "` + strings.Repeat("a", 40) + `"...`, errLine: 1, errRow: 1, errCode: CodeInvalidText},
		{name: "missing key column", opts: keyAt(2), input: "1\t2\n",
			err: "missing data for column 3", errLine: 1, errRow: 1, errCode: CodeBadCopyFormat},
		{name: "extra fields", opts: func(o *Options) { o.Fields = 2 }, input: "1\t2\n1\t2\t3\n",
			rows: []row{{"1\t2\n", 1}}, err: "extra data after last expected column", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "missing fields", opts: func(o *Options) { o.Fields = 3 }, input: "1\t2\n",
			err: "missing data for column 3", errLine: 1, errRow: 1, errCode: CodeBadCopyFormat},
		{name: "custom delimiter", opts: func(o *Options) { o.Delimiter = '|' }, input: "7|a\tb\n", rows: []row{{"7|a\tb\n", 7}}},
		{name: "custom null", opts: func(o *Options) { o.Null = "NULL" }, input: "\\N\tx\n",
			err: `not an integer: "N"`, errLine: 1, errRow: 1, errCode: CodeInvalidText},
		{name: "custom null matches", opts: func(o *Options) { o.Null = "NULL" }, input: "NULL\tx\n",
			err: "null shard key", errLine: 1, errRow: 1, errCode: CodeNullKey},
		{name: "empty null", opts: func(o *Options) { o.Null = "" }, input: "\tx\n",
			err: "null shard key", errLine: 1, errRow: 1, errCode: CodeNullKey},
	})
}

func TestSplitCSV(t *testing.T) {
	runLineCases(t, CSV, []lineCase{
		{name: "rows", input: "1,a\n2,b\n", rows: []row{{"1,a\n", 1}, {"2,b\n", 2}}},
		{name: "quoted key", input: "\"42\",x\n", rows: []row{{"\"42\",x\n", 42}}},
		{name: "quoted delimiter", opts: keyAt(1), input: "\"a,b\",3\n", rows: []row{{"\"a,b\",3\n", 3}}},
		{name: "quoted empty key is not null", input: "\"\",x\n",
			err: `not an integer: ""`, errLine: 1, errRow: 1, errCode: CodeInvalidText},
		{name: "unquoted empty key is null", input: ",x\n",
			err: "null shard key in column 1", errLine: 1, errRow: 1, errCode: CodeNullKey},
		{name: "doubled quotes", input: "\"4\"\"2\",x\n",
			err: `not an integer: "4\"2"`, errLine: 1, errRow: 1, errCode: CodeInvalidText},
		{name: "quoted newline", input: "1,\"a\nb\"\n2,c\n", rows: []row{{"1,\"a\nb\"\n", 1}, {"2,c\n", 2}}},
		// While the first line's style is unknown Postgres counts quoted \r, not \n.
		{name: "quoted newline on first line is not counted", input: "1,\"a\nb\"\nx,c\n",
			rows: []row{{"1,\"a\nb\"\n", 1}}, err: `not an integer: "x"`, errLine: 2, errRow: 2, errCode: CodeInvalidText},
		{name: "quoted newline counted", input: "0,z\n1,\"a\nb\"\nx,c\n",
			rows: []row{{"0,z\n", 0}, {"1,\"a\nb\"\n", 1}}, err: `not an integer: "x"`, errLine: 4, errRow: 3, errCode: CodeInvalidText},
		{name: "error in multi-line row names its last line", input: "0,z\nx,\"a\n\nb\"\n",
			rows: []row{{"0,z\n", 0}}, err: `not an integer: "x"`, errLine: 4, errRow: 2, errCode: CodeInvalidText},
		{name: "quoted crlf", input: "1,\"a\r\nb\"\r\n2,c\r\n", rows: []row{{"1,\"a\r\nb\"\r\n", 1}, {"2,c\r\n", 2}}},
		{name: "quoted cr counted in crlf style", input: "1,a\r\n2,\"a\r\nb\"\r\nx\r\n",
			rows: []row{{"1,a\r\n", 1}, {"2,\"a\r\nb\"\r\n", 2}}, err: `not an integer: "x"`, errLine: 4, errRow: 3, errCode: CodeInvalidText},
		{name: "unquoted cr in newline style", input: "1,a\n2,b\rc\n",
			rows: []row{{"1,a\n", 1}}, err: "unquoted carriage return found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "escape character", opts: func(o *Options) { o.Escape = '\\'; o.KeyIndex = 1 },
			input: "\"a\\\"b,\",5\n\"\\\\\",6\n", rows: []row{{"\"a\\\"b,\",5\n", 5}, {"\"\\\\\",6\n", 6}}},
		{name: "escaped quote in key", opts: func(o *Options) { o.Escape = '\\' }, input: "\"1\\\"\"\n",
			err: `not an integer: "1\""`, errLine: 1, errRow: 1, errCode: CodeInvalidText},
		{name: "backslash is data", opts: keyAt(1), input: "a\\,7\n", rows: []row{{"a\\,7\n", 7}}},
		{name: "header with quoted newline", opts: withHeader, input: "\"h\n1\",h2\n5,x\n",
			prefix: "\"h\n1\",h2\n", rows: []row{{"5,x\n", 5}}},
		{name: "header lines counted", opts: withHeader, input: "h\n1\nx\n",
			prefix: "h\n", rows: []row{{"1\n", 1}}, err: `"x"`, errLine: 3, errRow: 2, errCode: CodeInvalidText},
		{name: "end marker", input: "1\n\\.\n2\n", rows: []row{{"1\n", 1}}, ended: true},
		{name: "end marker crlf", input: "1\r\n\\.\r\n2\r\n", rows: []row{{"1\r\n", 1}}, ended: true},
		{name: "end marker not first on line is data", opts: keyAt(1), input: "a\\.,3\n", rows: []row{{"a\\.,3\n", 3}}},
		{name: "end marker followed by data is data", opts: keyAt(1), input: "\\.x,5\n", rows: []row{{"\\.x,5\n", 5}}},
		{name: "end marker at end of data is data", input: "1\n\\.",
			rows: []row{{"1\n", 1}}, err: `not an integer: "\\."`, errLine: 2, errRow: 2, errCode: CodeInvalidText},
		{name: "backslash at end of data", input: "1\n\\",
			rows: []row{{"1\n", 1}}, err: `not an integer: "\\"`, errLine: 2, errRow: 2, errCode: CodeInvalidText},
		{name: "end marker with newline in crlf style", input: "1\r\n\\.\n",
			rows: []row{{"1\r\n", 1}}, err: "unquoted newline found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "end marker with cr cr in crlf style", input: "1\r\n\\.\r\r",
			rows: []row{{"1\r\n", 1}}, err: "end-of-copy marker does not match previous newline style", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "end marker with cr then data in crlf style", input: "1\r\n\\.\rx",
			rows: []row{{"1\r\n", 1}}, err: "unquoted carriage return found in data", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "end marker then quote", input: "1\n\\.\"\n\"\n",
			rows: []row{{"1\n", 1}}, err: `not an integer: "\\.\n"`, errLine: 3, errRow: 2, errCode: CodeInvalidText},
		{name: "unterminated quote", input: "0\n1,\"abc\ndef",
			rows: []row{{"0\n", 0}}, err: "unterminated CSV quoted field", errLine: 3, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "unterminated quote in header is dropped", opts: withHeader, input: "a,\"b\n1,2\n", prefix: "a,\"b\n1,2\n"},
		{name: "custom null", opts: func(o *Options) { o.Null = "NULL" }, input: "NULL,x\n",
			err: "null shard key", errLine: 1, errRow: 1, errCode: CodeNullKey},
		{name: "quoted custom null is a value", opts: func(o *Options) { o.Null = "NULL" }, input: "\"NULL\",x\n",
			err: `not an integer: "NULL"`, errLine: 1, errRow: 1, errCode: CodeInvalidText},
		{name: "fields checked", opts: func(o *Options) { o.Fields = 2 }, input: "1,2\n1,2,3\n",
			rows: []row{{"1,2\n", 1}}, err: "extra data after last expected column", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "custom quote and delimiter", opts: func(o *Options) { o.Delimiter = ';'; o.Quote = '\''; o.Escape = '\'' },
			input: "'1';'a;b'\n", rows: []row{{"'1';'a;b'\n", 1}}},
	})
}

// Postgres 18 reads `\.` only alone on a text line, and never in CSV.
func TestSplitServer18EndMarker(t *testing.T) {
	pg18 := func(o *Options) { o.ServerMajor = 18 }
	runLineCases(t, Text, []lineCase{
		{name: "alone", opts: pg18, input: "1\n\\.\n2\n", rows: []row{{"1\n", 1}}, ended: true},
		{name: "after data", opts: pg18, input: "1\n2\\.\n",
			rows: []row{{"1\n", 1}}, err: "end-of-copy marker is not alone on its line", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
		{name: "at end of data", opts: pg18, input: "1\n\\.",
			rows: []row{{"1\n", 1}}, err: "end-of-copy marker is not alone on its line", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
	})
	runLineCases(t, CSV, []lineCase{
		{name: "csv data", opts: func(o *Options) { o.ServerMajor = 18; o.KeyIndex = 1 }, input: "\\.,1\n\\.\n",
			rows: []row{{"\\.,1\n", 1}}, err: "missing data for column 2", errLine: 2, errRow: 2, errCode: CodeBadCopyFormat},
	})
}

func TestOptionsRejected(t *testing.T) {
	for name, o := range map[string]Options{
		"negative key":        {Format: Text, KeyIndex: -1},
		"key beyond fields":   {Format: Text, KeyIndex: 2, Fields: 2},
		"text quote":          {Format: Text, Quote: '"'},
		"text letter delim":   {Format: Text, Delimiter: 'a'},
		"newline delimiter":   {Format: CSV, Delimiter: '\n'},
		"quote is delimiter":  {Format: CSV, Delimiter: '"'},
		"null has delimiter":  {Format: CSV, Null: "a,b"},
		"null has newline":    {Format: Text, Delimiter: '\t', Null: "\n"},
		"binary header":       {Format: Binary, Header: true},
		"unknown format":      {Format: 9},
		"negative row size":   {Format: Text, MaxRowSize: -1},
		"multibyte delimiter": {Format: CSV, Delimiter: 0xc3},
	} {
		if _, err := NewSplitter(o); err == nil {
			t.Errorf("%s: NewSplitter accepted %+v", name, o)
		}
	}
}

func TestRowTooLarge(t *testing.T) {
	o := DefaultOptions(Text)
	o.MaxRowSize = 8
	got := split(t, o, []byte("1\t12345\n2\t123456789\n"), []int{3, 12})
	if got.ErrCode != CodeProgramLimit || got.ErrLine != 2 || len(got.Rows) != 1 {
		t.Fatalf("got %v, want the second row refused for size", got)
	}
	// In one piece the same row is refused too.
	got = split(t, o, []byte("1\t12345\n2\t123456789\n"), nil)
	if got.ErrCode != CodeProgramLimit || got.ErrLine != 2 {
		t.Fatalf("got %v, want the second row refused for size", got)
	}
}

func TestFinishTwice(t *testing.T) {
	s, err := NewSplitter(DefaultOptions(Text))
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := s.Finish(&rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(&rec); err != ErrFinished {
		t.Fatalf("second Finish: %v", err)
	}
	if err := s.Feed([]byte("1\n"), &rec); err != ErrFinished {
		t.Fatalf("Feed after Finish: %v", err)
	}
	if s.Trailer() != nil {
		t.Fatalf("text trailer %q", s.Trailer())
	}
}

func TestSupportsClientEncoding(t *testing.T) {
	for name, want := range map[string]bool{
		"UTF8": true, "utf-8": true, "LATIN1": true, "EUC_JP": true, "SQL_ASCII": true,
		"SJIS": false, "Shift_JIS": false, "BIG5": false, "gbk": false, "UHC": false,
		"GB18030": false, "JOHAB": false, "SHIFT_JIS_2004": false, "WIN932": false,
	} {
		if got := SupportsClientEncoding(name); got != want {
			t.Errorf("SupportsClientEncoding(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestResetStartsAFreshStream(t *testing.T) {
	o := DefaultOptions(CSV)
	o.Header = true
	s := mustSplitter(t, o)
	var first recorder
	// A CRLF stream that ends inside a quoted field, leaving state behind.
	if err := s.Feed([]byte("h\r\n1,a\r\n2,\"x"), &first); err != nil {
		t.Fatal(err)
	}
	s.Reset()
	var second recorder
	if err := s.Feed([]byte("k,v\n3,\"b\nc\"\n4,d"), &second); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(&second); err != nil {
		t.Fatal(err)
	}
	want := []row{{"3,\"b\nc\"\n", 3}, {"4,d", 4}}
	if string(second.prefix) != "k,v\n" || !reflect.DeepEqual(second.rows, want) || s.Rows() != 2 {
		t.Fatalf("after Reset: prefix %q rows %v (Rows() %d)", second.prefix, second.rows, s.Rows())
	}
}

// failingSink refuses the second row.
type failingSink struct{ recorder }

var errSinkFull = errors.New("destination gone")

func (f *failingSink) Row(raw []byte, key int64) error {
	if len(f.rows) == 1 {
		return errSinkFull
	}
	return f.recorder.Row(raw, key)
}

func TestSinkErrorStopsTheSplitter(t *testing.T) {
	s := mustSplitter(t, DefaultOptions(Text))
	var sink failingSink
	err := s.Feed([]byte("1\n2\n3\n"), &sink)
	if !errors.Is(err, errSinkFull) || !strings.Contains(err.Error(), "row 2") {
		t.Fatalf("Feed: %v", err)
	}
	if again := s.Finish(&sink); !errors.Is(again, errSinkFull) {
		t.Fatalf("Finish after a sink error: %v", again)
	}
	if s.Rows() != 1 {
		t.Fatalf("Rows() = %d, want 1", s.Rows())
	}
}
