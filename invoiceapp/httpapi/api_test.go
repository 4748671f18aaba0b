package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shardwire/shardwire/invoiceapp"
)

// These requests are answered before any database access, so the store has no database.
func TestAnsweredWithoutDatabase(t *testing.T) {
	api, err := New(Options{Store: invoiceapp.NewStore(nil, invoiceapp.StoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path, body string
		header             map[string]string
		status             int
		code, field        string
		allow              string
	}{
		{method: "GET", path: "/nope", status: 404, code: "not_found"},
		{method: "GET", path: "/v1/customers/1/invoices/x/y", status: 404, code: "not_found"},
		{method: "DELETE", path: "/v1/customers/1", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{method: "GET", path: "/v1/customers", status: 405, code: "method_not_allowed", allow: "POST"},
		{method: "GET", path: "/v1/customers/abc", status: 400, code: "invalid_value", field: "id"},
		{method: "GET", path: "/v1/customers/0/summary", status: 400, code: "invalid_value", field: "id"},
		{method: "GET", path: "/v1/customers/9007199254740992", status: 400, code: "invalid_value", field: "id"},
		{method: "GET", path: "/v1/customers/5/invoices/not-a-uuid", status: 400, code: "invalid_value", field: "invoice"},
		{method: "POST", path: "/v1/customers/5/invoices/not-a-uuid/void", status: 400, code: "invalid_value", field: "invoice"},
		{method: "POST", path: "/v1/customers", body: `{"name":`, status: 400, code: "invalid_json"},
		{method: "POST", path: "/v1/customers", body: `{}`, status: 400, code: "required", field: "name"},
		{method: "POST", path: "/v1/customers", body: `{"name":"a","x":1}`, status: 400, code: "unknown_field", field: "x"},
		{method: "POST", path: "/v1/customers", body: `{"name":"a"}`, header: map[string]string{"Idempotency-Key": "with space"}, status: 400, code: "invalid_value", field: "Idempotency-Key"},
		{method: "POST", path: "/v1/customers", body: `{"name":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, status: 413, code: "body_too_large"},
		{method: "POST", path: "/v1/customers/5/invoices", body: `{"currency":"EUR","lines":[]}`, status: 400, code: "invalid_value", field: "lines"},
		{method: "POST", path: "/v1/customers/5/invoices/0190d1a2-0000-7000-8000-000000000000/payments", body: `{"amount_minor":0}`, status: 400, code: "invalid_value", field: "amount_minor"},
		{method: "GET", path: "/v1/customers/5/invoices?limit=101", status: 400, code: "invalid_value", field: "limit"},
		{method: "GET", path: "/v1/customers/5/invoices?cursor=zzz", status: 400, code: "invalid_cursor", field: "cursor"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path[:min(len(tc.path), 60)], func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var body struct {
				Error struct{ Code, Field, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Error.Code != tc.code || body.Error.Field != tc.field || body.Error.Message == "" {
				t.Errorf("error %+v, want code %s field %q", body.Error, tc.code, tc.field)
			}
			if tc.allow != "" && rec.Header().Get("Allow") != tc.allow {
				t.Errorf("Allow %q, want %q", rec.Header().Get("Allow"), tc.allow)
			}
		})
	}
}
