package copydata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// pgCase is one COPY stream that goes both to Postgres and through the splitter.
type pgCase struct {
	name   string
	format Format
	opts   func(*Options)
	// keyLast puts the key in the second column (v, k) instead of the first (k, v).
	keyLast bool
	// keyType is the key column's type; bigint when empty.
	keyType string
	input   string
}

func pgCases() []pgCase {
	text := func(name, input string) pgCase { return pgCase{name: "text/" + name, format: Text, input: input} }
	csv := func(name, input string) pgCase { return pgCase{name: "csv/" + name, format: CSV, input: input} }
	header := func(c pgCase) pgCase {
		c.name += "/header"
		c.opts = func(o *Options) { o.Header = true }
		return c
	}
	keyLast := func(c pgCase) pgCase { c.keyLast = true; c.name += "/key last"; return c }
	cases := []pgCase{
		text("rows", "1\ta\n2\tb\n"),
		text("no final newline", "1\ta\n2\tb"),
		text("crlf", "1\ta\r\n2\tb\r\n"),
		text("cr", "1\ta\r2\tb\r"),
		text("cr at end", "1\ta\r"),
		text("cr after newline style", "1\ta\n2\tb\r\n"),
		text("newline after crlf style", "1\ta\r\n2\tb\n"),
		text("lone cr in crlf style", "1\ta\r\n2\tb\r3\tc\r\n"),
		text("lone cr at end in crlf style", "1\ta\r\n2\tb\r"),
		header(text("header", "k\tv\n1\ta\n")),
		header(text("header error line", "k\tv\n1\ta\nx\tb\n")),
		header(text("header is end marker", "\\.\n1\ta\n")),
		text("end marker", "1\ta\n\\.\n2\tb\n"),
		text("end marker then garbage", "1\ta\n\\.\ngarbage\r\n\\"),
		text("end marker crlf", "1\ta\r\n\\.\r\n2\tb\r\n"),
		text("end marker cr", "1\ta\r\\.\r"),
		text("end marker first", "\\.\n1\ta\n"),
		text("end marker after escaped backslash", "1\ta\\\\\\.\n2\tb\n"),
		header(text("header ended by end marker", "k\\.\n1\ta\n")),
		text("end marker after data", "1\ta\n2\tb\\.\n3\tc\n"),
		text("end marker after delimiter", "1\ta\n2\t\\.\n"),
		text("end marker at end of data", "1\ta\n\\."),
		text("end marker corrupt", "1\ta\n\\.x\n"),
		text("end marker newline in crlf style", "1\ta\r\n\\.\n"),
		text("end marker cr in newline style", "1\ta\n\\.\r"),
		text("escaped backslash dot", "5\tx\\\\.\n"),
		text("backslash at end", "5\tx\\"),
		text("escaped newline", "1\tab\\\ncd\n2\tx\n"),
		text("escaped crlf", "1\tab\\\r\ncd\r\n"),
		text("escapes in key", "\\x31\\062\tv\n"),
		text("escaped spaces in key", "\\t42\\n\tv\n"),
		text("spaces around key", " 42 \tv\n"),
		text("out of range", "9223372036854775808\tv\n"),
		text("bigint limits", "9223372036854775807\ta\n-9223372036854775808\tb\n"),
		text("null key", "1\ta\n\\N\tv\n"),
		text("garbage key", "1\ta\nabc\tv\n"),
		text("empty line", "1\ta\n\n2\tb\n"),
		text("missing column", "1\ta\n2\n"),
		text("extra column", "1\ta\n2\tb\tc\n"),
		text("escaped delimiter", "1\ta\\\tb\n"),
		keyLast(text("missing key column", "a\t1\nb\n")),
		keyLast(text("null key last", "a\t\\N\n")),
		{name: "text/custom delimiter and null", format: Text, input: "1|NULL\n2|x\nNULL|y\n",
			opts: func(o *Options) { o.Delimiter = '|'; o.Null = "NULL" }},

		csv("rows", "1,a\n2,b\n"),
		csv("quoted key", "\"42\",x\n"),
		csv("quoted empty key", "\"\",x\n"),
		csv("empty key", ",x\n"),
		csv("quoted newline", "1,\"a\nb\"\n2,c\n"),
		csv("quoted newline first line", "1,\"a\nb\"\nx,c\n"),
		csv("quoted newline counted", "0,z\n1,\"a\nb\"\nx,c\n"),
		csv("multi-line row error", "0,z\nx,\"a\n\nb\"\n"),
		csv("quoted crlf", "1,\"a\r\nb\"\r\n2,c\r\n"),
		csv("quoted crlf counted", "1,a\r\n2,\"a\r\nb\"\r\nx,y\r\n"),
		csv("quoted cr counted in cr style", "1,a\r2,\"a\rb\"\rx,y\r"),
		csv("unquoted cr", "1,a\n2,b\rc\n"),
		csv("doubled quotes", "1,\"a\"\"b\"\n\"4\"\"2\",x\n"),
		header(csv("header with quoted newline", "\"h\n1\",h2\n5,x\n")),
		header(csv("header error line", "k,v\n1,a\nx,b\n")),
		header(csv("header unterminated quote", "a,\"b\n1,2\n")),
		csv("end marker", "1,a\n\\.\n2,b\n"),
		csv("end marker crlf", "1,a\r\n\\.\r\n2,b\r\n"),
		csv("end marker cr", "1,a\r\\.\r2,b\r"),
		keyLast(csv("quoted end marker", "\"\\.\",1\n\"\\.\n\",2\n")),
		keyLast(csv("end marker then data", "\\.x,5\n")),
		keyLast(csv("end marker after data", "a\\.,3\n")),
		csv("end marker at end of data", "1,a\n\\."),
		csv("backslash at end of data", "1,a\n\\"),
		csv("end marker newline in crlf style", "1,a\r\n\\.\n"),
		csv("end marker cr cr in crlf style", "1,a\r\n\\.\r\r"),
		csv("end marker cr then data in crlf style", "1,a\r\n\\.\rx"),
		csv("end marker then quote", "1,a\n\\.\"\n\",b\n"),
		csv("unterminated quote", "0,a\n1,\"abc\ndef"),
		csv("empty line", "1,a\n\n2,b\n"),
		csv("extra column", "1,2,3\n"),
		csv("missing column", "1,a\n2\n"),
		csv("spaces", " 7 ,a\n\" 8 \",b\n"),
		{name: "csv/escape", format: CSV, input: "5,\"a\\\"b,\"\n6,\"\\\\\"\n7,\"x\\y\"\n",
			opts: func(o *Options) { o.Escape = '\\' }},
		{name: "csv/custom null", format: CSV, input: "1,NULL\n2,\"NULL\"\nNULL,x\n",
			opts: func(o *Options) { o.Null = "NULL" }},
		{name: "csv/custom quote and delimiter", format: CSV, input: "'1';'a;b'\n'2';'c''d'\n",
			opts: func(o *Options) { o.Delimiter = ';'; o.Quote = '\''; o.Escape = '\'' }},
	}

	bin := func(name, keyType string, data []byte) pgCase {
		return pgCase{name: "binary/" + name + "/" + keyType, format: Binary, keyType: keyType, input: string(data)}
	}
	stream := func(build func(b *binaryStream)) []byte {
		b := newBinaryStream(nil)
		build(b)
		return b.bytes()
	}
	cases = append(cases,
		bin("rows", "bigint", stream(func(b *binaryStream) {
			b.tuple(int8Field(1), textField("a"))
			b.tuple(int8Field(math.MinInt64), nil)
			b.tuple(int8Field(math.MaxInt64), textField(strings.Repeat("z", 1000)))
			b.trailer()
		})),
		bin("rows", "integer", stream(func(b *binaryStream) {
			b.tuple(int4Field(-3), textField("a"))
			b.tuple(int4Field(math.MaxInt32), textField("b"))
			b.trailer()
		})),
		bin("rows", "smallint", stream(func(b *binaryStream) {
			b.tuple(int2Field(-3), textField("a"))
			b.tuple(int2Field(math.MaxInt16), textField("b"))
			b.trailer()
		})),
		bin("no trailer", "bigint", stream(func(b *binaryStream) { b.tuple(int8Field(1), textField("a")) })),
		bin("stray byte", "bigint", append(stream(func(b *binaryStream) { b.tuple(int8Field(1), textField("a")) }), 0)),
		bin("after trailer", "bigint", append(stream(func(b *binaryStream) {
			b.tuple(int8Field(1), textField("a"))
			b.trailer()
		}), 0)),
		bin("truncated", "bigint", func() []byte {
			d := stream(func(b *binaryStream) {
				b.tuple(int8Field(1), textField("a"))
				b.tuple(int8Field(2), textField("abcdef"))
			})
			return d[:len(d)-3]
		}()),
		bin("null key", "bigint", stream(func(b *binaryStream) {
			b.tuple(int8Field(1), textField("a"))
			b.tuple(nil, textField("a"))
		})),
		bin("field count", "bigint", stream(func(b *binaryStream) {
			b.tuple(int8Field(1), textField("a"))
			b.tuple(int8Field(1), textField("a"), nil)
		})),
		bin("header extension", "bigint", func() []byte {
			b := newBinaryStream([]byte("extension"))
			b.tuple(int8Field(9), textField("a"))
			b.trailer()
			return b.bytes()
		}()),
		bin("empty", "bigint", stream(func(b *binaryStream) { b.trailer() })),
		bin("nothing", "bigint", nil),
		bin("bad signature", "bigint", []byte("PGCOPY\n\377\r\n\x01\x00\x00\x00\x00\x00\x00\x00\x00")),
	)
	return cases
}

