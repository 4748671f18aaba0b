package copydata

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// SQLSTATE codes a RowError carries, the ones Postgres raises for the same faults.
const (
	// CodeBadCopyFormat is bad_copy_file_format: the stream is malformed.
	CodeBadCopyFormat = "22P04"
	// CodeInvalidText is invalid_text_representation: the shard key is not an integer.
	CodeInvalidText = "22P02"
	// CodeOutOfRange is numeric_value_out_of_range: the shard key does not fit in a bigint.
	CodeOutOfRange = "22003"
	// CodeNullKey is not_null_violation: the shard key is NULL.
	CodeNullKey = "23502"
	// CodeNotSupported is feature_not_supported: a binary key that is not int2, int4 or int8.
	CodeNotSupported = "0A000"
	// CodeProgramLimit is program_limit_exceeded: a row larger than Options.MaxRowSize.
	CodeProgramLimit = "54000"
)

// ErrFinished is returned by Feed and Finish after Finish has been called.
var ErrFinished = errors.New("copydata: splitter already finished")

// maxValueInError is how many bytes of an offending value an error message quotes.
const maxValueInError = 40

// RowError reports a fault in the COPY data, located as Postgres locates it.
type RowError struct {
	// Format is the stream's format; it decides whether Line counts lines or tuples.
	Format Format
	// Line is where Postgres would report the fault ("COPY t, line N"): for text and CSV the
	// 1-based line, counting the header line and the newlines inside quoted CSV fields as
	// Postgres counts them, so the line of a multi-line row is its last one; for binary the
	// 1-based tuple number (the trailer counts as a tuple). Zero means the binary header.
	Line int64
	// Row is the 1-based number of the data row at fault (the header is not a row), or zero
	// when the fault is in the header.
	Row int64
	// Code is the SQLSTATE Postgres raises for the fault (the Code* constants).
	Code string
	// Msg says what is wrong.
	Msg string
}

// Error names the line (text, CSV) or tuple (binary) and the fault, as in "line 3: null
// shard key in column 1", so that a caller can prefix it as Postgres does ("COPY t, ").
func (e *RowError) Error() string {
	switch {
	case e.Line == 0:
		return "binary header: " + e.Msg
	case e.Format == Binary:
		return fmt.Sprintf("tuple %d: %s", e.Line, e.Msg)
	default:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
}

// quoteValue quotes v for an error message, cut to maxValueInError bytes on a character
// boundary.
func quoteValue(v []byte) string {
	if len(v) <= maxValueInError {
		return fmt.Sprintf("%q", v)
	}
	cut := maxValueInError
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	if cut == 0 {
		cut = maxValueInError
	}
	return fmt.Sprintf("%q...", v[:cut])
}
