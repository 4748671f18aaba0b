package invoiceapp

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Listing limits.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// ListQuery is a listing request as the client sent it (query-string values, "" when
// absent); ListInvoices validates it.
type ListQuery struct {
	Limit  string // 1..MaxListLimit, default DefaultListLimit
	Cursor string // a previous page's NextCursor
	Status string // open, paid, void or overdue
	From   string // earliest issue_date, YYYY-MM-DD, inclusive
	To     string // latest issue_date, YYYY-MM-DD, inclusive
}

// listFilter is a validated ListQuery.
type listFilter struct {
	limit    int
	after    *cursor
	status   string
	from, to *Date
}

// parse validates q.
func (q ListQuery) parse() (listFilter, error) {
	f := listFilter{limit: DefaultListLimit}
	if q.Limit != "" {
		n, err := strconv.Atoi(q.Limit)
		if err != nil || n < 1 || n > MaxListLimit {
			return f, invalid(CodeInvalidValue, "limit", "must be an integer from 1 to %d", MaxListLimit)
		}
		f.limit = n
	}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return f, err
		}
		f.after = &c
	}
	switch q.Status {
	case "", "open", "paid", "void", "overdue":
		f.status = q.Status
	default:
		return f, invalid(CodeInvalidValue, "status", "must be open, paid, void or overdue")
	}
	for _, d := range []struct {
		name, value string
		dst         **Date
	}{{"from", q.From, &f.from}, {"to", q.To, &f.to}} {
		if d.value == "" {
			continue
		}
		v, err := ParseDate(d.value)
		if err != nil {
			return f, invalid(CodeInvalidValue, d.name, "must be a date YYYY-MM-DD")
		}
		*d.dst = &v
	}
	if f.from != nil && f.to != nil && f.to.Before(f.from.Time) {
		return f, invalid(CodeInvalidValue, "to", "must not precede from")
	}
	return f, nil
}

// ListInvoices returns one page of a customer's invoices (without lines), newest issue date
// first, ordered by (issue_date, id) descending. Paging is by keyset: the next page starts
// strictly after the last invoice of this one, so invoices that existed when the listing
// began are listed exactly once however many are inserted meanwhile. An unknown customer is
// a KindNotFound error. It may read from a replica.
func (s *Store) ListInvoices(ctx context.Context, customerID int64, q ListQuery) (InvoicePage, error) {
	f, err := q.parse()
	if err != nil {
		return InvoicePage{}, err
	}
	today := s.today()
	var sql strings.Builder
	args := []any{customerID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	sql.WriteString(`SELECT ` + invoiceColumns + ` FROM invoices i WHERE i.customer_id = $1`)
	if f.after != nil {
		fmt.Fprintf(&sql, ` AND (i.issue_date, i.id) < (%s::date, %s::uuid)`, arg(f.after.IssueDate.Time), arg(f.after.ID))
	}
	switch f.status {
	case "overdue":
		fmt.Fprintf(&sql, ` AND i.status = 'open' AND i.due_date < %s::date`, arg(today.Time))
	case "":
	default:
		fmt.Fprintf(&sql, ` AND i.status = %s`, arg(f.status))
	}
	if f.from != nil {
		fmt.Fprintf(&sql, ` AND i.issue_date >= %s::date`, arg(f.from.Time))
	}
	if f.to != nil {
		fmt.Fprintf(&sql, ` AND i.issue_date <= %s::date`, arg(f.to.Time))
	}
	fmt.Fprintf(&sql, ` ORDER BY i.issue_date DESC, i.id DESC LIMIT %s`, arg(f.limit+1))
	rows, err := s.db.Query(ctx, sql.String(), args...)
	if err != nil {
		return InvoicePage{}, fmt.Errorf("list invoices of customer %d: %w", customerID, err)
	}
	defer rows.Close()
	page := InvoicePage{Invoices: make([]Invoice, 0, f.limit)}
	more := false
	for rows.Next() {
		if len(page.Invoices) == f.limit {
			more = true
			break
		}
		var inv Invoice
		if err := rows.Scan(invoiceTargets(&inv)...); err != nil {
			return InvoicePage{}, fmt.Errorf("list invoices of customer %d: %w", customerID, err)
		}
		inv.derive(today)
		page.Invoices = append(page.Invoices, inv)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return InvoicePage{}, fmt.Errorf("list invoices of customer %d: %w", customerID, err)
	}
	if more {
		last := page.Invoices[len(page.Invoices)-1]
		next := cursor{IssueDate: last.IssueDate, ID: last.ID}.encode()
		page.NextCursor = &next
	}
	if len(page.Invoices) == 0 {
		// Only an empty page needs to tell "no invoices" from "no such customer".
		if err := requireCustomer(ctx, s.db, customerID); err != nil {
			return InvoicePage{}, err
		}
	}
	return page, nil
}