var lineContext = regexp.MustCompile(`, line (\d+)`)

// TestMatchesPostgres runs each stream through a real COPY and through the splitter: both
// must accept it or both reject it at the same line; accepted rows must have the keys
// Postgres stored; and forwarding each row to one of two tables by key, with the prefix and
// trailer, must load exactly the rows the direct COPY loaded.
func TestMatchesPostgres(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 1})
	conn := pgtest.Connect(t, cl.Groups[0].Writer.AppDSN())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	versionNum := createTables(ctx, t, conn)
	for _, tc := range pgCases() {
		t.Run(tc.name, func(t *testing.T) { checkAgainstPostgres(ctx, t, conn, versionNum, tc) })
	}
}

// TestMatchesPostgresRandom holds the splitter to Postgres on random streams made of the
// bytes that matter to the parsers (terminators, escapes, quotes, delimiters, the marker).
func TestMatchesPostgresRandom(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 1})
	conn := pgtest.Connect(t, cl.Groups[0].Writer.AppDSN())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	versionNum := createTables(ctx, t, conn)
	rng := rand.New(rand.NewPCG(20240314, 8))
	// Key digits stay decimal ('x' and '_' would make Postgres 16 syntax) and octal escapes
	// stay below 0x80 (a value byte must be valid UTF-8 for the text column).
	const alphabet = "115\t\t\n\n\r\\\\..N,,\"\" a-"
	for i := 0; i < 300; i++ {
		for _, format := range []Format{Text, CSV} {
			n := rng.IntN(24)
			input := make([]byte, n)
			for j := range input {
				input[j] = alphabet[rng.IntN(len(alphabet))]
			}
			tc := pgCase{name: fmt.Sprintf("%s/%d", format, i), format: format, input: string(input), keyLast: rng.IntN(4) == 0}
			if rng.IntN(4) == 0 {
				tc.opts = func(o *Options) { o.Header = true }
			}
			ok := t.Run(tc.name, func(t *testing.T) { checkAgainstPostgres(ctx, t, conn, versionNum, tc) })
			if !ok {
				t.Fatalf("input %q (key last %v, header %v)", input, tc.keyLast, tc.opts != nil)
			}
		}
	}
}

