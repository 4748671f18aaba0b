package copydata

import (
	"bytes"
	"fmt"
	"testing"
)

// countingSink adds up what it is given, so the work is not optimized away.
type countingSink struct {
	rows  int
	bytes int
	keys  int64
}

func (c *countingSink) Prefix(b []byte) error { c.bytes += len(b); return nil }

func (c *countingSink) Row(raw []byte, key int64) error {
	c.rows++
	c.bytes += len(raw)
	c.keys += key
	return nil
}

// invoiceFields are the fields of one invoice row, about 200 bytes in text form.
func invoiceFields(i int) []string {
	return []string{
		fmt.Sprint(100000 + i*7919%900000),
		fmt.Sprintf("INV-2024-%08d", i),
		"2024-03-14 09:26:53.589793+00",
		"2024-04-13 00:00:00+00",
		"EUR",
		fmt.Sprintf("%d.%02d", 1000+i%90000, i%100),
		"open",
		fmt.Sprintf("Consulting services for March 2024, purchase order %06d, payable net 30 days by bank transfer", i),
	}
}

const benchRows = 5000

// benchData returns about 1 MB of invoice rows in format f.
func benchData(f Format) []byte {
	var buf bytes.Buffer
	if f == Binary {
		b := newBinaryStream(nil)
		for i := 0; i < benchRows; i++ {
			fields := invoiceFields(i)
			row := [][]byte{int8Field(int64(100000 + i*7919%900000))}
			for _, v := range fields[1:] {
				row = append(row, []byte(v))
			}
			b.tuple(row...)
		}
		b.trailer()
		return b.bytes()
	}
	for i := 0; i < benchRows; i++ {
		fields := invoiceFields(i)
		for j, v := range fields {
			if j > 0 {
				if f == CSV {
					buf.WriteByte(',')
				} else {
					buf.WriteByte('\t')
				}
			}
			if f == CSV && j == len(fields)-1 {
				v = `"` + v + `"` // the memo has commas
			}
			buf.WriteString(v)
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// chunks cuts data into CopyData-sized payloads at arbitrary points.
func chunks(data []byte, size int) [][]byte {
	var out [][]byte
	for len(data) > size {
		out = append(out, data[:size])
		data = data[size:]
	}
	return append(out, data)
}

func benchmarkSplit(b *testing.B, f Format) {
	data := benchData(f)
	payloads := chunks(data, 65531)
	o := DefaultOptions(f)
	o.Fields = 8 // the proxy knows the column count: every field is scanned
	sink := &countingSink{}
	s, err := NewSplitter(o)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Reset()
		for _, p := range payloads {
			if err := s.Feed(p, sink); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Finish(sink); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if sink.rows != b.N*benchRows {
		b.Fatalf("%d rows, want %d", sink.rows, b.N*benchRows)
	}
	b.ReportMetric(float64(len(data))/benchRows, "bytes/row")
}

func BenchmarkSplitText(b *testing.B)   { benchmarkSplit(b, Text) }
func BenchmarkSplitCSV(b *testing.B)    { benchmarkSplit(b, CSV) }
func BenchmarkSplitBinary(b *testing.B) { benchmarkSplit(b, Binary) }

// TestSteadyStateAllocs proves a Splitter allocates nothing per row once its buffers have
// grown, with rows split across payloads.
func TestSteadyStateAllocs(t *testing.T) {
	for _, f := range []Format{Text, CSV, Binary} {
		t.Run(f.String(), func(t *testing.T) {
			data := benchData(f)
			// Payloads of an odd size, so that rows straddle them.
			payloads := chunks(data, 997)
			o := DefaultOptions(f)
			o.Fields = 8
			s := mustSplitter(t, o)
			sink := &countingSink{}
			// Warm up on the header and the first payloads.
			for _, p := range payloads[:20] {
				if err := s.Feed(p, sink); err != nil {
					t.Fatal(err)
				}
			}
			next := 20
			allocs := testing.AllocsPerRun(len(payloads)-30, func() {
				if err := s.Feed(payloads[next], sink); err != nil {
					t.Fatal(err)
				}
				next++
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per %d-byte payload", allocs, 997)
			}
		})
	}
}
