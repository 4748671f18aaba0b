package httpapi

import (
	"testing"

	"github.com/shardwire/shardwire/invoiceapp"
)

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name, body       string
		wantCode, wantFd string
	}{
		{name: "ok", body: `{"name":"a","tier":"basic"}`},
		{name: "ok with spaces", body: " \n{\"name\":\"a\"}\n "},
		{name: "null", body: `null`},
		{name: "empty", body: ``, wantCode: invoiceapp.CodeInvalidJSON},
		{name: "blank", body: " \n", wantCode: invoiceapp.CodeInvalidJSON},
		{name: "syntax", body: `{"name":}`, wantCode: invoiceapp.CodeInvalidJSON},
		{name: "truncated", body: `{"name":"a"`, wantCode: invoiceapp.CodeInvalidJSON},
		{name: "trailing", body: `{"name":"a"} {}`, wantCode: invoiceapp.CodeInvalidJSON},
		{name: "trailing garbage", body: `{"name":"a"}x`, wantCode: invoiceapp.CodeInvalidJSON},
		{name: "array", body: `[]`, wantCode: invoiceapp.CodeInvalidJSON},
		{name: "unknown field", body: `{"name":"a","color":"red"}`, wantCode: invoiceapp.CodeUnknownField, wantFd: "color"},
		{name: "wrong type", body: `{"name":5}`, wantCode: invoiceapp.CodeInvalidValue, wantFd: "name"},
		{name: "float id", body: `{"id":1.5,"name":"a"}`, wantCode: invoiceapp.CodeInvalidValue, wantFd: "id"},
		{name: "huge id", body: `{"id":99999999999999999999,"name":"a"}`, wantCode: invoiceapp.CodeInvalidValue, wantFd: "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var in invoiceapp.NewCustomer
			err := decodeJSON([]byte(tc.body), &in)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			e := invoiceapp.AsError(err)
			if e == nil || e.Kind != invoiceapp.KindInvalid || e.Code != tc.wantCode || e.Field != tc.wantFd {
				t.Fatalf("error %#v, want %s field %q", err, tc.wantCode, tc.wantFd)
			}
		})
	}
	var inv invoiceapp.NewInvoice
	err := decodeJSON([]byte(`{"currency":"EUR","lines":[{"description":"a","quantity":"2","unit_price_minor":1}]}`), &inv)
	if e := invoiceapp.AsError(err); e == nil || e.Code != invoiceapp.CodeInvalidValue || e.Field != "lines.quantity" {
		t.Fatalf("nested type error: %#v", err)
	}
}
