package invoiceapp

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Input limits, part of the API contract (docs/openapi.yaml).
const (
	MaxNameLen           = 200     // characters of a customer name
	MaxLines             = 100     // lines per invoice
	MaxDescriptionLen    = 500     // characters of a line description
	MaxQuantity          = 1000000 // per line
	MaxUnitPriceMinor    = 1000000000000
	MaxInvoiceTotalMinor = 1000000000000000
	MaxReferenceLen      = 200 // characters of a payment reference
	DefaultPaymentTerms  = 30  // days from issue to due date when due_date is omitted
	IssueDateYearsBack   = 10  // issue_date may lie this many years before today
	IssueDateYearsAhead  = 1   // and this many after
)

// currencyPattern is the shape of a currency code.
var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// NewCustomer is the body of POST /v1/customers. Pointer fields tell a missing field from a
// zero value.
type NewCustomer struct {
	ID   *int64  `json:"id"`
	Name *string `json:"name"`
	Tier *string `json:"tier"`
}

// customerInput is a validated NewCustomer; ID 0 means "choose one".
type customerInput struct {
	ID   int64
	Name string
	Tier Tier
}

// validate checks in.
func (in NewCustomer) validate() (customerInput, error) {
	var out customerInput
	if in.ID != nil {
		if *in.ID < 1 || *in.ID > MaxCustomerID {
			return out, invalid(CodeInvalidValue, "id", "must be between 1 and %d", MaxCustomerID)
		}
		out.ID = *in.ID
	}
	name, err := requiredText(in.Name, "name", MaxNameLen)
	if err != nil {
		return out, err
	}
	out.Name = name
	out.Tier = TierFree
	if in.Tier != nil {
		t, err := ParseTier(*in.Tier)
		if err != nil {
			return out, invalid(CodeInvalidValue, "tier", "must be free, basic, premium or enterprise")
		}
		out.Tier = t
	}
	return out, nil
}

// NewLine is one line of a NewInvoice.
type NewLine struct {
	Description    *string `json:"description"`
	Quantity       *int64  `json:"quantity"`
	UnitPriceMinor *int64  `json:"unit_price_minor"`
}

// NewInvoice is the body of POST /v1/customers/{id}/invoices.
type NewInvoice struct {
	Currency  *string   `json:"currency"`
	IssueDate *string   `json:"issue_date"` // YYYY-MM-DD
	DueDate   *string   `json:"due_date"`   // YYYY-MM-DD
	Lines     []NewLine `json:"lines"`
}

// invoiceInput is a validated NewInvoice with its amounts computed.
type invoiceInput struct {
	Currency   string
	IssueDate  Date
	DueDate    Date
	Lines      []Line
	TotalMinor int64
}

