package invoiceapp

import (
	"fmt"
	"strconv"
	"time"
)

// dateLayout is the wire form of a Date.
const dateLayout = "2006-01-02"

// Date is a calendar day, held as midnight UTC and written as YYYY-MM-DD in JSON.
type Date struct{ time.Time }

// DateOf returns the UTC calendar day of t.
func DateOf(t time.Time) Date {
	y, m, d := t.UTC().Date()
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

// String returns YYYY-MM-DD.
func (d Date) String() string { return d.Format(dateLayout) }

// AddDays returns the day n days later (earlier for negative n).
func (d Date) AddDays(n int) Date { return Date{d.AddDate(0, 0, n)} }

// MonthStart returns the first day of d's month.
func (d Date) MonthStart() Date {
	return Date{time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)}
}

// AddMonths returns the first day of the month n months after d's.
func (d Date) AddMonths(n int) Date {
	return Date{time.Date(d.Year(), d.Month()+time.Month(n), 1, 0, 0, 0, 0, time.UTC)}
}

// MarshalJSON writes "YYYY-MM-DD".
func (d Date) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, d.String()), nil
}

// UnmarshalJSON reads "YYYY-MM-DD".
func (d *Date) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("date: want a string YYYY-MM-DD")
	}
	v, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