// createTables makes the source and destination tables for every key type and column
// order, and returns the server's version number.
func createTables(ctx context.Context, t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var versionNum int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&versionNum); err != nil {
		t.Fatal(err)
	}
	for _, keyType := range []string{"bigint", "integer", "smallint"} {
		for _, table := range []string{"src", "dst0", "dst1"} {
			for _, keyLast := range []bool{false, true} {
				cols := fmt.Sprintf("k %s NOT NULL, v text", keyType)
				if keyLast {
					cols = fmt.Sprintf("v text, k %s NOT NULL", keyType)
				}
				sql := fmt.Sprintf("CREATE TABLE %s (ord bigserial, %s)", tableName(table, keyType, keyLast), cols)
				if _, err := conn.Exec(ctx, sql); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return versionNum
}

// checkAgainstPostgres runs one stream through COPY and through the splitter and compares.
func checkAgainstPostgres(ctx context.Context, t *testing.T, conn *pgx.Conn, versionNum int, tc pgCase) {
	o := DefaultOptions(tc.format)
	if tc.opts != nil {
		tc.opts(&o)
	}
	o.Fields = 2
	if tc.keyLast {
		o.KeyIndex = 1
	}
	o.ServerMajor = versionNum / 10000
	keyType := tc.keyType
	if keyType == "" {
		keyType = "bigint"
	}
	src := tableName("src", keyType, tc.keyLast)
	dst := [2]string{tableName("dst0", keyType, tc.keyLast), tableName("dst1", keyType, tc.keyLast)}
	cols := "(k, v)"
	if tc.keyLast {
		cols = "(v, k)"
	}

	got := split(t, o, []byte(tc.input), nil)
	var bytewise []int
	for i := 1; i < len(tc.input); i++ {
		bytewise = append(bytewise, i)
	}
	if again := split(t, o, []byte(tc.input), bytewise); !reflect.DeepEqual(again, got) {
		t.Fatalf("byte by byte: %v, whole: %v", again, got)
	}

	for _, table := range []string{src, dst[0], dst[1]} {
		if _, err := conn.Exec(ctx, "TRUNCATE "+table); err != nil {
			t.Fatal(err)
		}
	}
	pgErr := copyIn(ctx, conn, src, cols, o, []byte(tc.input))
	if pgErr != nil {
		var pe *pgconn.PgError
		if !errors.As(pgErr, &pe) {
			t.Fatalf("COPY: %v", pgErr)
		}
		line := int64(0)
		if m := lineContext.FindStringSubmatch(pe.Where); m != nil {
			line, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if got.Err == "" {
			t.Fatalf("Postgres rejected the stream (%s; %s) but the splitter accepted it: %v", pe.Message, pe.Where, got)
		}
		if got.ErrLine != line {
			t.Fatalf("Postgres: %s at line %d (%s); splitter: %s at line %d", pe.Message, line, pe.Where, got.Err, got.ErrLine)
		}
		t.Logf("both reject at line %d: postgres %q, splitter %q", line, pe.Message, got.Err)
		return
	}
	if got.Err != "" {
		t.Fatalf("Postgres accepted the stream but the splitter did not: %v", got)
	}
	var keys []int64
	for _, r := range got.Rows {
		keys = append(keys, r.Key)
	}
	if stored := queryStrings(ctx, t, conn, "SELECT k::text FROM "+src+" ORDER BY ord"); !slices.Equal(stored, formatKeys(keys)) {
		t.Fatalf("Postgres stored keys %v, splitter found %v", stored, keys)
	}

	// Forward each row to the destination its key picks, as the proxy will.
	var parts [2]bytes.Buffer
	for d := range parts {
		parts[d].WriteString(got.Prefix)
	}
	for _, r := range got.Rows {
		parts[uint64(r.Key)%2].WriteString(r.Raw)
	}
	s := mustSplitter(t, o)
	for d := range parts {
		parts[d].Write(s.Trailer())
		if err := copyIn(ctx, conn, dst[d], cols, o, parts[d].Bytes()); err != nil {
			t.Fatalf("COPY of destination %d's part %q: %v", d, parts[d].Bytes(), err)
		}
	}
	all := "SELECT k::text || '|' || coalesce(v, '<null>') FROM %s"
	want := queryStrings(ctx, t, conn, fmt.Sprintf(all+" ORDER BY 1", src))
	forwarded := queryStrings(ctx, t, conn, fmt.Sprintf("SELECT * FROM ("+all+" UNION ALL "+all+") u ORDER BY 1", dst[0], dst[1]))
	if !slices.Equal(forwarded, want) {
		t.Fatalf("forwarded rows %q, direct COPY loaded %q", forwarded, want)
	}
}

func tableName(base, keyType string, keyLast bool) string {
	name := base + "_" + keyType
	if keyLast {
		name += "_keylast"
	}
	return name
}

// copyIn runs COPY table cols FROM STDIN with the options o describes.
func copyIn(ctx context.Context, conn *pgx.Conn, table, cols string, o Options, data []byte) error {
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	opts := []string{"FORMAT " + o.Format.String()}
	if o.Format != Binary {
		opts = append(opts, "DELIMITER "+lit(string(o.Delimiter)), "NULL "+lit(o.Null))
		if o.Header {
			opts = append(opts, "HEADER true")
		}
		if o.Format == CSV {
			opts = append(opts, "QUOTE "+lit(string(o.Quote)), "ESCAPE "+lit(string(o.Escape)))
		}
	}
	sql := fmt.Sprintf("COPY %s %s FROM STDIN WITH (%s)", table, cols, strings.Join(opts, ", "))
	_, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(data), sql)
	return err
}

func queryStrings(ctx context.Context, t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func formatKeys(keys []int64) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, strconv.FormatInt(k, 10))
	}
	return out
}
