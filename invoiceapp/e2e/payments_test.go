package e2e

import (
	"fmt"
	"sync"
	"testing"
)

func TestPayments(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	inv := newInvoice(t, id, "EUR", 1000, "", "")

	// Partial payment.
	var p paymentResult
	r := pay(t, id, inv.ID, 300).want(t, 201)
	r.decode(t, &p)
	if p.Payment.AmountMinor != 300 || p.Payment.Currency != "EUR" || p.Payment.InvoiceID != inv.ID ||
		p.Invoice.Status != "open" || p.Invoice.PaidMinor != 300 || p.Invoice.BalanceMinor != 700 || p.Invoice.PaidAt != nil {
		t.Fatalf("partial payment: %s", r.body)
	}
	// More than the balance is refused and changes nothing.
	pay(t, id, inv.ID, 701).wantError(t, 409, "overpayment", "")
	// Zero, negative, missing, wrong currency.
	pay(t, id, inv.ID, 0).wantError(t, 400, "invalid_value", "amount_minor")
	pay(t, id, inv.ID, -5).wantError(t, 400, "invalid_value", "amount_minor")
	payPath := fmt.Sprintf("/v1/customers/%d/invoices/%s/payments", id, inv.ID)
	do(t, "POST", payPath, `{}`).wantError(t, 400, "required", "amount_minor")
	do(t, "POST", payPath, `{"amount_minor":10,"currency":"USD"}`).wantError(t, 400, "currency_mismatch", "currency")
	// The exact balance pays it, with a reference.
	r = do(t, "POST", payPath, `{"amount_minor":700,"currency":"EUR","reference":"bank 42"}`).want(t, 201)
	r.decode(t, &p)
	if p.Invoice.Status != "paid" || p.Invoice.PaidMinor != 1000 || p.Invoice.BalanceMinor != 0 || p.Invoice.PaidAt == nil ||
		p.Payment.Reference != "bank 42" {
		t.Fatalf("final payment: %s", r.body)
	}
	// A paid invoice takes nothing more and cannot be voided.
	pay(t, id, inv.ID, 1).wantError(t, 409, "invoice_paid", "")
	do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices/%s/void", id, inv.ID), nil).wantError(t, 409, "invoice_paid", "")
	if n := writerCount(t, ownerGroup(id), "payments", id); n != 2 {
		t.Errorf("%d payments stored, want 2", n)
	}
	// Unknown invoice and customer.
	pay(t, id, "0190d1a2-0000-7000-8000-000000000000", 1).wantError(t, 404, "invoice_not_found", "")
	pay(t, 8000997, inv.ID, 1).wantError(t, 404, "customer_not_found", "")
}

func TestVoid(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	voidPath := func(inv string) string { return fmt.Sprintf("/v1/customers/%d/invoices/%s/void", id, inv) }

	open := newInvoice(t, id, "EUR", 500, "", "")
	var v invoice
	r := do(t, "POST", voidPath(open.ID), nil).want(t, 200)
	r.decode(t, &v)
	if v.Status != "void" || v.VoidedAt == nil || len(v.Lines) != 1 || v.BalanceMinor != 500 || v.Overdue {
		t.Fatalf("voided: %s", r.body)
	}
	do(t, "POST", voidPath(open.ID), `{}`).wantError(t, 409, "invoice_void", "")
	pay(t, id, open.ID, 100).wantError(t, 409, "invoice_void", "")

	partly := newInvoice(t, id, "EUR", 500, "", "")
	pay(t, id, partly.ID, 100).want(t, 201)
	do(t, "POST", voidPath(partly.ID), nil).wantError(t, 409, "invoice_has_payments", "")

	do(t, "POST", voidPath("0190d1a2-0000-7000-8000-000000000000"), nil).wantError(t, 404, "invoice_not_found", "")
	var got invoice
	eventually(t, "the void to reach reads", func() bool {
		do(t, "GET", fmt.Sprintf("/v1/customers/%d/invoices/%s", id, open.ID), nil).want(t, 200).decode(t, &got)
		return got.Status == "void"
	})
}

// Concurrent payments on one invoice are serialized: the balance is never exceeded.
func TestConcurrentPayments(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	inv := newInvoice(t, id, "EUR", 1000, "", "")
	const n = 10
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = pay(t, id, inv.ID, 300).status })
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != 3 || count[409] != n-3 {
		t.Fatalf("statuses %v, want 3 × 201 and %d × 409", count, n-3)
	}
	var paid int64
	eventually(t, "payments to reach reads", func() bool {
		var got invoice
		do(t, "GET", fmt.Sprintf("/v1/customers/%d/invoices/%s", id, inv.ID), nil).want(t, 200).decode(t, &got)
		paid = got.PaidMinor
		return paid == 900 && got.Status == "open"
	})
	if c := writerCount(t, ownerGroup(id), "payments", id); c != 3 {
		t.Errorf("%d payments stored, want 3", c)
	}
}
