package invoiceapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// invoiceColumns is the select list scanInvoice reads, on invoices aliased i.
const invoiceColumns = `i.id, i.customer_id, i.currency, i.status, i.issue_date, i.due_date, i.total_minor,
i.paid_minor, i.created_at, i.paid_at, i.voided_at`

// invoiceTargets returns scan targets for invoiceColumns into inv.
func invoiceTargets(inv *Invoice) []any {
	return []any{&inv.ID, &inv.CustomerID, &inv.Currency, &inv.Status, &inv.IssueDate.Time, &inv.DueDate.Time,
		&inv.TotalMinor, &inv.PaidMinor, &inv.CreatedAt, &inv.PaidAt, &inv.VoidedAt}
}

// CreateInvoice creates an open invoice with its lines for customerID and returns the 201
// response (the invoice with its lines). An invoice whose total is zero is paid at once.
func (s *Store) CreateInvoice(ctx context.Context, customerID int64, in NewInvoice, key *IdempotencyKey) (Response, error) {
	today := s.today()
	v, err := in.validate(today)
	if err != nil {
		return Response{}, err
	}
	id, err := NewID()
	if err != nil {
		return Response{}, err
	}
	for attempt := 1; ; attempt++ {
		if err := s.EnsurePartition(ctx, v.IssueDate); err != nil {
			return Response{}, err
		}
		resp, err := s.Do(ctx, customerID, key, func(ctx context.Context, tx pgx.Tx) (Response, error) {
			return insertInvoice(ctx, tx, customerID, id, v, today)
		})
		if attempt == 1 && isMissingPartition(err) {
			// Dropped behind this process's back: forget it and create it again.
			s.forgetPartition(v.IssueDate)
			continue
		}
		return resp, err
	}
}

// insertInvoice writes the invoice and its lines in tx (Do checked the customer).
func insertInvoice(ctx context.Context, tx pgx.Tx, customerID int64, id uuid.UUID, v invoiceInput, today Date) (Response, error) {
	inv := Invoice{ID: id, CustomerID: customerID, Currency: v.Currency, Status: StatusOpen,
		IssueDate: v.IssueDate, DueDate: v.DueDate, TotalMinor: v.TotalMinor, Lines: v.Lines}
	if v.TotalMinor == 0 {
		inv.Status = StatusPaid // nothing to pay: covered from the start
	}
	err := tx.QueryRow(ctx, `INSERT INTO invoices
(customer_id, id, issue_date, due_date, currency, status, total_minor, paid_minor, paid_at)
VALUES ($1, $2, $3, $4, $5, $6::text, $7, 0, CASE WHEN $6::text = 'paid' THEN now() END)
RETURNING created_at, paid_at`,
		customerID, id, v.IssueDate.Time, v.DueDate.Time, v.Currency, string(inv.Status), v.TotalMinor).
		Scan(&inv.CreatedAt, &inv.PaidAt)
	if err != nil {
		return Response{}, fmt.Errorf("insert invoice: %w", err)
	}
	n := len(v.Lines)
	lineNos, descs := make([]int32, n), make([]string, n)
	qtys, prices, amounts := make([]int64, n), make([]int64, n), make([]int64, n)
	for i, l := range v.Lines {
		lineNos[i], descs[i], qtys[i], prices[i], amounts[i] = int32(l.LineNo), l.Description, l.Quantity, l.UnitPriceMinor, l.AmountMinor
	}
	// One statement whatever the line count, so the proxy and pgx see one statement shape.
	if _, err := tx.Exec(ctx, `INSERT INTO invoice_lines
(customer_id, invoice_id, issue_date, line_no, description, quantity, unit_price_minor, amount_minor)
SELECT $1, $2, $3, u.line_no, u.description, u.quantity, u.unit_price_minor, u.amount_minor
FROM unnest($4::int[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[])
AS u(line_no, description, quantity, unit_price_minor, amount_minor)`,
		customerID, id, v.IssueDate.Time, lineNos, descs, qtys, prices, amounts); err != nil {
		return Response{}, fmt.Errorf("insert invoice lines: %w", err)
	}
	inv.derive(today)
	return jsonResponse(http.StatusCreated, inv, fmt.Sprintf("/v1/customers/%d/invoices/%s", customerID, id))
}

// isMissingPartition reports whether err is Postgres refusing a row no partition takes.
func isMissingPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && strings.Contains(pgErr.Message, "no partition")
}

// GetInvoice returns the invoice with its lines, or a KindNotFound error (customer_not_found
// or invoice_not_found). It may read from a replica.
func (s *Store) GetInvoice(ctx context.Context, customerID int64, id uuid.UUID) (Invoice, error) {
	inv, err := loadInvoice(ctx, s.db, customerID, id, false)
	if err != nil {
		return Invoice{}, err
	}
	inv.derive(s.today())
	return inv, nil
}

// loadInvoice reads an invoice with its lines in one statement (so a replica shows both or
// neither). forUpdate locks the invoice row (q must then be a transaction).
func loadInvoice(ctx context.Context, q querier, customerID int64, id uuid.UUID, forUpdate bool) (Invoice, error) {
	sql := `SELECT ` + invoiceColumns + `, l.line_no, l.description, l.quantity, l.unit_price_minor, l.amount_minor
FROM invoices i JOIN invoice_lines l ON l.customer_id = i.customer_id AND l.invoice_id = i.id
WHERE i.customer_id = $1 AND i.id = $2 ORDER BY l.line_no`
	if forUpdate {
		sql += ` FOR UPDATE OF i`
	}
	rows, err := q.Query(ctx, sql, customerID, id)
	if err != nil {
		return Invoice{}, fmt.Errorf("get invoice %s: %w", id, err)
	}
	defer rows.Close()
	var inv Invoice
	for rows.Next() {
		var l Line
		if err := rows.Scan(append(invoiceTargets(&inv), &l.LineNo, &l.Description, &l.Quantity, &l.UnitPriceMinor, &l.AmountMinor)...); err != nil {
			return Invoice{}, fmt.Errorf("get invoice %s: %w", id, err)
		}
		inv.Lines = append(inv.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return Invoice{}, fmt.Errorf("get invoice %s: %w", id, err)
	}
	if inv.Lines == nil {
		if err := requireCustomer(ctx, q, customerID); err != nil {
			return Invoice{}, err
		}
		return Invoice{}, errInvoiceNotFound(customerID, id.String())
	}
	return inv, nil
}
