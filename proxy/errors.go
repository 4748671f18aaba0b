package proxy

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
)

// SQLSTATE codes the proxy itself sends.
const (
	codeProtocolViolation  = "08P01"
	codeConnectionFailure  = "08006"
	codeCannotConnect      = "08001"
	codeInvalidPassword    = "28P01"
	codeInvalidCatalogName = "3D000"
	codeTooManyConnections = "53300"
	codeFeatureNotSupp     = "0A000"
	codeProgramLimit       = "54000"
	codeAdminShutdown      = "57P01"
	codeCannotConnectNow   = "57P03"
	codeInternal           = "XX000"
	// codeTxResolutionUnknown is transaction_resolution_unknown: a COMMIT whose outcome the
	// proxy cannot tell.
	codeTxResolutionUnknown = "08007"
	// codeInvalidStatementName is invalid_sql_statement_name (no such prepared statement).
	codeInvalidStatementName = "26000"
	// codeInvalidParameterValue is invalid_parameter_value (a bad SET value).
	codeInvalidParameterValue = "22023"
)

// clientError is an error the client is told about: a SQLSTATE, a message that says what to do,
// and whether the connection is closed after it. The cause stays in the proxy's logs.
type clientError struct {
	code    string
	message string
	hint    string
	fatal   bool
	cause   error
	// raw, when set, is a server's own ErrorResponse frame to pass on instead.
	raw []byte
}

func (e *clientError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.code, e.message, e.cause)
	}
	return e.code + ": " + e.message
}

func (e *clientError) Unwrap() error { return e.cause }

func newClientError(code, message string) *clientError {
	return &clientError{code: code, message: message}
}

func fatalError(code, message string) *clientError {
	return &clientError{code: code, message: message, fatal: true}
}

func (e *clientError) withHint(h string) *clientError { e.hint = h; return e }

func (e *clientError) withCause(err error) *clientError { e.cause = err; return e }

// asClientError turns any error into the client-facing one; unknown errors become an internal
// error that leaks nothing.
func asClientError(err error) *clientError {
	var ce *clientError
	if errors.As(err, &ce) {
		return ce
	}
	return &clientError{code: codeInternal, message: "internal proxy error", cause: err}
}

// appendErrorResponse encodes e as an ErrorResponse.
func appendErrorResponse(dst []byte, e *clientError) []byte {
	if e.raw != nil && !e.fatal {
		return append(dst, e.raw...)
	}
	sev := "ERROR"
	if e.fatal {
		sev = "FATAL"
	}
	msg := pgproto3.ErrorResponse{Severity: sev, SeverityUnlocalized: sev, Code: e.code, Message: e.message, Hint: e.hint}
	out, err := msg.Encode(dst)
	if err != nil { // cannot happen for these fields; keep the stream well-formed anyway
		return dst
	}
	return out
}

// errorFields calls fn with each field of an ErrorResponse (or NoticeResponse) body, in order,
// until fn returns false. It reports false when the body is malformed.
func errorFields(body []byte, fn func(field byte, value []byte) bool) bool {
	for len(body) > 0 && body[0] != 0 {
		field := body[0]
		v, rest, ok := wire.CString(body[1:])
		if !ok {
			return false
		}
		if !fn(field, v) {
			return true
		}
		body = rest
	}
	return true
}

// errorCode returns the SQLSTATE field of an ErrorResponse body without decoding the rest.
func errorCode(body []byte) string {
	var code string
	errorFields(body, func(field byte, v []byte) bool {
		if field == 'C' {
			code = string(v)
			return false
		}
		return true
	})
	return code
}

// isFatal reports whether an ErrorResponse body has severity FATAL or PANIC.
func isFatal(body []byte) bool {
	fatal := false
	errorFields(body, func(field byte, v []byte) bool {
		if field == 'V' || field == 'S' {
			fatal = string(v) == "FATAL" || string(v) == "PANIC"
			return false
		}
		return true
	})
	return fatal
}

// downgradeFatal returns a copy of an ErrorResponse with severity ERROR.
func downgradeFatal(f wire.Frame) wire.Frame {
	out := wire.AppendHeader(nil, wire.ErrorResponse, 0)
	ok := errorFields(f.Body(), func(field byte, v []byte) bool {
		if field == 'V' || field == 'S' {
			v = []byte("ERROR")
		}
		out = append(out, field)
		out = append(out, v...)
		out = append(out, 0)
		return true
	})
	if !ok {
		return f
	}
	out = append(out, 0)
	n := len(out) - 1
	out[1], out[2], out[3], out[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return out
}

// errorMessage returns the message field of an ErrorResponse body.
func errorMessage(body []byte) string {
	var msg string
	errorFields(body, func(field byte, v []byte) bool {
		if field == 'M' {
			msg = string(v)
			return false
		}
		return true
	})
	return msg
}

// routeClientError turns the router's refusal into the client's error.
func routeClientError(e *router.RouteError) *clientError {
	return newClientError(e.Code, e.Message).withHint(e.Hint)
}
