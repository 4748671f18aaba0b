package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/invoiceapp"
)

func TestCustomers(t *testing.T) {
	t.Parallel()
	// Explicit id.
	var c customer
	r := do(t, "POST", "/v1/customers", map[string]any{"id": 8_000_001, "name": "Acme GmbH", "tier": "premium"}).want(t, 201)
	r.decode(t, &c)
	if c.ID != 8_000_001 || c.Name != "Acme GmbH" || c.Tier != "premium" || time.Since(c.CreatedAt) > time.Minute {
		t.Fatalf("created %+v", c)
	}
	if loc := r.header.Get("Location"); loc != "/v1/customers/8000001" {
		t.Errorf("Location %q", loc)
	}
	var got customer
	getEventually(t, "/v1/customers/8000001", 200).decode(t, &got)
	if got != c {
		t.Errorf("GET %+v, want %+v", got, c)
	}
	// The same id again is a conflict.
	do(t, "POST", "/v1/customers", map[string]any{"id": 8_000_001, "name": "Other"}).wantError(t, 409, "customer_exists", "")

	// Server-chosen ids: random without a key, derived from the key with one.
	var a, b customer
	do(t, "POST", "/v1/customers", map[string]any{"name": "A"}).want(t, 201).decode(t, &a)
	do(t, "POST", "/v1/customers", map[string]any{"name": "A"}).want(t, 201).decode(t, &b)
	if a.ID == b.ID || a.ID < invoiceapp.MinGeneratedCustomerID || a.Tier != "free" {
		t.Errorf("random ids %d and %d (tier %s)", a.ID, b.ID, a.Tier)
	}
	key := "cust-" + t.Name()
	var k1, k2 customer
	r1 := do(t, "POST", "/v1/customers", map[string]any{"name": "Keyed"}, "Idempotency-Key", key).want(t, 201)
	r1.decode(t, &k1)
	r2 := do(t, "POST", "/v1/customers", map[string]any{"name": "Keyed"}, "Idempotency-Key", key).want(t, 201)
	r2.decode(t, &k2)
	if k1.ID != invoiceapp.CustomerIDForKey(key) || string(r1.body) != string(r2.body) || r2.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("keyed create: %s then %s (replayed %q)", r1.body, r2.body, r2.header.Get("Idempotent-Replayed"))
	}
	if r1.header.Get("Idempotent-Replayed") != "" || r2.header.Get("Location") != r1.header.Get("Location") {
		t.Errorf("headers: first %v, replay %v", r1.header, r2.header)
	}
	do(t, "POST", "/v1/customers", map[string]any{"name": "Other"}, "Idempotency-Key", key).wantError(t, 422, "idempotency_key_reused", "")

	// Unknown customer.
	do(t, "GET", "/v1/customers/8000999", nil).wantError(t, 404, "customer_not_found", "")
}

func TestCustomerValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body        string
		code, field string
	}{
		{`{"name":""}`, "invalid_value", "name"},
		{`{"name":"` + strings.Repeat("n", 201) + `"}`, "invalid_value", "name"},
		{`{"tier":"free"}`, "required", "name"},
		{`{"name":"a","tier":"gold"}`, "invalid_value", "tier"},
		{`{"name":"a","id":-1}`, "invalid_value", "id"},
		{`{"name":"a","id":9007199254740992}`, "invalid_value", "id"},
		{`{"name":"a","id":"12"}`, "invalid_value", "id"},
		{`{"name":"a","extra":true}`, "unknown_field", "extra"},
		{`{"name":"a"`, "invalid_json", ""},
		{``, "invalid_json", ""},
		{`{"name":"a\u0000b"}`, "invalid_value", "name"},
	}
	for _, tc := range cases {
		t.Run(tc.body[:min(len(tc.body), 30)], func(t *testing.T) {
			do(t, "POST", "/v1/customers", tc.body).wantError(t, 400, tc.code, tc.field)
		})
	}
	do(t, "GET", "/v1/customers/-4", nil).wantError(t, 400, "invalid_value", "id")
	do(t, "POST", "/v1/customers", fmt.Sprintf(`{"name":"%s"}`, strings.Repeat("x", 1<<20))).wantError(t, 413, "body_too_large", "")
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	do(t, "GET", "/v2/customers", nil).wantError(t, 404, "not_found", "")
	r := do(t, "PUT", "/v1/customers/5/invoices", nil)
	r.wantError(t, 405, "method_not_allowed", "")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q", allow)
	}
	do(t, "GET", "/healthz", nil).want(t, 200)
}
