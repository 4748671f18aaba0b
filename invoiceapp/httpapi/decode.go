package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/shardwire/shardwire/invoiceapp"
)

// readBody reads a request body of at most max bytes; a larger one is a *http.MaxBytesError.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return b, nil
}

// decodeJSON decodes body, one JSON object with only known fields, into dst. Its errors are
// KindInvalid *invoiceapp.Error naming the field when there is one.
func decodeJSON(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidJSON, Message: "the request body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidJSON, Message: "unexpected data after the JSON object"}
	}
	return nil
}

// jsonError turns a decoding error into a client error.
func jsonError(err error) error {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidJSON,
			Message: fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)}
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidValue, Field: typeErr.Field,
			Message: fmt.Sprintf("must be a JSON %s", jsonType(typeErr.Type.Kind().String()))}
	case errors.As(err, &typeErr):
		return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidJSON, Message: "the request body must be a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidJSON, Message: "truncated JSON"}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, _ := strconv.Unquote(name)
		return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeUnknownField, Field: field, Message: "is not a known field"}
	}
	return &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidJSON, Message: "malformed JSON"}
}

// jsonType names a Go kind the way a JSON user thinks of it.
func jsonType(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "object"
}

// customerIDParam parses the {id} path value.
func customerIDParam(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 || id > invoiceapp.MaxCustomerID {
		return 0, &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidValue, Field: "id",
			Message: fmt.Sprintf("the customer id must be an integer from 1 to %d", invoiceapp.MaxCustomerID)}
	}
	return id, nil
}

// invoiceIDParam parses the {invoice} path value.
func invoiceIDParam(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("invoice"))
	if err != nil {
		return uuid.UUID{}, &invoiceapp.Error{Kind: invoiceapp.KindInvalid, Code: invoiceapp.CodeInvalidValue, Field: "invoice",
			Message: "the invoice id must be a UUID"}
	}
	return id, nil
}
