package invoiceapp

import (
	"context"
	"fmt"
)

// Summary returns a customer's invoice totals per currency and status as of today, with the
// open invoices past their due date totalled again as Overdue. An unknown customer is a
// KindNotFound error. It may read from a replica.
func (s *Store) Summary(ctx context.Context, customerID int64) (Summary, error) {
	today := s.today()
	rows, err := s.db.Query(ctx, `SELECT i.currency, i.status, count(*), sum(i.total_minor)::bigint, sum(i.paid_minor)::bigint,
count(*) FILTER (WHERE i.due_date < $2::date),
coalesce(sum(i.total_minor) FILTER (WHERE i.due_date < $2::date), 0)::bigint,
coalesce(sum(i.paid_minor) FILTER (WHERE i.due_date < $2::date), 0)::bigint
FROM invoices i WHERE i.customer_id = $1
GROUP BY i.currency, i.status ORDER BY i.currency, i.status`, customerID, today.Time)
	if err != nil {
		return Summary{}, fmt.Errorf("summary of customer %d: %w", customerID, err)
	}
	defer rows.Close()
	sum := Summary{CustomerID: customerID, AsOf: today, Currencies: []CurrencySummary{}}
	for rows.Next() {
		var (
			currency                     string
			status                       Status
			count, total, paid           int64
			pastDue, pastTotal, pastPaid int64
		)
		if err := rows.Scan(&currency, &status, &count, &total, &paid, &pastDue, &pastTotal, &pastPaid); err != nil {
			return Summary{}, fmt.Errorf("summary of customer %d: %w", customerID, err)
		}
		if n := len(sum.Currencies); n == 0 || sum.Currencies[n-1].Currency != currency {
			sum.Currencies = append(sum.Currencies, CurrencySummary{Currency: currency})
		}
		cs := &sum.Currencies[len(sum.Currencies)-1]
		switch status {
		case StatusOpen:
			cs.Open.add(count, total, paid)
			cs.Overdue.add(pastDue, pastTotal, pastPaid)
		case StatusPaid:
			cs.Paid.add(count, total, paid)
		case StatusVoid:
			cs.Void.add(count, total, paid)
		}
	}
	if err := rows.Err(); err != nil {
		return Summary{}, fmt.Errorf("summary of customer %d: %w", customerID, err)
	}
	if len(sum.Currencies) == 0 {
		if err := requireCustomer(ctx, s.db, customerID); err != nil {
			return Summary{}, err
		}
	}
	return sum, nil
}
