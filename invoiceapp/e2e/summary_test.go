package e2e

import (
	"fmt"
	"reflect"
	"testing"
)

// totals is the summary's Totals.
type totals struct {
	Count        int64 `json:"count"`
	TotalMinor   int64 `json:"total_minor"`
	PaidMinor    int64 `json:"paid_minor"`
	BalanceMinor int64 `json:"balance_minor"`
}

// currencySummary is one currency of a summary.
type currencySummary struct {
	Currency string `json:"currency"`
	Open     totals `json:"open"`
	Paid     totals `json:"paid"`
	Void     totals `json:"void"`
	Overdue  totals `json:"overdue"`
}

// summary is the summary resource.
type summary struct {
	CustomerID int64             `json:"customer_id"`
	AsOf       string            `json:"as_of"`
	Currencies []currencySummary `json:"currencies"`
}

func TestSummary(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "premium")
	d := today()
	// EUR: one overdue (partly paid), one open, one paid, one void. USD: one open.
	late := newInvoice(t, id, "EUR", 1000, d.AddDays(-40).String(), d.AddDays(-10).String())
	pay(t, id, late.ID, 250).want(t, 201)
	newInvoice(t, id, "EUR", 500, "", "")
	paid := newInvoice(t, id, "EUR", 300, "", "")
	pay(t, id, paid.ID, 300).want(t, 201)
	void := newInvoice(t, id, "EUR", 70, "", "")
	do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices/%s/void", id, void.ID), nil).want(t, 200)
	newInvoice(t, id, "USD", 42, "", "")

	want := summary{CustomerID: id, AsOf: d.String(), Currencies: []currencySummary{
		{
			Currency: "EUR",
			Open:     totals{Count: 2, TotalMinor: 1500, PaidMinor: 250, BalanceMinor: 1250},
			Paid:     totals{Count: 1, TotalMinor: 300, PaidMinor: 300},
			Void:     totals{Count: 1, TotalMinor: 70, BalanceMinor: 70},
			Overdue:  totals{Count: 1, TotalMinor: 1000, PaidMinor: 250, BalanceMinor: 750},
		},
		{Currency: "USD", Open: totals{Count: 1, TotalMinor: 42, BalanceMinor: 42}},
	}}

	path := fmt.Sprintf("/v1/customers/%d/summary", id)
	var got summary
	eventually(t, "the summary to show every write", func() bool {
		do(t, "GET", path, nil).want(t, 200).decode(t, &got)
		return reflect.DeepEqual(got, want)
	})

	do(t, "GET", "/v1/customers/8000995/summary", nil).wantError(t, 404, "customer_not_found", "")
	fresh := newCustomer(t, "free")
	var empty summary
	getEventually(t, fmt.Sprintf("/v1/customers/%d/summary", fresh), 200).decode(t, &empty)
	if empty.CustomerID != fresh || empty.Currencies == nil || len(empty.Currencies) != 0 {
		t.Errorf("empty summary %+v", empty)
	}
}
