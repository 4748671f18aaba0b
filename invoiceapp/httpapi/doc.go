// Package httpapi is invoiced's HTTP JSON API (docs/openapi.yaml) over an invoiceapp.Store:
// routing with net/http's ServeMux method patterns, request decoding and validation errors,
// Idempotency-Key handling, per-customer rate limits by tier, and request metrics.
//
// Every error is a JSON body {"error":{"code","field","message"}}; the mapping from
// invoiceapp error kinds to HTTP status codes lives in errors.go and nowhere else.
package httpapi
