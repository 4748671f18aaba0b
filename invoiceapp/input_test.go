package invoiceapp

import (
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestNewCustomerValidate(t *testing.T) {
	cases := []struct {
		name      string
		in        NewCustomer
		wantCode  string
		wantField string
		want      customerInput
	}{
		{name: "minimal", in: NewCustomer{Name: ptr("Acme")}, want: customerInput{Name: "Acme", Tier: TierFree}},
		{name: "full", in: NewCustomer{ID: ptr(int64(42)), Name: ptr("Acme"), Tier: ptr("premium")}, want: customerInput{ID: 42, Name: "Acme", Tier: TierPremium}},
		{name: "max id", in: NewCustomer{ID: ptr(MaxCustomerID), Name: ptr("x")}, want: customerInput{ID: MaxCustomerID, Name: "x", Tier: TierFree}},
		{name: "zero id", in: NewCustomer{ID: ptr(int64(0)), Name: ptr("x")}, wantCode: CodeInvalidValue, wantField: "id"},
		{name: "negative id", in: NewCustomer{ID: ptr(int64(-3)), Name: ptr("x")}, wantCode: CodeInvalidValue, wantField: "id"},
		{name: "id too large", in: NewCustomer{ID: ptr(MaxCustomerID + 1), Name: ptr("x")}, wantCode: CodeInvalidValue, wantField: "id"},
		{name: "no name", in: NewCustomer{}, wantCode: CodeRequired, wantField: "name"},
		{name: "blank name", in: NewCustomer{Name: ptr("  \t")}, wantCode: CodeInvalidValue, wantField: "name"},
		{name: "long name", in: NewCustomer{Name: ptr(strings.Repeat("é", MaxNameLen+1))}, wantCode: CodeInvalidValue, wantField: "name"},
		{name: "longest name", in: NewCustomer{Name: ptr(strings.Repeat("é", MaxNameLen))}, want: customerInput{Name: strings.Repeat("é", MaxNameLen), Tier: TierFree}},
		{name: "NUL in name", in: NewCustomer{Name: ptr("a\x00b")}, wantCode: CodeInvalidValue, wantField: "name"},
		{name: "bad tier", in: NewCustomer{Name: ptr("x"), Tier: ptr("gold")}, wantCode: CodeInvalidValue, wantField: "tier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.validate()
			checkErr(t, err, tc.wantCode, tc.wantField)
			if tc.wantCode == "" && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// checkErr checks that err is a KindInvalid *Error with code and field, or nil when code is "".
func checkErr(t *testing.T, err error, code, field string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	e := AsError(err)
	if e == nil {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	if e.Kind != KindInvalid || e.Code != code || e.Field != field {
		t.Fatalf("error = kind %d %s field %q, want %s field %q", e.Kind, e.Code, e.Field, code, field)
	}
}

func line(desc string, qty, price int64) NewLine {
	return NewLine{Description: &desc, Quantity: &qty, UnitPriceMinor: &price}
}

func TestNewInvoiceValidate(t *testing.T) {
	today, _ := ParseDate("2026-03-15")
	eur := ptr("EUR")
	many := make([]NewLine, MaxLines+1)
	for i := range many {
		many[i] = line("x", 1, 1)
	}
	big := make([]NewLine, MaxLines)
	for i := range big {
		big[i] = line("x", MaxQuantity, MaxUnitPriceMinor)
	}
	cases := []struct {
		name      string
		in        NewInvoice
		wantCode  string
		wantField string
		check     func(t *testing.T, v invoiceInput)
	}{
		{name: "defaults", in: NewInvoice{Currency: eur, Lines: []NewLine{line("a", 2, 1250), line("b", 1, 99)}},
			check: func(t *testing.T, v invoiceInput) {
				if v.TotalMinor != 2599 || v.Lines[0].AmountMinor != 2500 || v.Lines[1].LineNo != 2 {
					t.Errorf("amounts: %+v", v)
				}
				if v.IssueDate != today || v.DueDate.String() != "2026-04-14" {
					t.Errorf("dates: issue %s due %s", v.IssueDate, v.DueDate)
				}
			}},
		{name: "explicit dates", in: NewInvoice{Currency: eur, IssueDate: ptr("2026-01-31"), DueDate: ptr("2026-01-31"), Lines: []NewLine{line("a", 1, 0)}},
			check: func(t *testing.T, v invoiceInput) {
				if v.IssueDate.String() != "2026-01-31" || v.DueDate.String() != "2026-01-31" || v.TotalMinor != 0 {
					t.Errorf("got %+v", v)
				}
			}},
		{name: "largest total", in: NewInvoice{Currency: eur, Lines: []NewLine{line("a", 1000, MaxUnitPriceMinor)}},
			check: func(t *testing.T, v invoiceInput) {
				if v.TotalMinor != MaxInvoiceTotalMinor {
					t.Errorf("total %d", v.TotalMinor)
				}
			}},
		{name: "no currency", in: NewInvoice{Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeRequired, wantField: "currency"},
		{name: "lower-case currency", in: NewInvoice{Currency: ptr("eur"), Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "currency"},
		{name: "long currency", in: NewInvoice{Currency: ptr("EURO"), Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "currency"},
		{name: "no lines", in: NewInvoice{Currency: eur}, wantCode: CodeRequired, wantField: "lines"},
		{name: "empty lines", in: NewInvoice{Currency: eur, Lines: []NewLine{}}, wantCode: CodeInvalidValue, wantField: "lines"},
		{name: "too many lines", in: NewInvoice{Currency: eur, Lines: many}, wantCode: CodeInvalidValue, wantField: "lines"},
		{name: "total too large", in: NewInvoice{Currency: eur, Lines: big}, wantCode: CodeInvalidValue, wantField: "lines"},
		{name: "no description", in: NewInvoice{Currency: eur, Lines: []NewLine{line("a", 1, 1), {Quantity: ptr(int64(1)), UnitPriceMinor: ptr(int64(1))}}}, wantCode: CodeRequired, wantField: "lines[1].description"},
		{name: "blank description", in: NewInvoice{Currency: eur, Lines: []NewLine{line(" ", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "lines[0].description"},
		{name: "no quantity", in: NewInvoice{Currency: eur, Lines: []NewLine{{Description: ptr("a"), UnitPriceMinor: ptr(int64(1))}}}, wantCode: CodeRequired, wantField: "lines[0].quantity"},
		{name: "zero quantity", in: NewInvoice{Currency: eur, Lines: []NewLine{line("a", 0, 1)}}, wantCode: CodeInvalidValue, wantField: "lines[0].quantity"},
		{name: "huge quantity", in: NewInvoice{Currency: eur, Lines: []NewLine{line("a", MaxQuantity+1, 1)}}, wantCode: CodeInvalidValue, wantField: "lines[0].quantity"},
		{name: "no price", in: NewInvoice{Currency: eur, Lines: []NewLine{{Description: ptr("a"), Quantity: ptr(int64(1))}}}, wantCode: CodeRequired, wantField: "lines[0].unit_price_minor"},
		{name: "negative price", in: NewInvoice{Currency: eur, Lines: []NewLine{line("a", 1, -1)}}, wantCode: CodeInvalidValue, wantField: "lines[0].unit_price_minor"},
		{name: "huge price", in: NewInvoice{Currency: eur, Lines: []NewLine{line("a", 1, MaxUnitPriceMinor+1)}}, wantCode: CodeInvalidValue, wantField: "lines[0].unit_price_minor"},
		{name: "bad issue date", in: NewInvoice{Currency: eur, IssueDate: ptr("2026-02-30"), Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "issue_date"},
		{name: "ancient issue date", in: NewInvoice{Currency: eur, IssueDate: ptr("2016-03-14"), Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "issue_date"},
		{name: "far issue date", in: NewInvoice{Currency: eur, IssueDate: ptr("2027-03-16"), Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "issue_date"},
		{name: "due before issue", in: NewInvoice{Currency: eur, IssueDate: ptr("2026-03-10"), DueDate: ptr("2026-03-09"), Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "due_date"},
		{name: "bad due date", in: NewInvoice{Currency: eur, DueDate: ptr("15.03.2026"), Lines: []NewLine{line("a", 1, 1)}}, wantCode: CodeInvalidValue, wantField: "due_date"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.in.validate(today)
			checkErr(t, err, tc.wantCode, tc.wantField)
			if tc.check != nil {
				tc.check(t, v)
			}
		})
	}
}

func TestNewPaymentValidate(t *testing.T) {
	cases := []struct {
		name      string
		in        NewPayment
		wantCode  string
		wantField string
		want      paymentInput
	}{
		{name: "amount only", in: NewPayment{AmountMinor: ptr(int64(5))}, want: paymentInput{AmountMinor: 5}},
		{name: "full", in: NewPayment{AmountMinor: ptr(int64(5)), Currency: ptr("USD"), Reference: ptr("wire 7")}, want: paymentInput{5, "USD", "wire 7"}},
		{name: "missing", in: NewPayment{}, wantCode: CodeRequired, wantField: "amount_minor"},
		{name: "zero", in: NewPayment{AmountMinor: ptr(int64(0))}, wantCode: CodeInvalidValue, wantField: "amount_minor"},
		{name: "negative", in: NewPayment{AmountMinor: ptr(int64(-100))}, wantCode: CodeInvalidValue, wantField: "amount_minor"},
		{name: "bad currency", in: NewPayment{AmountMinor: ptr(int64(1)), Currency: ptr("usd")}, wantCode: CodeInvalidValue, wantField: "currency"},
		{name: "long reference", in: NewPayment{AmountMinor: ptr(int64(1)), Reference: ptr(strings.Repeat("r", MaxReferenceLen+1))}, wantCode: CodeInvalidValue, wantField: "reference"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.validate()
			checkErr(t, err, tc.wantCode, tc.wantField)
			if tc.wantCode == "" && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
