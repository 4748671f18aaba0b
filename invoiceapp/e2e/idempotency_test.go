package e2e

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

func TestIdempotentRetries(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	path := fmt.Sprintf("/v1/customers/%d/invoices", id)
	body := `{"currency":"EUR","lines":[{"description":"a","quantity":1,"unit_price_minor":100}]}`

	first := do(t, "POST", path, body, "Idempotency-Key", "inv-1").want(t, 201)
	for range 3 {
		again := do(t, "POST", path, body, "Idempotency-Key", "inv-1").want(t, 201)
		if !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" ||
			again.header.Get("Location") != first.header.Get("Location") {
			t.Fatalf("retry answered %s (replayed %q), first %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
		}
	}
	// Another body under the same key is refused; another key is another invoice.
	do(t, "POST", path, `{"currency":"USD","lines":[{"description":"a","quantity":1,"unit_price_minor":100}]}`,
		"Idempotency-Key", "inv-1").wantError(t, 422, "idempotency_key_reused", "")
	do(t, "POST", path, body, "Idempotency-Key", "inv-2").want(t, 201)
	// Keys are per customer: another customer may use inv-1.
	other := newCustomer(t, "free")
	do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices", other), body, "Idempotency-Key", "inv-1").want(t, 201)
	if n := writerCount(t, ownerGroup(id), "invoices", id); n != 2 {
		t.Errorf("%d invoices, want 2", n)
	}

	// Payments and voids: a retried payment pays once.
	var inv invoice
	first.decode(t, &inv)
	p1 := pay(t, id, inv.ID, 40, "Idempotency-Key", "pay-1").want(t, 201)
	p2 := pay(t, id, inv.ID, 40, "Idempotency-Key", "pay-1").want(t, 201)
	if !bytes.Equal(p1.body, p2.body) {
		t.Errorf("payment retry %s, first %s", p2.body, p1.body)
	}
	if n := writerCount(t, ownerGroup(id), "payments", id); n != 1 {
		t.Errorf("%d payments, want 1", n)
	}
	// A failed request stores nothing: the same key runs again once the cause is gone.
	pay(t, id, inv.ID, 61, "Idempotency-Key", "pay-2").wantError(t, 409, "overpayment", "")
	pay(t, id, inv.ID, 61, "Idempotency-Key", "pay-2").wantError(t, 409, "overpayment", "")
	voidPath := fmt.Sprintf("/v1/customers/%d/invoices/%s/void", id, inv.ID)
	do(t, "POST", voidPath, nil, "Idempotency-Key", "void-1").wantError(t, 409, "invoice_has_payments", "")

	inv2 := newInvoice(t, id, "EUR", 10, "", "")
	voidPath = fmt.Sprintf("/v1/customers/%d/invoices/%s/void", id, inv2.ID)
	v1 := do(t, "POST", voidPath, nil, "Idempotency-Key", "void-2").want(t, 200)
	// The void's body is ignored, so it is no part of the request's identity.
	v2 := do(t, "POST", voidPath, `{}`, "Idempotency-Key", "void-2").want(t, 200)
	if !bytes.Equal(v1.body, v2.body) || v2.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("void retry %s, first %s", v2.body, v1.body)
	}
}

// Concurrent requests with one key: one executes, the others wait and replay its response.
func TestConcurrentIdempotentRetries(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	path := fmt.Sprintf("/v1/customers/%d/invoices", id)
	body := `{"currency":"EUR","lines":[{"description":"race","quantity":3,"unit_price_minor":7}]}`
	const n = 16
	replies := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = do(t, "POST", path, body, "Idempotency-Key", "same") })
	}
	wg.Wait()
	fresh := 0
	for i, r := range replies {
		r.want(t, 201)
		if !bytes.Equal(r.body, replies[0].body) {
			t.Errorf("reply %d: %s, reply 0: %s", i, r.body, replies[0].body)
		}
		if r.header.Get("Idempotent-Replayed") == "" {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d requests executed, want 1", fresh)
	}
	if c := writerCount(t, ownerGroup(id), "invoices", id); c != 1 {
		t.Errorf("%d invoices written, want 1", c)
	}
	if c := writerCount(t, ownerGroup(id), "invoice_lines", id); c != 1 {
		t.Errorf("%d lines written, want 1", c)
	}

	// The same for a payment.
	var inv invoice
	replies[0].decode(t, &inv)
	for i := range n {
		wg.Go(func() { replies[i] = pay(t, id, inv.ID, 5, "Idempotency-Key", "pay-same") })
	}
	wg.Wait()
	for _, r := range replies {
		r.want(t, 201)
	}
	if c := writerCount(t, ownerGroup(id), "payments", id); c != 1 {
		t.Errorf("%d payments written, want 1", c)
	}
}
