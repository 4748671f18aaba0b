package invoiceapp

import (
	"errors"
	"fmt"
)

// Kind classifies an Error; the HTTP layer maps each kind to one status code.
type Kind int

// The kinds of Error.
const (
	// KindInvalid: the request is malformed or a value is out of range (HTTP 400).
	KindInvalid Kind = iota + 1
	// KindNotFound: the customer or invoice does not exist (HTTP 404).
	KindNotFound
	// KindConflict: the request is valid but the resource's state forbids it (HTTP 409).
	KindConflict
	// KindKeyReused: an Idempotency-Key was reused for a different request (HTTP 422).
	KindKeyReused
)

// Error codes, stable API values (docs/openapi.yaml lists them with their status).
const (
	CodeInvalidJSON        = "invalid_json"
	CodeRequired           = "required"
	CodeInvalidValue       = "invalid_value"
	CodeUnknownField       = "unknown_field"
	CodeInvalidCursor      = "invalid_cursor"
	CodeCurrencyMismatch   = "currency_mismatch"
	CodeCustomerNotFound   = "customer_not_found"
	CodeInvoiceNotFound    = "invoice_not_found"
	CodeCustomerExists     = "customer_exists"
	CodeInvoiceVoid        = "invoice_void"
	CodeInvoicePaid        = "invoice_paid"
	CodeOverpayment        = "overpayment"
	CodeInvoiceHasPayments = "invoice_has_payments"
	CodeKeyReused          = "idempotency_key_reused"
)

// Error is an outcome the client caused and can act on. Field, when set, is the JSON path of
// the offending input (e.g. "lines[2].quantity") or the name of a parameter or header.
type Error struct {
	Kind    Kind
	Code    string
	Field   string
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// invalid returns a KindInvalid error about field.
func invalid(code, field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// conflict returns a KindConflict error.
func conflict(code, format string, args ...any) *Error {
	return &Error{Kind: KindConflict, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errCustomerNotFound says that customer id does not exist.
func errCustomerNotFound(id int64) *Error {
	return &Error{Kind: KindNotFound, Code: CodeCustomerNotFound, Message: fmt.Sprintf("customer %d does not exist", id)}
}

// errInvoiceNotFound says that the customer has no such invoice.
func errInvoiceNotFound(customerID int64, invoice string) *Error {
	return &Error{Kind: KindNotFound, Code: CodeInvoiceNotFound,
		Message: fmt.Sprintf("customer %d has no invoice %s", customerID, invoice)}
}
