package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/invoiceapp"
)

// Error codes the HTTP layer adds to invoiceapp's.
const (
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeBodyTooLarge     = "body_too_large"
	codeRateLimited      = "rate_limited"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable"
)

// statusClientClosed is recorded (never sent) when the client went away before the answer.
const statusClientClosed = 499

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail is an error's code, offending field and message.
type errorDetail struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// writeError writes an error response.
func writeError(w http.ResponseWriter, status int, code, field, message string) {
	b, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Field: field, Message: message}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// kindStatus maps invoiceapp error kinds to HTTP status codes.
var kindStatus = map[invoiceapp.Kind]int{
	invoiceapp.KindInvalid:   http.StatusBadRequest,
	invoiceapp.KindNotFound:  http.StatusNotFound,
	invoiceapp.KindConflict:  http.StatusConflict,
	invoiceapp.KindKeyReused: http.StatusUnprocessableEntity,
}

// fail answers err: a client error with its code, a database that cannot be reached (or is
// busy) with 503, anything else with 500 and a log line. Internal details never reach the
// client.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if e := invoiceapp.AsError(err); e != nil {
		status, ok := kindStatus[e.Kind]
		if !ok {
			status = http.StatusInternalServerError
		}
		writeError(w, status, e.Code, e.Field, e.Message)
		return
	}
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client is gone; nothing it can read. Record it for the metrics only.
		if rec, ok := w.(*recorder); ok {
			rec.status = statusClientClosed
		}
		return
	}
	if unavailable(err) {
		a.log.Warn("database unavailable", zap.String("route", r.Pattern), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable,
			"", "the database is unavailable; retry later (with the same Idempotency-Key for a POST)")
		return
	}
	a.log.Error("request failed", zap.String("route", r.Pattern), zap.String("path", r.URL.Path), zap.Error(err))
	writeError(w, http.StatusInternalServerError, codeInternal, "", "internal error")
}

// unavailable reports whether err says the database could not serve the request now, so that
// the same request may succeed later: connection failures, timeouts, a proxy without a valid
// shard map lease, overload, serialization failures and deadlocks.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57P03", pgErr.Code == "57P01", pgErr.Code == "40001", pgErr.Code == "40P01":
			return true
		case len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53"):
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnectError(err)
}

// isConnectError reports whether err is a failure to connect.
func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
