package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// page is the listing response.
type page struct {
	Invoices   []invoice `json:"invoices"`
	NextCursor *string   `json:"next_cursor"`
}

// listAll pages through a listing with limit and query, checking each page.
func listAll(t *testing.T, customerID int64, limit int, query string) []invoice {
	t.Helper()
	var all []invoice
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("listing does not end")
		}
		q := fmt.Sprintf("limit=%d%s", limit, query)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var p page
		do(t, "GET", fmt.Sprintf("/v1/customers/%d/invoices?%s", customerID, q), nil).want(t, 200).decode(t, &p)
		if len(p.Invoices) > limit {
			t.Fatalf("page of %d invoices, limit %d", len(p.Invoices), limit)
		}
		for _, inv := range p.Invoices {
			if inv.Lines != nil {
				t.Fatalf("listing carries lines")
			}
		}
		all = append(all, p.Invoices...)
		if p.NextCursor == nil {
			return all
		}
		if len(p.Invoices) != limit {
			t.Fatalf("short page of %d with a next cursor", len(p.Invoices))
		}
		cursor = *p.NextCursor
	}
}

// before reports whether a comes strictly after b in listing order ((issue_date, id) descending).
func listedBefore(a, b invoice) bool {
	if a.IssueDate != b.IssueDate {
		return a.IssueDate > b.IssueDate
	}
	return a.ID > b.ID
}

func TestPaginationWithConcurrentInserts(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "enterprise")
	rng := rand.New(rand.NewPCG(1, 2))
	issue := func() string { return today().AddDays(-rng.IntN(50)).String() }
	const existing = 45
	want := map[string]bool{}
	for range existing {
		want[newInvoice(t, id, "EUR", 100, issue(), "").ID] = true
	}
	syncReplicas(t, id)

	// Insert more while paging, on dates before, inside and after the listed range.
	stop := make(chan struct{})
	var inserted atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		r := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stop:
				return
			default:
			}
			newInvoice(t, id, "EUR", 100, today().AddDays(5-r.IntN(60)).String(), "")
			inserted.Add(1)
		}
	})
	got := listAll(t, id, 7, "")
	close(stop)
	wg.Wait()
	if inserted.Load() == 0 {
		t.Fatal("no invoice was inserted during the listing")
	}
	seen := map[string]bool{}
	for i, inv := range got {
		if seen[inv.ID] {
			t.Fatalf("invoice %s listed twice", inv.ID)
		}
		seen[inv.ID] = true
		if i > 0 && !listedBefore(got[i-1], inv) {
			t.Fatalf("order broken at %d: %s/%s then %s/%s", i, got[i-1].IssueDate, got[i-1].ID, inv.IssueDate, inv.ID)
		}
	}
	for inv := range want {
		if !seen[inv] {
			t.Errorf("invoice %s existed before the listing but was skipped", inv)
		}
	}
	t.Logf("listed %d invoices while %d were inserted", len(got), inserted.Load())
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	id := newCustomer(t, "free")
	d := today()
	a := newInvoice(t, id, "EUR", 100, d.AddDays(-20).String(), d.AddDays(-10).String()) // overdue
	b := newInvoice(t, id, "EUR", 200, d.AddDays(-10).String(), "")                      // open
	c := newInvoice(t, id, "EUR", 300, d.AddDays(-5).String(), "")                       // paid
	e := newInvoice(t, id, "EUR", 400, d.String(), "")                                   // void
	pay(t, id, c.ID, 300).want(t, 201)
	do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices/%s/void", id, e.ID), nil).want(t, 200)
	ids := func(query string) string {
		var out []string
		for _, inv := range listAll(t, id, 2, query) {
			out = append(out, inv.ID)
		}
		return strings.Join(out, ",")
	}
	join := func(invs ...invoice) string {
		var out []string
		for _, inv := range invs {
			out = append(out, inv.ID)
		}
		return strings.Join(out, ",")
	}
	syncReplicas(t, id)
	cases := []struct{ query, want string }{
		{"", join(e, c, b, a)},
		{"&status=open", join(b, a)},
		{"&status=overdue", join(a)},
		{"&status=paid", join(c)},
		{"&from=" + d.AddDays(-10).String(), join(e, c, b)},
		{"&to=" + d.AddDays(-10).String(), join(b, a)},
		{"&from=" + d.AddDays(-10).String() + "&to=" + d.AddDays(-5).String(), join(c, b)},
		{"&from=" + d.AddDays(-10).String() + "&status=open", join(b)},
		{"&from=" + d.AddDays(1).String(), ""},
	}
	for _, tc := range cases {
		if got := ids(tc.query); got != tc.want {
			t.Errorf("query %q: %s, want %s", tc.query, got, tc.want)
		}
	}
	// Default limit, limits and bad parameters.
	var p page
	do(t, "GET", fmt.Sprintf("/v1/customers/%d/invoices", id), nil).want(t, 200).decode(t, &p)
	if len(p.Invoices) != 4 || p.NextCursor != nil {
		t.Errorf("default page: %d invoices, cursor %v", len(p.Invoices), p.NextCursor)
	}
	base := fmt.Sprintf("/v1/customers/%d/invoices?", id)
	do(t, "GET", base+"limit=101", nil).wantError(t, 400, "invalid_value", "limit")
	do(t, "GET", base+"limit=0", nil).wantError(t, 400, "invalid_value", "limit")
	do(t, "GET", base+"status=late", nil).wantError(t, 400, "invalid_value", "status")
	do(t, "GET", base+"from=2026-13-01", nil).wantError(t, 400, "invalid_value", "from")
	do(t, "GET", base+"from=2026-02-01&to=2026-01-01", nil).wantError(t, 400, "invalid_value", "to")
	do(t, "GET", base+"cursor=AAAA", nil).wantError(t, 400, "invalid_cursor", "cursor")
	// An unknown customer is 404, a known one without invoices an empty page.
	do(t, "GET", "/v1/customers/8000996/invoices", nil).wantError(t, 404, "customer_not_found", "")
	empty := newCustomer(t, "free")
	getEventually(t, fmt.Sprintf("/v1/customers/%d/invoices", empty), 200).decode(t, &p)
	if len(p.Invoices) != 0 || p.NextCursor != nil || p.Invoices == nil {
		t.Errorf("empty listing %+v", p)
	}
}
