package merge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/shardwire/shardwire/router"
)

// fieldSpec is a test RowDescription field.
type fieldSpec struct {
	name string
	oid  uint32
}

func rowDesc(fs ...fieldSpec) []byte {
	var fields []field
	for _, f := range fs {
		fields = append(fields, field{name: []byte(f.name), typeOID: f.oid, typlen: -1, typmod: -1})
	}
	return appendRowDescription(nil, fields)
}

// dataRow builds a DataRow: nil is NULL, a string or []byte is the value.
func dataRow(vals ...any) []byte {
	cols := make([][]byte, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
		case string:
			cols[i] = []byte(v)
		case []byte:
			cols[i] = v
			if v == nil {
				cols[i] = nil
			}
		default:
			panic(fmt.Sprintf("dataRow value %T", v))
		}
	}
	return appendDataRow(nil, cols)
}

// sliceSource yields its rows; it scribbles over the frame it returned before on every call,
// so that a Merger keeping a frame beyond its validity reads garbage.
type sliceSource struct {
	rows  [][]byte
	i     int
	last  []byte
	err   error // returned after the rows, instead of the end
	reads int
	ended bool
}

func src(rows ...[]byte) *sliceSource { return &sliceSource{rows: rows} }

func (s *sliceSource) Next() ([]byte, error) {
	if s.ended {
		return nil, errors.New("Next called after the end")
	}
	for i := range s.last {
		s.last[i] = 0xEE
	}
	if s.i >= len(s.rows) {
		s.ended = true
		if s.err != nil {
			return nil, s.err
		}
		return nil, nil
	}
	s.reads++
	s.last = slices.Clone(s.rows[s.i])
	s.i++
	return s.last, nil
}

// render prints a DataRow as "a|b|NULL"; binary values print in hex.
func render(t *testing.T, frame []byte, bin bool) string {
	t.Helper()
	cols, err := splitDataRow(frame, nil)
	if err != nil {
		t.Fatalf("emitted frame: %v", err)
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		switch {
		case c == nil:
			parts[i] = "NULL"
		case bin:
			parts[i] = fmt.Sprintf("%x", c)
		default:
			parts[i] = string(c)
		}
	}
	return strings.Join(parts, "|")
}

// mergeRows runs a merge and returns the rendered rows.
func mergeRows(t *testing.T, spec *router.MergeSpec, limit, offset int64, rd []byte, formats []int16, sources ...*sliceSource) ([]string, error) {
	t.Helper()
	m, err := New(spec, limit, offset, rd, formats)
	if err != nil {
		return nil, err
	}
	srcs := make([]Source, len(sources))
	for i, s := range sources {
		srcs[i] = s
	}
	var out []string
	n, err := m.Run(srcs, func(frame []byte) error {
		out = append(out, render(t, frame, len(formats) == 1 && formats[0] == 1))
		return nil
	})
	if err == nil && n != int64(len(out)) {
		t.Errorf("Run counted %d rows, emitted %d", n, len(out))
	}
	return out, err
}

func ints(vals ...int) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = fmt.Sprint(v)
	}
	return out
}

func TestConcatAndLimits(t *testing.T) {
	rd := rowDesc(fieldSpec{"id", oidInt4})
	spec := &router.MergeSpec{Columns: 1}
	mk := func() []*sliceSource {
		return []*sliceSource{src(dataRow("1"), dataRow("2")), src(), src(dataRow("3"), dataRow("4"), dataRow("5"))}
	}
	for _, c := range []struct {
		limit, offset int64
		want          []string
	}{
		{-1, -1, ints(1, 2, 3, 4, 5)},
		{2, -1, ints(1, 2)},
		{3, 1, ints(2, 3, 4)},
		{10, 3, ints(4, 5)},
		{-1, 5, nil},
		{5, 50, nil},
		{0, -1, nil},
	} {
		s := mk()
		got, err := mergeRows(t, spec, c.limit, c.offset, rd, nil, s...)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("limit %d offset %d: %v %v, want %v", c.limit, c.offset, got, err, c.want)
		}
		if c.limit == 2 && s[2].reads != 0 {
			t.Errorf("LIMIT 2 read %d rows of the third source", s[2].reads)
		}
	}
	// Hidden columns are dropped from the frames.
	got, err := mergeRows(t, &router.MergeSpec{Columns: 1, Hidden: 1}, -1, -1,
		rowDesc(fieldSpec{"id", oidInt4}, fieldSpec{"_sw_h1", oidText}), nil,
		src(dataRow("1", "x")), src(dataRow("2", nil)))
	if err != nil || !slices.Equal(got, ints(1, 2)) {
		t.Errorf("hidden: %v %v", got, err)
	}
	// No sources at all.
	if got, err := mergeRows(t, spec, -1, -1, rd, nil); err != nil || got != nil {
		t.Errorf("no sources: %v %v", got, err)
	}
}

