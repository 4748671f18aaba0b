package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxBody bounds how much of a response loadgen reads.
const maxBody = 4 << 20

// API is the invoice workload against one invoiced base URL (see docs/openapi.yaml): it draws
// requests from the mix over Zipf-distributed customers and sends them. Safe for concurrent
// use.
type API struct {
	base     string // e.g. http://127.0.0.1:8080, no trailing slash
	hc       *http.Client
	zipf     *Zipf
	mix      Mix
	invoices *Invoices
	// keyPrefix makes Idempotency-Keys unique across runs: keys live for a day per customer,
	// and a reused key with another body would be refused (422).
	keyPrefix string
	seq       atomic.Uint64
}

// NewAPI returns the workload for target; hc should allow many connections per host.
func NewAPI(target string, hc *http.Client, zipf *Zipf, mix Mix) (*API, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: want an http(s) URL such as http://127.0.0.1:8080", target)
	}
	prefix := "lg-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(rand.Uint64()&0xffffff, 36)
	return &API{base: strings.TrimRight(target, "/"), hc: hc, zipf: zipf, mix: mix, invoices: NewInvoices(), keyPrefix: prefix}, nil
}

// NewHTTPClient returns a client for many concurrent requests to one host: connections are
// kept and reused (up to maxIdle idle ones), none is refused.
func NewHTTPClient(maxIdle int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = maxIdle
	tr.MaxIdleConnsPerHost = maxIdle
	tr.MaxConnsPerHost = 0
	return &http.Client{Transport: tr}
}

// Next draws a request. Gets and payments need an invoice: one of the customer's known open
// invoices, else a recently seen invoice of another customer (still open, for a payment; the
// sample is fed by creates and listings, themselves Zipf-distributed), else, before any
// invoice is known, the request becomes a listing of the drawn customer.
func (a *API) Next(rng *rand.Rand) Task {
	t := Task{Route: a.mix.Pick(rng), Customer: a.zipf.Customer(rng), Rand: rng.Uint64()}
	if t.Route != RouteGet && t.Route != RoutePay {
		return t
	}
	if id, ok := a.invoices.Pick(t.Customer, t.Rand); ok {
		t.Invoice = id
		return t
	}
	// The ring may name invoices paid since; a payment looks for one still open.
	for range ringTries {
		ref, ok := a.invoices.Recent(rng)
		if !ok {
			break
		}
		if _, open := a.invoices.Balance(ref.customer, ref.id); open || t.Route == RouteGet {
			t.Customer, t.Invoice = ref.customer, ref.id
			return t
		}
	}
	t.Route = RouteList
	return t
}

// ringTries is how many recent invoices a payment without a known invoice of its customer
// tries before it becomes a listing.
const ringTries = 8

