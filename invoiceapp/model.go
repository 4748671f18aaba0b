package invoiceapp

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Tier is a customer's plan; it decides the customer's rate limits.
type Tier string

// The tiers.
const (
	TierFree       Tier = "free"
	TierBasic      Tier = "basic"
	TierPremium    Tier = "premium"
	TierEnterprise Tier = "enterprise"
)

// ParseTier returns the tier named s.
func ParseTier(s string) (Tier, error) {
	switch t := Tier(s); t {
	case TierFree, TierBasic, TierPremium, TierEnterprise:
		return t, nil
	}
	return "", fmt.Errorf("tier %q: want free, basic, premium or enterprise", s)
}

// Status is an invoice's stored state. "Overdue" is not a status: it is computed (open and
// past its due date).
type Status string

// The statuses.
const (
	StatusOpen Status = "open"
	StatusPaid Status = "paid"
	StatusVoid Status = "void"
)

// Customer is a customer of the platform; ID is the shard key.
type Customer struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Tier      Tier      `json:"tier"`
	CreatedAt time.Time `json:"created_at"`
}

// Line is one line of an invoice. AmountMinor = Quantity × UnitPriceMinor.
type Line struct {
	LineNo         int    `json:"line_no"`
	Description    string `json:"description"`
	Quantity       int64  `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
	AmountMinor    int64  `json:"amount_minor"`
}

// Invoice is an invoice; Lines is nil in listings and payment results.
type Invoice struct {
	ID           uuid.UUID  `json:"id"`
	CustomerID   int64      `json:"customer_id"`
	Currency     string     `json:"currency"`
	Status       Status     `json:"status"`
	Overdue      bool       `json:"overdue"`
	IssueDate    Date       `json:"issue_date"`
	DueDate      Date       `json:"due_date"`
	TotalMinor   int64      `json:"total_minor"`
	PaidMinor    int64      `json:"paid_minor"`
	BalanceMinor int64      `json:"balance_minor"`
	CreatedAt    time.Time  `json:"created_at"`
	PaidAt       *time.Time `json:"paid_at"`
	VoidedAt     *time.Time `json:"voided_at"`
	Lines        []Line     `json:"lines,omitempty"`
}

// derive fills the computed fields (balance, overdue as of today) and normalizes times to UTC.
func (inv *Invoice) derive(today Date) {
	inv.BalanceMinor = inv.TotalMinor - inv.PaidMinor
	inv.Overdue = inv.Status == StatusOpen && inv.DueDate.Before(today.Time)
	inv.CreatedAt = inv.CreatedAt.UTC()
	inv.PaidAt = utcPtr(inv.PaidAt)
	inv.VoidedAt = utcPtr(inv.VoidedAt)
}

// Payment is a payment recorded against an invoice, in the invoice's currency.
type Payment struct {
	ID          uuid.UUID `json:"id"`
	CustomerID  int64     `json:"customer_id"`
	InvoiceID   uuid.UUID `json:"invoice_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Reference   string    `json:"reference"`
	CreatedAt   time.Time `json:"created_at"`
}

// PaymentResult is a recorded payment and its invoice after it.
type PaymentResult struct {
	Payment Payment `json:"payment"`
	Invoice Invoice `json:"invoice"`
}

// InvoicePage is one page of a listing; NextCursor is nil on the last page.
type InvoicePage struct {
	Invoices   []Invoice `json:"invoices"`
	NextCursor *string   `json:"next_cursor"`
}

// Totals sums a set of invoices.
type Totals struct {
	Count        int64 `json:"count"`
	TotalMinor   int64 `json:"total_minor"`
	PaidMinor    int64 `json:"paid_minor"`
	BalanceMinor int64 `json:"balance_minor"`
}

// add counts one group of invoices in t.
func (t *Totals) add(count, total, paid int64) {
	t.Count += count
	t.TotalMinor += total
	t.PaidMinor += paid
	t.BalanceMinor += total - paid
}

// CurrencySummary is a customer's invoices in one currency, by status; Overdue covers the
// open invoices past their due date (they are counted in Open as well).
type CurrencySummary struct {
	Currency string `json:"currency"`
	Open     Totals `json:"open"`
	Paid     Totals `json:"paid"`
	Void     Totals `json:"void"`
	Overdue  Totals `json:"overdue"`
}

// Summary is a customer's invoice totals as of one day, one entry per currency sorted by code.
type Summary struct {
	CustomerID int64             `json:"customer_id"`
	AsOf       Date              `json:"as_of"`
	Currencies []CurrencySummary `json:"currencies"`
}

// utcPtr returns t in UTC, keeping nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