func TestSourceErrorsAndEmitErrors(t *testing.T) {
	rd := rowDesc(fieldSpec{"id", oidInt4})
	boom := errors.New("backend went away")
	s := src(dataRow("1"))
	s.err = boom
	if _, err := mergeRows(t, &router.MergeSpec{Columns: 1}, -1, -1, rd, nil, s); !errors.Is(err, boom) {
		t.Errorf("source error: %v", err)
	}
	m, err := New(&router.MergeSpec{Columns: 1, OrderBy: []router.SortKey{{Column: 0}}}, -1, -1, rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("client went away")
	_, err = m.Run([]Source{src(dataRow("1")), src(dataRow("2"))}, func([]byte) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("emit error: %v", err)
	}
	if _, err := m.Run(nil, func([]byte) error { return nil }); err == nil {
		t.Error("a second Run succeeded")
	}
	// A row of the wrong width, and a malformed frame.
	if _, err := mergeRows(t, &router.MergeSpec{Columns: 1}, -1, -1, rd, nil, src(dataRow("1", "2"))); err == nil {
		t.Error("accepted a row of 2 columns")
	}
	bad := dataRow("1")
	bad[len(bad)-5] = 9
	if _, err := mergeRows(t, &router.MergeSpec{Columns: 1}, -1, -1, rd, nil, src(bad)); err == nil {
		t.Error("accepted a malformed DataRow")
	}
}

// typeCase lists values of one type in ascending order in one wire format.
type typeCase struct {
	name   string
	oid    uint32
	format int16
	asc    [][]byte
}

func be16(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func be64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
func f4(v float32) []byte { return binary.BigEndian.AppendUint32(nil, math.Float32bits(v)) }
func f8(v float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(v)) }
func texts(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, v := range s {
		out[i] = []byte(v)
	}
	return out
}
func numBin(t *testing.T, s string) []byte {
	var d decimal
	if err := parseNumericText([]byte(s), &d); err != nil {
		t.Fatal(err)
	}
	return appendNumericBinary(nil, &d)
}
func interval(us int64, days, months int32) []byte {
	return append(append(be64(us), be32(days)...), be32(months)...)
}

func typeCases(t *testing.T) []typeCase {
	nums := []string{"-Infinity", "-100.5", "-2", "0", "0.0001", "1.5", "2", "100000000000000000000", "Infinity", "NaN"}
	var numsBin [][]byte
	for _, n := range nums {
		numsBin = append(numsBin, numBin(t, n))
	}
	return []typeCase{
		{"int2 text", oidInt2, 0, texts("-32768", "-5", "0", "7", "32767")},
		{"int2 binary", oidInt2, 1, [][]byte{be16(-32768), be16(-5), be16(0), be16(7), be16(32767)}},
		{"int4 text", oidInt4, 0, texts("-2147483648", "-10", "9", "10", "2147483647")},
		{"int4 binary", oidInt4, 1, [][]byte{be32(math.MinInt32), be32(-10), be32(9), be32(10), be32(math.MaxInt32)}},
		{"int8 text", oidInt8, 0, texts("-9223372036854775808", "-1", "2", "11", "9223372036854775807")},
		{"int8 binary", oidInt8, 1, [][]byte{be64(math.MinInt64), be64(-1), be64(2), be64(11), be64(math.MaxInt64)}},
		{"oid text", oidOID, 0, texts("1", "16", "1000", "4294967295")},
		{"oid binary", oidOID, 1, [][]byte{be32(1), be32(16), be32(1000), be32(-1)}},
		{"float4 text", oidFloat4, 0, texts("-Infinity", "-1.5", "0", "1e-05", "3.4e+38", "Infinity", "NaN")},
		{"float4 binary", oidFloat4, 1, [][]byte{f4(float32(math.Inf(-1))), f4(-1.5), f4(0), f4(3.4e38), f4(float32(math.Inf(1))), f4(float32(math.NaN()))}},
		{"float8 text", oidFloat8, 0, texts("-Infinity", "-1e+100", "-0.5", "0", "1.5e-05", "2", "1e+15", "Infinity", "NaN")},
		{"float8 binary", oidFloat8, 1, [][]byte{f8(math.Inf(-1)), f8(-2), f8(0), f8(0.25), f8(math.Inf(1)), f8(math.NaN())}},
		{"numeric text", oidNumeric, 0, texts(nums...)},
		{"numeric binary", oidNumeric, 1, numsBin},
		{"text", oidText, 0, texts("", "A", "B", "a", "a ", "ab", "b", "é")},
		{"text binary", oidText, 1, texts("", "A", "a", "b")},
		{"varchar", oidVarchar, 0, texts("x", "xy", "y")},
		{"bpchar", oidBpchar, 0, texts("a  ", "ab ", "b  ")},
		{"bool text", oidBool, 0, texts("f", "t")},
		{"bool binary", oidBool, 1, [][]byte{{0}, {1}}},
		{"date text", oidDate, 0, texts("-infinity", "0044-03-15 BC", "0001-01-01", "1999-12-31", "2000-01-01", "2024-02-29", "12345-01-01", "infinity")},
		{"date binary", oidDate, 1, [][]byte{be32(math.MinInt32), be32(-746117), be32(-1), be32(0), be32(8825), be32(math.MaxInt32)}},
		{"timestamp text", oidTimestamp, 0, texts("-infinity", "0001-12-31 23:59:59 BC", "1999-12-31 23:59:59.999999", "2000-01-01 00:00:00", "2000-01-01 00:00:00.5", "2024-06-01 12:00:00", "infinity")},
		{"timestamp binary", oidTimestamp, 1, [][]byte{be64(math.MinInt64), be64(-1), be64(0), be64(500000), be64(math.MaxInt64)}},
		{"timestamptz text", oidTimestamptz, 0, texts("-infinity", "2024-03-10 12:00:00+05:30", "2024-03-10 01:59:59-08", "2024-03-10 03:00:00-07", "2024-03-10 10:00:01+00", "infinity")},
		{"timestamptz binary", oidTimestamptz, 1, [][]byte{be64(-5), be64(7), be64(9)}},
		{"time text", oidTime, 0, texts("00:00:00", "00:00:00.000001", "09:59:59", "10:00:00", "23:59:59.999999", "24:00:00")},
		{"time binary", oidTime, 1, [][]byte{be64(0), be64(1), be64(86400000000)}},
		{"uuid text", oidUUID, 0, texts("00000000-0000-0000-0000-000000000000", "0a000000-0000-0000-0000-000000000000", "a0000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff")},
		{"uuid binary", oidUUID, 1, [][]byte{make([]byte, 16), append([]byte{0x0a}, make([]byte, 15)...), append([]byte{0xa0}, make([]byte, 15)...)}},
		{"interval text", oidInterval, 0, texts("-1 years", "-00:00:01", "00:00:00", "23:59:59", "1 day 00:00:01", "1 mon -1 days", "1 mon", "1 year 2 mons -3 days +04:05:06.5")},
		{"interval binary", oidInterval, 1, [][]byte{interval(-1, 0, 0), interval(0, 0, 0), interval(86400000000-1, 0, 0), interval(1, 1, 0), interval(0, 31, 0), interval(0, 0, 2)}},
		{"bytea text", oidBytea, 0, texts(`\x`, `\x00`, `\x0001`, `\x01`, `\xff`)},
		{"bytea binary", oidBytea, 1, [][]byte{{}, {0}, {0, 1}, {1}, {0xff}}},
	}
}

// TestSortedMergeTypes merges values of every type spread over three sorted sources.
func TestSortedMergeTypes(t *testing.T) {
	for _, tc := range typeCases(t) {
		for _, desc := range []bool{false, true} {
			vals := slices.Clone(tc.asc)
			if desc {
				slices.Reverse(vals)
			}
			// Values spread round-robin keep each source sorted; a NULL ends (ASC) or
			// starts (DESC, Postgres's default NULLS FIRST) one source.
			sources := []*sliceSource{src(), src(), src()}
			if desc {
				sources[1].rows = append(sources[1].rows, dataRow(nil))
			}
			for i, v := range vals {
				s := sources[i%3]
				s.rows = append(s.rows, dataRow(v))
			}
			if !desc {
				sources[1].rows = append(sources[1].rows, dataRow(nil))
			}
			var want []string
			if desc {
				want = append(want, "NULL")
			}
			for _, v := range vals {
				if tc.format == 1 {
					want = append(want, fmt.Sprintf("%x", v))
				} else {
					want = append(want, string(v))
				}
			}
			if !desc {
				want = append(want, "NULL")
			}
			spec := &router.MergeSpec{Columns: 1, OrderBy: []router.SortKey{{Column: 0, Desc: desc, NullsFirst: desc}}}
			got, err := mergeRows(t, spec, -1, -1, rowDesc(fieldSpec{"v", tc.oid}), []int16{tc.format}, sources...)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("%s desc=%v:\n got %q %v\nwant %q", tc.name, desc, got, err, want)
			}
		}
	}
}