// Do sends t and feeds the invoice sample from the answer.
func (a *API) Do(ctx context.Context, t Task) Outcome {
	cust := "/v1/customers/" + strconv.FormatInt(t.Customer, 10)
	switch t.Route {
	case RouteList:
		o, body := a.call(ctx, http.MethodGet, cust+"/invoices?limit=20", nil)
		if o.Status == http.StatusOK {
			var page struct {
				Invoices []invoiceJSON `json:"invoices"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return Outcome{Status: o.Status, Err: fmt.Errorf("decode invoice page: %w", err)}
			}
			for _, inv := range page.Invoices {
				a.remember(t.Customer, inv)
			}
		}
		return o
	case RouteGet:
		o, body := a.call(ctx, http.MethodGet, cust+"/invoices/"+t.Invoice, nil)
		switch o.Status {
		case http.StatusOK:
			var inv invoiceJSON
			if err := json.Unmarshal(body, &inv); err != nil {
				return Outcome{Status: o.Status, Err: fmt.Errorf("decode invoice: %w", err)}
			}
			a.remember(t.Customer, inv)
		case http.StatusNotFound:
			a.invoices.Forget(t.Customer, t.Invoice)
		}
		return o
	case RouteSummary:
		o, _ := a.call(ctx, http.MethodGet, cust+"/summary", nil)
		return o
	case RouteCreate:
		o, body := a.call(ctx, http.MethodPost, cust+"/invoices", newInvoiceBody(t.Rand))
		if o.Status == http.StatusCreated {
			var inv invoiceJSON
			if err := json.Unmarshal(body, &inv); err != nil {
				return Outcome{Status: o.Status, Err: fmt.Errorf("decode created invoice: %w", err)}
			}
			a.remember(t.Customer, inv)
		}
		return o
	case RoutePay:
		amount := int64(1) // balance unknown: it was paid meanwhile, expect 409 invoice_paid
		if bal, ok := a.invoices.Balance(t.Customer, t.Invoice); ok {
			amount = paymentAmount(bal, t.Rand)
		}
		o, body := a.call(ctx, http.MethodPost, cust+"/invoices/"+t.Invoice+"/payments",
			[]byte(`{"amount_minor":`+strconv.FormatInt(amount, 10)+`,"reference":"loadgen"}`))
		switch o.Status {
		case http.StatusCreated:
			var res struct {
				Invoice invoiceJSON `json:"invoice"`
			}
			if err := json.Unmarshal(body, &res); err != nil {
				return Outcome{Status: o.Status, Err: fmt.Errorf("decode payment: %w", err)}
			}
			a.remember(t.Customer, res.Invoice)
		case http.StatusConflict, http.StatusNotFound:
			// Paid or voided by a concurrent request, or an overpayment after a race: the
			// balance seen is stale.
			a.invoices.Forget(t.Customer, t.Invoice)
		}
		return o
	}
	return Outcome{Err: fmt.Errorf("unknown route %v", t.Route)}
}

// invoiceJSON is the part of an Invoice loadgen reads.
type invoiceJSON struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Balance int64  `json:"balance_minor"`
}

// remember records an invoice in the sample when it can still be paid, and forgets it else.
func (a *API) remember(customer int64, inv invoiceJSON) {
	if inv.ID == "" {
		return
	}
	if inv.Status == "open" && inv.Balance > 0 {
		a.invoices.Put(customer, inv.ID, inv.Balance)
	} else {
		a.invoices.Forget(customer, inv.ID)
	}
}

// currencies weighs the invoice currencies: mostly EUR.
var currencies = [...]string{"EUR", "EUR", "EUR", "EUR", "EUR", "EUR", "EUR", "USD", "USD", "GBP"}

// newInvoiceBody builds a create-invoice request from r: 1-3 lines, quantities 1-5, unit
// prices 1.00-1000.00.
func newInvoiceBody(r uint64) []byte {
	rng := rand.New(rand.NewPCG(r, 0x5bd1e995))
	var b bytes.Buffer
	b.WriteString(`{"currency":"`)
	b.WriteString(currencies[rng.IntN(len(currencies))])
	b.WriteString(`","lines":[`)
	n := 1 + rng.IntN(3)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"description":"loadgen item %d","quantity":%d,"unit_price_minor":%d}`,
			1+rng.IntN(1000), 1+rng.IntN(5), 100+rng.Int64N(99_901))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// paymentAmount pays a balance in full or in part (half, rounded up), as r says.
func paymentAmount(balance int64, r uint64) int64 {
	if balance <= 1 || r>>63 == 0 {
		return max(balance, 1)
	}
	return (balance + 1) / 2
}

// call sends one request and reads the whole answer. A POST carries a fresh Idempotency-Key.
// For a non-2xx answer Outcome.Detail is the error code from the body, when it has one.
func (a *API) call(ctx context.Context, method, path string, body []byte) (Outcome, []byte) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return Outcome{Err: fmt.Errorf("build request: %w", err)}, nil
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", a.keyPrefix+"-"+strconv.FormatUint(a.seq.Add(1), 36))
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return Outcome{Err: trimURLError(err)}, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Outcome{Status: resp.StatusCode, Err: fmt.Errorf("read response: %w", err)}, nil
	}
	o := Outcome{Status: resp.StatusCode}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		o.Detail = errorCode(data)
	}
	return o, data
}

// errorCode returns the code of an API error body, or "" when there is none.
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// trimURLError drops the URL from a transport error (it names the customer and invoice, which
// would make every error kind distinct).
func trimURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
