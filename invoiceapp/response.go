package invoiceapp

import (
	"encoding/json"
	"fmt"
)

// Response is a write's encoded HTTP response, as sent the first time and as replayed for a
// retry with the same Idempotency-Key. Body is JSON; Location is "" or the created
// resource's path.
type Response struct {
	Status   int
	Body     []byte
	Location string
	// Replayed is set when the response is the stored one of an earlier request.
	Replayed bool
}

// jsonResponse encodes v as a Response body, newline-terminated.
func jsonResponse(status int, v any, location string) (Response, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Response{}, fmt.Errorf("encode response: %w", err)
	}
	return Response{Status: status, Body: append(b, '\n'), Location: location}, nil
}