// TestTypeKeysEqual checks DISTINCT's equality: equal values of every type collapse.
func TestTypeKeysEqual(t *testing.T) {
	for _, c := range []struct {
		oid    uint32
		format int16
		a, b   []byte
	}{
		{oidNumeric, 0, []byte("1.0"), []byte("1.000")},
		{oidNumeric, 1, numBin(t, "1.0"), numBin(t, "1")},
		{oidFloat8, 0, []byte("-0"), []byte("0")},
		{oidFloat8, 1, f8(math.NaN()), f8(-math.NaN())},
		{oidBpchar, 0, []byte("ab  "), []byte("ab")},
		{oidInterval, 0, []byte("1 day"), []byte("24:00:00")},
		{oidInterval, 1, interval(0, 30, 0), interval(0, 0, 1)},
		{oidTimestamptz, 0, []byte("2024-03-10 10:00:00+00"), []byte("2024-03-10 15:30:00+05:30")},
	} {
		spec := &router.MergeSpec{Columns: 1, Distinct: true}
		got, err := mergeRows(t, spec, -1, -1, rowDesc(fieldSpec{"v", c.oid}), []int16{c.format}, src(dataRow(c.a)), src(dataRow(c.b), dataRow(nil)), src(dataRow(nil)))
		if err != nil || len(got) != 2 {
			t.Errorf("oid %d %q = %q: %q %v", c.oid, c.a, c.b, got, err)
		}
	}
}

