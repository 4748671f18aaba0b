package copydata

import (
	"fmt"
	"strings"
)

// Format is the COPY data format, as in COPY ... (FORMAT text|csv|binary).
type Format uint8

const (
	// Text is Postgres's default text format: delimited fields, backslash escapes.
	Text Format = iota
	// CSV is comma-separated values with quoting.
	CSV
	// Binary is Postgres's binary COPY format: a signature header, then length-prefixed tuples.
	Binary
)

// String returns the format's name as COPY spells it.
func (f Format) String() string {
	switch f {
	case Text:
		return "text"
	case CSV:
		return "csv"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// DefaultMaxRowSize is the row size limit a zero Options.MaxRowSize stands for.
const DefaultMaxRowSize = 64 << 20

// Options describe one COPY ... FROM STDIN stream as its COPY statement's options do. Start
// from DefaultOptions: Null is used exactly as given, and the empty string is a valid NULL
// marker.
type Options struct {
	// Format is the data format.
	Format Format
	// Delimiter separates fields (text, CSV). Zero means the format's default: tab for
	// text, comma for CSV.
	Delimiter byte
	// Quote quotes CSV fields. Zero means '"'.
	Quote byte
	// Escape escapes a quote inside a quoted CSV field. Zero means the same as Quote.
	Escape byte
	// Null is the string that stands for NULL (text, CSV): compared with a field's raw bytes
	// before de-escaping; in CSV only an unquoted field matches it. DefaultOptions sets `\N`
	// for text and "" for CSV.
	Null string
	// Header says the first line is a header (text, CSV): it is not a row, and every
	// destination gets it before its first row.
	Header bool
	// KeyIndex is the 0-based position of the shard key among the fields of a row.
	KeyIndex int
	// Fields is the number of fields each row must have, when known (> 0): a row with another
	// count is an error, as Postgres reports it. Zero leaves the count unchecked beyond
	// KeyIndex.
	Fields int
	// ServerMajor is the Postgres major version of the destination servers, which decides
	// how `\.` is read. Before 18 it ends the data anywhere in a text line (text before it
	// on the line is a last row) and alone on a CSV line. From 18 it must be alone on a text
	// line and is ordinary data in CSV. Zero means before 18.
	ServerMajor int
	// MaxRowSize bounds the bytes of one row (and of the header) that the splitter holds
	// while the row is incomplete. Zero means DefaultMaxRowSize.
	MaxRowSize int
}

// DefaultOptions returns the options COPY uses for format f when the statement names no
// others, with the shard key in the first field.
func DefaultOptions(f Format) Options {
	o := Options{Format: f}
	switch f {
	case Text:
		o.Delimiter = '\t'
		o.Null = `\N`
	case CSV:
		o.Delimiter = ','
		o.Quote = '"'
		o.Escape = '"'
	}
	return o
}

// normalize fills zero fields with their defaults and checks the options as Postgres's COPY
// option processing does for the options this package reads.
func (o Options) normalize() (Options, error) {
	if o.KeyIndex < 0 {
		return o, fmt.Errorf("copydata: key index %d is negative", o.KeyIndex)
	}
	if o.Fields < 0 {
		return o, fmt.Errorf("copydata: field count %d is negative", o.Fields)
	}
	if o.Fields > 0 && o.KeyIndex >= o.Fields {
		return o, fmt.Errorf("copydata: key index %d is outside the %d fields of a row", o.KeyIndex, o.Fields)
	}
	if o.MaxRowSize < 0 {
		return o, fmt.Errorf("copydata: max row size %d is negative", o.MaxRowSize)
	}
	if o.MaxRowSize == 0 {
		o.MaxRowSize = DefaultMaxRowSize
	}
	switch o.Format {
	case Binary:
		if o.Header {
			return o, fmt.Errorf("copydata: binary format takes no header option")
		}
		return o, nil
	case Text:
		if o.Delimiter == 0 {
			o.Delimiter = '\t'
		}
		if o.Quote != 0 || o.Escape != 0 {
			return o, fmt.Errorf("copydata: quote and escape are available only in CSV format")
		}
		// Postgres rejects these so that escapes and the end marker stay unambiguous.
		if strings.IndexByte(`\.abcdefghijklmnopqrstuvwxyz0123456789`, o.Delimiter) >= 0 {
			return o, fmt.Errorf("copydata: delimiter %q is not allowed in text format", o.Delimiter)
		}
	case CSV:
		if o.Delimiter == 0 {
			o.Delimiter = ','
		}
		if o.Quote == 0 {
			o.Quote = '"'
		}
		if o.Escape == 0 {
			o.Escape = o.Quote
		}
		if o.Quote == o.Delimiter {
			return o, fmt.Errorf("copydata: delimiter and quote must be different")
		}
		if o.Quote >= 0x80 || o.Escape >= 0x80 {
			return o, fmt.Errorf("copydata: quote and escape must be single one-byte characters")
		}
		if o.Quote == '\r' || o.Quote == '\n' || o.Escape == '\r' || o.Escape == '\n' {
			return o, fmt.Errorf("copydata: quote and escape cannot be newline or carriage return")
		}
		if strings.IndexByte(o.Null, o.Quote) >= 0 {
			return o, fmt.Errorf("copydata: quote %q must not appear in the NULL specification", o.Quote)
		}
	default:
		return o, fmt.Errorf("copydata: unknown format %d", o.Format)
	}
	if o.Delimiter == '\r' || o.Delimiter == '\n' {
		return o, fmt.Errorf("copydata: delimiter cannot be newline or carriage return")
	}
	if o.Delimiter >= 0x80 {
		return o, fmt.Errorf("copydata: delimiter must be a single one-byte character")
	}
	if strings.ContainsAny(o.Null, "\r\n") {
		return o, fmt.Errorf("copydata: NULL representation cannot use newline or carriage return")
	}
	if strings.IndexByte(o.Null, o.Delimiter) >= 0 {
		return o, fmt.Errorf("copydata: delimiter %q must not appear in the NULL specification", o.Delimiter)
	}
	return o, nil
}
