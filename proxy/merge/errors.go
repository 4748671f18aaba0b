package merge

import "fmt"

// SQLSTATEs of merge errors.
const (
	codeFeatureNotSupported  = "0A000"
	codeNumericOutOfRange    = "22003"
	codeInvalidRowCountLimit = "2201W"
	codeInvalidRowCountOff   = "2201X"
	codeInvalidColumnRef     = "42P10"
	codeProtocolViolation    = "08P01"
	codeDatatypeMismatch     = "42804"
	codeInternal             = "XX000"
)

// Error is a merge failure the client is told about, with its SQLSTATE. Errors that are not
// an *Error (a malformed frame, a Source's error, emit's error) are the proxy's to classify.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func notSupportedf(format string, args ...any) *Error {
	return &Error{Code: codeFeatureNotSupported, Message: fmt.Sprintf(format, args...)}
}

func internalf(format string, args ...any) *Error {
	return &Error{Code: codeInternal, Message: "scatter merge: " + fmt.Sprintf(format, args...)}
}