func TestSortedMultiKeyTiesAndLimits(t *testing.T) {
	rd := rowDesc(fieldSpec{"a", oidInt4}, fieldSpec{"b", oidText}, fieldSpec{"_sw_h1", oidInt4})
	// ORDER BY a DESC NULLS LAST, hidden ASC NULLS FIRST; b shows where a row came from.
	spec := &router.MergeSpec{Columns: 2, Hidden: 1, OrderBy: []router.SortKey{{Column: 0, Desc: true}, {Column: 2, NullsFirst: true}}}
	mk := func() []*sliceSource {
		return []*sliceSource{
			src(dataRow("3", "s0", "1"), dataRow("2", "s0", nil), dataRow("2", "s0", "5"), dataRow(nil, "s0", "1")),
			src(dataRow("3", "s1", nil), dataRow("3", "s1", "1"), dataRow("1", "s1", "0")),
			src(),
			src(dataRow("2", "s3", "5"), dataRow(nil, "s3", nil)),
		}
	}
	all := []string{"3|s1", "3|s0", "3|s1", "2|s0", "2|s0", "2|s3", "1|s1", "NULL|s3", "NULL|s0"}
	for _, c := range []struct {
		limit, offset int64
		want          []string
	}{
		{-1, -1, all},
		{3, 2, all[2:5]},
		{100, 8, all[8:]},
		{4, 9, nil},
	} {
		got, err := mergeRows(t, spec, c.limit, c.offset, rd, nil, mk()...)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("limit %d offset %d:\n got %q %v\nwant %q", c.limit, c.offset, got, err, c.want)
		}
	}
	// Each source is read no further than the heap needs: LIMIT 1 takes the first row
	// of each source and stops.
	s := mk()
	if _, err := mergeRows(t, spec, 1, -1, rd, nil, s...); err != nil {
		t.Fatal(err)
	}
	if s[0].reads != 1 || s[1].reads != 1 || s[3].reads != 1 {
		t.Errorf("reads %d %d %d", s[0].reads, s[1].reads, s[3].reads)
	}
}

func TestSortedOutOfOrderSource(t *testing.T) {
	spec := &router.MergeSpec{Columns: 1, OrderBy: []router.SortKey{{Column: 0}}}
	// "B" < "a" bytewise; a group sorting case-insensitively would send a before B.
	_, err := mergeRows(t, spec, -1, -1, rowDesc(fieldSpec{"v", oidText}), nil, src(dataRow("a"), dataRow("B")), src(dataRow("c")))
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("out-of-order source: %v", err)
	}
}

