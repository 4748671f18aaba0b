package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCreateAndGetInvoice(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "basic")
	path := fmt.Sprintf("/v1/customers/%d/invoices", id)
	issue := today().AddDays(-3)
	r := do(t, "POST", path, invoiceReq{Currency: "EUR", IssueDate: issue.String(), Lines: []line{
		{"Consulting", 2, 1250}, {"Hosting", 3, 999}, {"Free setup", 1, 0},
	}}).want(t, 201)
	var inv invoice
	r.decode(t, &inv)
	if inv.CustomerID != id || inv.Currency != "EUR" || inv.Status != "open" || inv.Overdue ||
		inv.TotalMinor != 2*1250+3*999 || inv.PaidMinor != 0 || inv.BalanceMinor != inv.TotalMinor ||
		inv.IssueDate != issue.String() || inv.DueDate != issue.AddDays(30).String() ||
		inv.PaidAt != nil || inv.VoidedAt != nil || time.Since(inv.CreatedAt) > time.Minute {
		t.Fatalf("created %s", r.body)
	}
	if len(inv.Lines) != 3 || inv.Lines[1].LineNo != 2 || inv.Lines[1].AmountMinor != 2997 || inv.Lines[2].Description != "Free setup" {
		t.Fatalf("lines %+v", inv.Lines)
	}
	if loc := r.header.Get("Location"); loc != path+"/"+inv.ID {
		t.Errorf("Location %q", loc)
	}
	var got invoice
	getEventually(t, path+"/"+inv.ID, 200).decode(t, &got)
	if fmt.Sprint(got) != fmt.Sprint(inv) {
		t.Errorf("GET\n%+v\nwant\n%+v", got, inv)
	}

	// Past its due date it is overdue.
	late := newInvoice(t, id, "USD", 700, today().AddDays(-40).String(), today().AddDays(-1).String())
	if !late.Overdue || late.Status != "open" {
		t.Errorf("late invoice %+v", late)
	}
	// A zero total is covered at once.
	zero := newInvoice(t, id, "EUR", 0, "", "")
	if zero.Status != "paid" || zero.PaidAt == nil || zero.BalanceMinor != 0 {
		t.Errorf("zero invoice %+v", zero)
	}

	do(t, "GET", path+"/0190d1a2-0000-7000-8000-000000000000", nil).wantError(t, 404, "invoice_not_found", "")
	do(t, "GET", "/v1/customers/8000998/invoices/"+inv.ID, nil).wantError(t, 404, "customer_not_found", "")
	do(t, "POST", "/v1/customers/8000998/invoices", invoiceReq{Currency: "EUR", Lines: []line{{"a", 1, 1}}}).
		wantError(t, 404, "customer_not_found", "")
	do(t, "GET", path+"/123", nil).wantError(t, 400, "invalid_value", "invoice")
}

func TestInvoiceValidation(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	path := fmt.Sprintf("/v1/customers/%d/invoices", id)
	manyLines := make([]string, 101)
	for i := range manyLines {
		manyLines[i] = `{"description":"x","quantity":1,"unit_price_minor":1}`
	}
	cases := []struct {
		body, code, field string
	}{
		{`{"lines":[{"description":"a","quantity":1,"unit_price_minor":1}]}`, "required", "currency"},
		{`{"currency":"eur","lines":[{"description":"a","quantity":1,"unit_price_minor":1}]}`, "invalid_value", "currency"},
		{`{"currency":"EUR"}`, "required", "lines"},
		{`{"currency":"EUR","lines":[]}`, "invalid_value", "lines"},
		{`{"currency":"EUR","lines":[` + strings.Join(manyLines, ",") + `]}`, "invalid_value", "lines"},
		{`{"currency":"EUR","lines":[{"quantity":1,"unit_price_minor":1}]}`, "required", "lines[0].description"},
		{`{"currency":"EUR","lines":[{"description":"a","quantity":1,"unit_price_minor":1},{"description":"b","quantity":0,"unit_price_minor":1}]}`, "invalid_value", "lines[1].quantity"},
		{`{"currency":"EUR","lines":[{"description":"a","quantity":-2,"unit_price_minor":1}]}`, "invalid_value", "lines[0].quantity"},
		{`{"currency":"EUR","lines":[{"description":"a","quantity":1}]}`, "required", "lines[0].unit_price_minor"},
		{`{"currency":"EUR","lines":[{"description":"a","quantity":1,"unit_price_minor":-5}]}`, "invalid_value", "lines[0].unit_price_minor"},
		{`{"currency":"EUR","lines":[{"description":"a","quantity":1,"unit_price_minor":12.5}]}`, "invalid_value", "lines.unit_price_minor"},
		{`{"currency":"EUR","lines":[{"description":"a","quantity":1000000,"unit_price_minor":1000000000000},{"description":"a","quantity":1,"unit_price_minor":1}]}`, "invalid_value", "lines"},
		{`{"currency":"EUR","issue_date":"2026-02-30","lines":[{"description":"a","quantity":1,"unit_price_minor":1}]}`, "invalid_value", "issue_date"},
		{`{"currency":"EUR","issue_date":"1999-01-01","lines":[{"description":"a","quantity":1,"unit_price_minor":1}]}`, "invalid_value", "issue_date"},
		{`{"currency":"EUR","issue_date":"` + today().String() + `","due_date":"` + today().AddDays(-1).String() + `","lines":[{"description":"a","quantity":1,"unit_price_minor":1}]}`, "invalid_value", "due_date"},
		{`{"currency":"EUR","lines":[{"description":"a","quantity":1,"unit_price_minor":1,"tax":1}]}`, "unknown_field", "tax"},
	}
	for _, tc := range cases {
		t.Run(tc.code+" "+tc.field, func(t *testing.T) {
			do(t, "POST", path, tc.body).wantError(t, 400, tc.code, tc.field)
		})
	}
	// Nothing of that was written.
	if n := writerCount(t, ownerGroup(id), "invoices", id); n != 0 {
		t.Errorf("%d invoices written by invalid requests", n)
	}
}