// validate checks in against today's date and computes line amounts and the total.
func (in NewInvoice) validate(today Date) (invoiceInput, error) {
	var out invoiceInput
	if in.Currency == nil {
		return out, invalid(CodeRequired, "currency", "is required")
	}
	if !currencyPattern.MatchString(*in.Currency) {
		return out, invalid(CodeInvalidValue, "currency", "must be three upper-case letters, e.g. EUR")
	}
	out.Currency = *in.Currency
	out.IssueDate = today
	if in.IssueDate != nil {
		d, err := ParseDate(*in.IssueDate)
		if err != nil {
			return out, invalid(CodeInvalidValue, "issue_date", "must be a date YYYY-MM-DD")
		}
		out.IssueDate = d
		earliest := Date{today.AddDate(-IssueDateYearsBack, 0, 0)}
		latest := Date{today.AddDate(IssueDateYearsAhead, 0, 0)}
		if out.IssueDate.Before(earliest.Time) || out.IssueDate.After(latest.Time) {
			return out, invalid(CodeInvalidValue, "issue_date", "must lie between %s and %s", earliest, latest)
		}
	}
	out.DueDate = out.IssueDate.AddDays(DefaultPaymentTerms)
	if in.DueDate != nil {
		d, err := ParseDate(*in.DueDate)
		if err != nil {
			return out, invalid(CodeInvalidValue, "due_date", "must be a date YYYY-MM-DD")
		}
		out.DueDate = d
		if out.DueDate.Before(out.IssueDate.Time) {
			return out, invalid(CodeInvalidValue, "due_date", "must not precede issue_date %s", out.IssueDate)
		}
		if out.DueDate.After(out.IssueDate.AddDate(IssueDateYearsAhead+IssueDateYearsBack, 0, 0)) {
			return out, invalid(CodeInvalidValue, "due_date", "is too far after issue_date")
		}
	}
	if in.Lines == nil {
		return out, invalid(CodeRequired, "lines", "is required")
	}
	if len(in.Lines) == 0 || len(in.Lines) > MaxLines {
		return out, invalid(CodeInvalidValue, "lines", "must have 1 to %d lines", MaxLines)
	}
	out.Lines = make([]Line, len(in.Lines))
	for i, l := range in.Lines {
		field := fmt.Sprintf("lines[%d].", i)
		desc, err := requiredText(l.Description, field+"description", MaxDescriptionLen)
		if err != nil {
			return out, err
		}
		if l.Quantity == nil {
			return out, invalid(CodeRequired, field+"quantity", "is required")
		}
		if *l.Quantity < 1 || *l.Quantity > MaxQuantity {
			return out, invalid(CodeInvalidValue, field+"quantity", "must be between 1 and %d", MaxQuantity)
		}
		if l.UnitPriceMinor == nil {
			return out, invalid(CodeRequired, field+"unit_price_minor", "is required")
		}
		if *l.UnitPriceMinor < 0 || *l.UnitPriceMinor > MaxUnitPriceMinor {
			return out, invalid(CodeInvalidValue, field+"unit_price_minor", "must be between 0 and %d", int64(MaxUnitPriceMinor))
		}
		// Both factors are bounded (10^6 × 10^12), so the product fits in an int64, and so
		// does a sum of at most MaxLines of them checked against MaxInvoiceTotalMinor.
		amount := *l.Quantity * *l.UnitPriceMinor
		out.Lines[i] = Line{LineNo: i + 1, Description: desc, Quantity: *l.Quantity, UnitPriceMinor: *l.UnitPriceMinor, AmountMinor: amount}
		out.TotalMinor += amount
		if out.TotalMinor > MaxInvoiceTotalMinor {
			return out, invalid(CodeInvalidValue, "lines", "the invoice total exceeds %d minor units", int64(MaxInvoiceTotalMinor))
		}
	}
	return out, nil
}

// NewPayment is the body of POST /v1/customers/{id}/invoices/{invoice}/payments.
type NewPayment struct {
	AmountMinor *int64  `json:"amount_minor"`
	Currency    *string `json:"currency"`
	Reference   *string `json:"reference"`
}

// paymentInput is a validated NewPayment; Currency "" means "the invoice's".
type paymentInput struct {
	AmountMinor int64
	Currency    string
	Reference   string
}

// validate checks in (the checks that need the invoice come later).
func (in NewPayment) validate() (paymentInput, error) {
	var out paymentInput
	if in.AmountMinor == nil {
		return out, invalid(CodeRequired, "amount_minor", "is required")
	}
	if *in.AmountMinor < 1 {
		return out, invalid(CodeInvalidValue, "amount_minor", "must be positive")
	}
	out.AmountMinor = *in.AmountMinor
	if in.Currency != nil {
		if !currencyPattern.MatchString(*in.Currency) {
			return out, invalid(CodeInvalidValue, "currency", "must be three upper-case letters, e.g. EUR")
		}
		out.Currency = *in.Currency
	}
	if in.Reference != nil {
		if err := checkText(*in.Reference, "reference", MaxReferenceLen); err != nil {
			return out, err
		}
		out.Reference = *in.Reference
	}
	return out, nil
}

// requiredText checks a required, non-blank text field of at most max characters.
func requiredText(s *string, field string, max int) (string, error) {
	if s == nil {
		return "", invalid(CodeRequired, field, "is required")
	}
	if strings.TrimSpace(*s) == "" {
		return "", invalid(CodeInvalidValue, field, "must not be blank")
	}
	if err := checkText(*s, field, max); err != nil {
		return "", err
	}
	return *s, nil
}

// checkText checks that s has at most max characters and none that Postgres text refuses.
func checkText(s, field string, max int) error {
	if utf8.RuneCountInString(s) > max {
		return invalid(CodeInvalidValue, field, "must be at most %d characters", max)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(CodeInvalidValue, field, "must not contain NUL characters")
	}
	return nil
}