func TestUnknownTypes(t *testing.T) {
	rd := rowDesc(fieldSpec{"j", 3802}) // jsonb
	for _, spec := range []*router.MergeSpec{
		{Columns: 1, OrderBy: []router.SortKey{{Column: 0}}},
		{Columns: 1, Distinct: true},
		{Columns: 1, GroupBy: []int{0}},
		{Columns: 1, Aggregates: []router.Aggregate{{Func: router.AggMax, Column: 0}}},
		{Columns: 1, Aggregates: []router.Aggregate{{Func: router.AggSum, Column: 0}}},
	} {
		_, err := New(spec, -1, -1, rd, nil)
		var me *Error
		if !errors.As(err, &me) || me.Code != codeFeatureNotSupported || !strings.Contains(me.Message, "3802") {
			t.Errorf("%+v: %v", spec, err)
		}
	}
	// Concatenation needs no type knowledge.
	if _, err := New(&router.MergeSpec{Columns: 1}, -1, -1, rd, nil); err != nil {
		t.Error(err)
	}
}

func TestAggregatesWithoutGroupBy(t *testing.T) {
	rd := rowDesc(fieldSpec{"count", oidInt8}, fieldSpec{"sum", oidInt8}, fieldSpec{"min", oidDate},
		fieldSpec{"max", oidText}, fieldSpec{"avg", oidInt8}, fieldSpec{"sum", oidNumeric},
		fieldSpec{"avg", oidFloat8}, fieldSpec{"_sw_h1", oidInt8}, fieldSpec{"_sw_h2", oidInt8})
	spec := &router.MergeSpec{Columns: 7, Hidden: 2, Aggregates: []router.Aggregate{
		{Func: router.AggCount, Column: 0},
		{Func: router.AggSum, Column: 1},
		{Func: router.AggMin, Column: 2},
		{Func: router.AggMax, Column: 3},
		{Func: router.AggAvg, Column: 4, CountColumn: 7, ClientType: 1700},
		{Func: router.AggSum, Column: 5},
		{Func: router.AggAvg, Column: 6, CountColumn: 8},
	}}
	got, err := mergeRows(t, spec, -1, -1, rd, nil,
		src(dataRow("2", "10", "2024-01-05", "b", "3", "1.50", "0.5", "2", "2")),
		src(dataRow("0", nil, nil, nil, nil, nil, nil, "0", "0")),
		src(dataRow("5", "-4", "1999-12-31", "ab", "-2", "-0.005", "2.25", "3", "1")))
	want := []string{"7|6|1999-12-31|b|0.20000000000000000000|1.495|0.9166666666666666"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q %v, want %q", got, err, want)
	}
	// All-NULL partials: SUM, MIN, MAX, AVG are NULL, COUNT is 0.
	empty := dataRow("0", nil, nil, nil, nil, nil, nil, "0", "0")
	want = []string{"0|NULL|NULL|NULL|NULL|NULL|NULL"}
	got, err = mergeRows(t, spec, -1, -1, rd, nil, src(empty), src(empty))
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("all NULL: got %q %v", got, err)
	}
	// No sources at all still make the one row of an aggregate without GROUP BY.
	got, err = mergeRows(t, spec, -1, -1, rd, nil)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("no sources: got %q %v", got, err)
	}
	// OFFSET 1 skips the one row.
	got, err = mergeRows(t, spec, -1, 1, rd, nil, src(empty))
	if err != nil || got != nil {
		t.Errorf("offset 1: got %q %v", got, err)
	}
}

func TestAggregatesBinary(t *testing.T) {
	rd := rowDesc(fieldSpec{"count", oidInt8}, fieldSpec{"sum", oidNumeric}, fieldSpec{"avg", oidInt8},
		fieldSpec{"sum", oidFloat8}, fieldSpec{"sum", oidFloat4}, fieldSpec{"_sw_h1", oidInt8})
	spec := &router.MergeSpec{Columns: 5, Hidden: 1, Aggregates: []router.Aggregate{
		{Func: router.AggCount, Column: 0},
		{Func: router.AggSum, Column: 1},
		{Func: router.AggAvg, Column: 2, CountColumn: 5},
		{Func: router.AggSum, Column: 3},
		{Func: router.AggSum, Column: 4},
	}}
	got, err := mergeRows(t, spec, -1, -1, rd, []int16{1},
		src(dataRow(be64(1), numBin(t, "0.5"), be64(1), f8(0.25), f4(1.5), be64(1))),
		src(dataRow(be64(2), numBin(t, "1.25"), be64(2), f8(0.5), f4(2), be64(1))))
	want := fmt.Sprintf("%x|%x|%x|%x|%x", be64(3), numBin(t, "1.75"), numBin(t, "1.5000000000000000"), f8(0.75), f4(3.5))
	if err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("got %q %v, want %q", got, err, want)
	}
	m, err := New(spec, -1, -1, rd, []int16{1})
	if err != nil {
		t.Fatal(err)
	}
	fields, err := parseRowDescription(m.RowDescription(nil))
	if err != nil || len(fields) != 5 {
		t.Fatalf("client RowDescription: %v %d", err, len(fields))
	}
	if f := fields[2]; f.typeOID != oidNumeric || f.typlen != -1 || f.typmod != -1 || string(f.name) != "avg" {
		t.Errorf("AVG field %+v", f)
	}
}

