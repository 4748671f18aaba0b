package invoiceapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// RecordPayment records a payment against an open invoice and returns the 201 response (the
// payment and the invoice after it, without lines). The invoice becomes paid when the
// payment covers its balance exactly; more than the balance is a conflict (overpayment), as
// is paying a void (invoice_void) or paid (invoice_paid) invoice. A currency other than the
// invoice's is invalid (currency_mismatch).
func (s *Store) RecordPayment(ctx context.Context, customerID int64, invoiceID uuid.UUID, in NewPayment, key *IdempotencyKey) (Response, error) {
	v, err := in.validate()
	if err != nil {
		return Response{}, err
	}
	pid, err := NewID()
	if err != nil {
		return Response{}, err
	}
	today := s.today()
	return s.Do(ctx, customerID, key, func(ctx context.Context, tx pgx.Tx) (Response, error) {
		inv, err := lockInvoice(ctx, tx, customerID, invoiceID)
		if err != nil {
			return Response{}, err
		}
		switch inv.Status {
		case StatusVoid:
			return Response{}, conflict(CodeInvoiceVoid, "invoice %s is void and takes no payments", invoiceID)
		case StatusPaid:
			return Response{}, conflict(CodeInvoicePaid, "invoice %s is already paid", invoiceID)
		}
		if v.Currency != "" && v.Currency != inv.Currency {
			return Response{}, invalid(CodeCurrencyMismatch, "currency", "the invoice is in %s", inv.Currency)
		}
		if balance := inv.TotalMinor - inv.PaidMinor; v.AmountMinor > balance {
			return Response{}, conflict(CodeOverpayment, "amount %d exceeds the invoice's balance %d", v.AmountMinor, balance)
		}
		p := Payment{ID: pid, CustomerID: customerID, InvoiceID: invoiceID, AmountMinor: v.AmountMinor,
			Currency: inv.Currency, Reference: v.Reference}
		if err := tx.QueryRow(ctx, `INSERT INTO payments
(customer_id, id, invoice_id, issue_date, amount_minor, currency, reference)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
			customerID, pid, invoiceID, inv.IssueDate.Time, v.AmountMinor, inv.Currency, v.Reference).Scan(&p.CreatedAt); err != nil {
			return Response{}, fmt.Errorf("insert payment: %w", err)
		}
		p.CreatedAt = p.CreatedAt.UTC()
		var after Invoice
		if err := tx.QueryRow(ctx, `UPDATE invoices AS i SET paid_minor = i.paid_minor + $4,
status = CASE WHEN i.paid_minor + $4 = i.total_minor THEN 'paid' ELSE i.status END,
paid_at = CASE WHEN i.paid_minor + $4 = i.total_minor THEN now() ELSE i.paid_at END
WHERE i.customer_id = $1 AND i.issue_date = $2 AND i.id = $3
RETURNING `+invoiceColumns, customerID, inv.IssueDate.Time, invoiceID, v.AmountMinor).Scan(invoiceTargets(&after)...); err != nil {
			return Response{}, fmt.Errorf("update invoice after payment: %w", err)
		}
		after.derive(today)
		return jsonResponse(http.StatusCreated, PaymentResult{Payment: p, Invoice: after}, "")
	})
}

// VoidInvoice voids an open invoice without payments and returns the 200 response (the
// invoice with its lines). A paid invoice (invoice_paid), a void one (invoice_void) and one
// with partial payments (invoice_has_payments) are conflicts.
func (s *Store) VoidInvoice(ctx context.Context, customerID int64, invoiceID uuid.UUID, key *IdempotencyKey) (Response, error) {
	today := s.today()
	return s.Do(ctx, customerID, key, func(ctx context.Context, tx pgx.Tx) (Response, error) {
		inv, err := loadInvoice(ctx, tx, customerID, invoiceID, true)
		if err != nil {
			return Response{}, err
		}
		switch {
		case inv.Status == StatusVoid:
			return Response{}, conflict(CodeInvoiceVoid, "invoice %s is already void", invoiceID)
		case inv.Status == StatusPaid:
			return Response{}, conflict(CodeInvoicePaid, "invoice %s is paid and cannot be voided", invoiceID)
		case inv.PaidMinor > 0:
			return Response{}, conflict(CodeInvoiceHasPayments, "invoice %s has payments of %d and cannot be voided", invoiceID, inv.PaidMinor)
		}
		if err := tx.QueryRow(ctx, `UPDATE invoices SET status = 'void', voided_at = now()
WHERE customer_id = $1 AND issue_date = $2 AND id = $3 RETURNING voided_at`,
			customerID, inv.IssueDate.Time, invoiceID).Scan(&inv.VoidedAt); err != nil {
			return Response{}, fmt.Errorf("void invoice: %w", err)
		}
		inv.Status = StatusVoid
		inv.derive(today)
		return jsonResponse(http.StatusOK, inv, "")
	})
}

// lockInvoice reads and locks an invoice row (without lines) in tx, or fails with
// KindNotFound (Do checked the customer).
func lockInvoice(ctx context.Context, tx pgx.Tx, customerID int64, id uuid.UUID) (Invoice, error) {
	var inv Invoice
	err := tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices i WHERE i.customer_id = $1 AND i.id = $2 FOR UPDATE`,
		customerID, id).Scan(invoiceTargets(&inv)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return Invoice{}, errInvoiceNotFound(customerID, id.String())
	}
	if err != nil {
		return Invoice{}, fmt.Errorf("lock invoice %s: %w", id, err)
	}
	return inv, nil
}