func TestAvgTypes(t *testing.T) {
	for _, c := range []struct {
		sumOID  uint32
		rows    [][2]string // sum, count
		want    string
		wantOID uint32
		err     bool
	}{
		{oidInt8, [][2]string{{"1", "1"}, {"2", "1"}}, "1.5000000000000000", oidNumeric, false},
		{oidInt8, [][2]string{{"100000", "1"}}, "100000.000000000000", oidNumeric, false},
		{oidNumeric, [][2]string{{"1.50", "1"}, {"2.25", "1"}}, "1.8750000000000000", oidNumeric, false},
		{oidNumeric, [][2]string{{"Infinity", "1"}, {"-Infinity", "1"}}, "NaN", oidNumeric, false},
		{oidFloat8, [][2]string{{"1", "1"}, {"Infinity", "2"}}, "Infinity", oidFloat8, false},
		{oidFloat8, [][2]string{{"1", "2"}, {"1", "1"}}, "0.6666666666666666", oidFloat8, false},
		{oidFloat4, nil, "", 0, true},
		{oidInterval, nil, "", 0, true},
	} {
		rd := rowDesc(fieldSpec{"avg", c.sumOID}, fieldSpec{"_sw_h1", oidInt8})
		spec := &router.MergeSpec{Columns: 1, Hidden: 1, Aggregates: []router.Aggregate{{Func: router.AggAvg, Column: 0, CountColumn: 1}}}
		var sources []*sliceSource
		for _, r := range c.rows {
			sources = append(sources, src(dataRow(r[0], r[1])))
		}
		got, err := mergeRows(t, spec, -1, -1, rd, nil, sources...)
		if c.err {
			if err == nil {
				t.Errorf("AVG over OID %d merged", c.sumOID)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != c.want {
			t.Errorf("AVG over OID %d %v: %q %v, want %s", c.sumOID, c.rows, got, err, c.want)
		}
		m, _ := New(spec, -1, -1, rd, nil)
		fields, _ := parseRowDescription(m.RowDescription(nil))
		if fields[0].typeOID != c.wantOID {
			t.Errorf("AVG over OID %d is typed %d", c.sumOID, fields[0].typeOID)
		}
	}
}

func TestGroupByMerge(t *testing.T) {
	rd := rowDesc(fieldSpec{"status", oidText}, fieldSpec{"amount", oidNumeric}, fieldSpec{"n", oidInt8}, fieldSpec{"s", oidNumeric})
	// SELECT status, amount, count(*) AS n, sum(x) AS s ... GROUP BY status, amount ORDER BY n DESC, status
	spec := &router.MergeSpec{Columns: 4, GroupBy: []int{0, 1},
		Aggregates: []router.Aggregate{{Func: router.AggCount, Column: 2}, {Func: router.AggSum, Column: 3}},
		OrderBy:    []router.SortKey{{Column: 2, Desc: true, NullsFirst: true}, {Column: 0}}}
	mk := func() []*sliceSource {
		return []*sliceSource{
			src(dataRow("open", "1.0", "2", "1"), dataRow("paid", "2", "1", nil), dataRow(nil, "1", "4", "2")),
			src(dataRow("open", "1.00", "3", "2.5"), dataRow("void", "1", "1", "0")),
			src(dataRow("paid", "2", "1", "1"), dataRow(nil, "1", "1", nil)),
		}
	}
	all := []string{"open|1.0|5|3.5", "NULL|1|5|2", "paid|2|2|1", "void|1|1|0"}
	for _, c := range []struct {
		limit, offset int64
		want          []string
	}{
		{-1, -1, all},
		{2, 1, all[1:3]},
		{10, 3, all[3:]},
		{1, 4, nil},
	} {
		got, err := mergeRows(t, spec, c.limit, c.offset, rd, nil, mk()...)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("limit %d offset %d:\n got %q %v\nwant %q", c.limit, c.offset, got, err, c.want)
		}
	}
	// GROUP BY without aggregates is a dedupe; without ORDER BY groups come in first-seen
	// order.
	spec = &router.MergeSpec{Columns: 1, GroupBy: []int{0}}
	got, err := mergeRows(t, spec, -1, -1, rowDesc(fieldSpec{"s", oidText}), nil, src(dataRow("b"), dataRow("a")), src(dataRow("a"), dataRow(nil)), src(dataRow("b")))
	if want := []string{"b", "a", "NULL"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("dedupe: %q %v", got, err)
	}
}

func TestOrderByHiddenAvg(t *testing.T) {
	// SELECT status FROM t GROUP BY status ORDER BY avg(x) DESC
	rd := rowDesc(fieldSpec{"status", oidText}, fieldSpec{"_sw_h1", oidInt8}, fieldSpec{"_sw_h2", oidInt8})
	spec := &router.MergeSpec{Columns: 1, Hidden: 2, GroupBy: []int{0},
		Aggregates: []router.Aggregate{{Func: router.AggAvg, Column: 1, CountColumn: 2}},
		OrderBy:    []router.SortKey{{Column: 1, Desc: true, NullsFirst: true}}}
	got, err := mergeRows(t, spec, -1, -1, rd, nil,
		src(dataRow("a", "10", "4"), dataRow("b", "9", "1"), dataRow("c", nil, "0")),
		src(dataRow("a", "2", "1"), dataRow("b", "1", "1")))
	// a: 12/5 = 2.4, b: 10/2 = 5, c: NULL (first, DESC)
	if want := []string{"c", "b", "a"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q %v", got, err)
	}
}

func TestDistinctStreaming(t *testing.T) {
	spec := &router.MergeSpec{Columns: 2, Distinct: true, OrderBy: []router.SortKey{{Column: 0}}}
	rd := rowDesc(fieldSpec{"a", oidInt4}, fieldSpec{"b", oidNumeric})
	got, err := mergeRows(t, spec, 3, 1, rd, nil,
		src(dataRow("1", "1.0"), dataRow("2", "2"), dataRow("4", "4")),
		src(dataRow("1", "1"), dataRow("2", "2.50"), dataRow("3", nil)),
		src(dataRow("2", "2.0"), dataRow("3", nil)))
	// Distinct rows in order: 1|1.0, 2|2, 2|2.50, 3|NULL, 4|4; OFFSET 1 LIMIT 3.
	if want := []string{"2|2", "2|2.50", "3|NULL"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q %v", got, err)
	}
}

func TestStarSpec(t *testing.T) {
	// SELECT * FROM t ORDER BY created DESC: three star columns, one hidden sort column.
	rd := rowDesc(fieldSpec{"id", oidInt8}, fieldSpec{"name", oidText}, fieldSpec{"created", oidDate}, fieldSpec{"_sw_h1", oidDate})
	spec := &router.MergeSpec{Star: true, Hidden: 1, OrderBy: []router.SortKey{{Column: -1, Desc: true, NullsFirst: true}}}
	got, err := mergeRows(t, spec, -1, -1, rd, nil,
		src(dataRow("1", "a", "2024-01-03", "2024-01-03"), dataRow("2", "b", "2024-01-01", "2024-01-01")),
		src(dataRow("3", "c", "2024-01-02", "2024-01-02")))
	if want := []string{"1|a|2024-01-03", "3|c|2024-01-02", "2|b|2024-01-01"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q %v", got, err)
	}
	m, err := New(spec, -1, -1, rd, nil)
	if err != nil || m.Columns() != 3 {
		t.Fatalf("columns %v", err)
	}
	// ORDER BY 5 over a * of 3 columns is Postgres's error, not the hidden column.
	spec = &router.MergeSpec{Star: true, Hidden: 1, OrderBy: []router.SortKey{{Column: 3}}}
	var me *Error
	if _, err := New(spec, -1, -1, rd, nil); !errors.As(err, &me) || me.Code != codeInvalidColumnRef {
		t.Errorf("ORDER BY 4 of 3 columns: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	rd := rowDesc(fieldSpec{"a", oidInt4}, fieldSpec{"b", oidInt4})
	for name, f := range map[string]func() error{
		"column count":    func() error { _, err := New(&router.MergeSpec{Columns: 3}, -1, -1, rd, nil); return err },
		"formats":         func() error { _, err := New(&router.MergeSpec{Columns: 2}, -1, -1, rd, []int16{0, 1, 0}); return err },
		"format code":     func() error { _, err := New(&router.MergeSpec{Columns: 2}, -1, -1, rd, []int16{2}); return err },
		"limit":           func() error { _, err := New(&router.MergeSpec{Columns: 2}, -2, -1, rd, nil); return err },
		"row description": func() error { _, err := New(&router.MergeSpec{Columns: 2}, -1, -1, rd[:len(rd)-1], nil); return err },
		"not grouped": func() error {
			_, err := New(&router.MergeSpec{Columns: 2, Hidden: 0, GroupBy: []int{5}}, -1, -1, rd, nil)
			return err
		},
		"count of int4": func() error {
			_, err := New(&router.MergeSpec{Columns: 2, Aggregates: []router.Aggregate{{Func: router.AggCount, Column: 1}}}, -1, -1, rd, nil)
			return err
		},
		"sort out of range": func() error {
			_, err := New(&router.MergeSpec{Columns: 2, OrderBy: []router.SortKey{{Column: 2}}}, -1, -1, rd, nil)
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Overflow of an int8 SUM is Postgres's error.
	sumRD := rowDesc(fieldSpec{"sum", oidInt8})
	spec := &router.MergeSpec{Columns: 1, Aggregates: []router.Aggregate{{Func: router.AggSum, Column: 0}}}
	_, err := mergeRows(t, spec, -1, -1, sumRD, nil, src(dataRow("9223372036854775807")), src(dataRow("1")))
	var me *Error
	if !errors.As(err, &me) || me.Code != codeNumericOutOfRange {
		t.Errorf("int8 overflow: %v", err)
	}
	// A float8 SUM overflowing to infinity likewise.
	spec.Aggregates[0].Func = router.AggSum
	_, err = mergeRows(t, spec, -1, -1, rowDesc(fieldSpec{"sum", oidFloat8}), nil, src(dataRow("1e+308")), src(dataRow("1e+308")))
	if !errors.As(err, &me) || me.Code != codeNumericOutOfRange {
		t.Errorf("float8 overflow: %v", err)
	}
}

func TestResolveLimit(t *testing.T) {
	params := [][]byte{[]byte("15"), be64(7), be32(3), be16(2), nil, []byte("-1"), []byte("x")}
	formats := []int16{0, 1, 1, 1, 0, 0, 0}
	for _, c := range []struct {
		v      router.LimitValue
		offset bool
		want   int64
		code   string
	}{
		{router.LimitValue{}, false, -1, ""},
		{router.LimitValue{Set: true, Const: 50}, false, 50, ""},
		{router.LimitValue{Set: true, Param: 1}, false, 15, ""},
		{router.LimitValue{Set: true, Param: 2}, true, 7, ""},
		{router.LimitValue{Set: true, Param: 3}, false, 3, ""},
		{router.LimitValue{Set: true, Param: 4}, false, 2, ""},
		{router.LimitValue{Set: true, Param: 5}, false, -1, ""},
		{router.LimitValue{Set: true, Param: 6}, false, 0, codeInvalidRowCountLimit},
		{router.LimitValue{Set: true, Param: 6}, true, 0, codeInvalidRowCountOff},
		{router.LimitValue{Set: true, Param: 7}, false, 0, "22P02"},
		{router.LimitValue{Set: true, Param: 9}, false, 0, codeProtocolViolation},
	} {
		got, err := ResolveLimit(c.v, c.offset, params, formats)
		var me *Error
		switch {
		case c.code != "" && (!errors.As(err, &me) || me.Code != c.code):
			t.Errorf("%+v: %d %v, want code %s", c.v, got, err, c.code)
		case c.code == "" && (err != nil || got != c.want):
			t.Errorf("%+v: %d %v, want %d", c.v, got, err, c.want)
		}
	}
	// One format code for all parameters.
	if got, err := ResolveLimit(router.LimitValue{Set: true, Param: 1}, false, [][]byte{be32(9)}, []int16{1}); err != nil || got != 9 {
		t.Errorf("one format: %d %v", got, err)
	}
}

func TestBackendResultFormats(t *testing.T) {
	spec := &router.MergeSpec{Columns: 2, Hidden: 2}
	for _, c := range []struct{ in, want []int16 }{
		{nil, nil},
		{[]int16{1}, []int16{1}},
		{[]int16{1, 0}, []int16{1, 0, 0, 0}},
	} {
		if got := BackendResultFormats(spec, c.in); !slices.Equal(got, c.want) {
			t.Errorf("%v: %v", c.in, got)
		}
	}
}
