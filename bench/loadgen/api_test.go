package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeInvoiced is an in-memory stand-in for invoiced's routes that loadgen uses, strict about
// what the API requires of clients (docs/openapi.yaml): an Idempotency-Key on every POST, no
// overpayment, known customers and invoices.
type fakeInvoiced struct {
	mu        sync.Mutex
	customers map[int64]string // id -> tier
	invoices  map[int64][]*fakeInvoice
	keys      map[string]bool
	reused    int // a key sent twice
	noKey     int // a POST without a key
	byRoute   map[string]int
	nextID    int
	// limitCustomers answers this many POST /v1/customers with 429 and Retry-After: 1 first.
	limitCustomers int
}

type fakeInvoice struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Total   int64  `json:"total_minor"`
	Paid    int64  `json:"paid_minor"`
	Balance int64  `json:"balance_minor"`
}

func newFakeInvoiced() *fakeInvoiced {
	return &fakeInvoiced{customers: map[int64]string{}, invoices: map[int64][]*fakeInvoice{}, keys: map[string]bool{}, byRoute: map[string]int{}}
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code string) {
	writeJSONResp(w, status, map[string]any{"error": map[string]string{"code": code, "message": code}})
}

func (f *fakeInvoiced) handler() http.Handler {
	mux := http.NewServeMux()
	// check counts the request and rejects POSTs without a fresh key; it returns the customer.
	check := func(w http.ResponseWriter, r *http.Request, route string) (int64, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.byRoute[route]++
		if r.Method == http.MethodPost {
			k := r.Header.Get("Idempotency-Key")
			switch {
			case k == "":
				f.noKey++
				apiError(w, 400, "required")
				return 0, false
			case f.keys[k] && route != "create_customer":
				f.reused++
			}
			f.keys[k] = true
		}
		if route == "create_customer" {
			return 0, true
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			apiError(w, 400, "invalid_value")
			return 0, false
		}
		if _, ok := f.customers[id]; !ok {
			apiError(w, 404, "customer_not_found")
			return 0, false
		}
		return id, true
	}
	find := func(c int64, id string) *fakeInvoice {
		for _, inv := range f.invoices[c] {
			if inv.ID == id {
				return inv
			}
		}
		return nil
	}
	mux.HandleFunc("POST /v1/customers", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := check(w, r, "create_customer"); !ok {
			return
		}
		f.mu.Lock()
		limited := f.limitCustomers > 0
		if limited {
			f.limitCustomers--
		}
		f.mu.Unlock()
		if limited {
			w.Header().Set("Retry-After", "1")
			apiError(w, http.StatusTooManyRequests, "rate_limited")
			return
		}
		var in struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
			Tier string `json:"tier"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.ID < 1 || in.Name == "" {
			apiError(w, 400, "invalid_json")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.customers[in.ID]; ok {
			apiError(w, 409, "customer_exists")
			return
		}
		f.customers[in.ID] = in.Tier
		writeJSONResp(w, 201, map[string]any{"id": in.ID, "name": in.Name, "tier": in.Tier})
	})
	mux.HandleFunc("GET /v1/customers/{id}/invoices", func(w http.ResponseWriter, r *http.Request) {
		c, ok := check(w, r, "list_invoices")
		if !ok {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		page := []fakeInvoice{}
		all := f.invoices[c]
		for i := len(all) - 1; i >= 0 && len(page) < 20; i-- {
			page = append(page, *all[i])
		}
		writeJSONResp(w, 200, map[string]any{"invoices": page, "next_cursor": nil})
	})
	mux.HandleFunc("POST /v1/customers/{id}/invoices", func(w http.ResponseWriter, r *http.Request) {
		c, ok := check(w, r, "create_invoice")
		if !ok {
			return
		}
		var in struct {
			Currency string `json:"currency"`
			Lines    []struct {
				Description    string `json:"description"`
				Quantity       int64  `json:"quantity"`
				UnitPriceMinor int64  `json:"unit_price_minor"`
			} `json:"lines"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Currency) != 3 || len(in.Lines) == 0 {
			apiError(w, 400, "invalid_json")
			return
		}
		inv := &fakeInvoice{Status: "open"}
		for _, l := range in.Lines {
			if l.Description == "" || l.Quantity < 1 || l.UnitPriceMinor < 0 {
				apiError(w, 400, "invalid_value")
				return
			}
			inv.Total += l.Quantity * l.UnitPriceMinor
		}
		inv.Balance = inv.Total
		f.mu.Lock()
		f.nextID++
		inv.ID = fmt.Sprintf("00000000-0000-7000-8000-%012d", f.nextID)
		f.invoices[c] = append(f.invoices[c], inv)
		out := *inv
		f.mu.Unlock()
		writeJSONResp(w, 201, out)
	})
	mux.HandleFunc("GET /v1/customers/{id}/invoices/{inv}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := check(w, r, "get_invoice")
		if !ok {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		inv := find(c, r.PathValue("inv"))
		if inv == nil {
			apiError(w, 404, "invoice_not_found")
			return
		}
		writeJSONResp(w, 200, *inv)
	})
	mux.HandleFunc("POST /v1/customers/{id}/invoices/{inv}/payments", func(w http.ResponseWriter, r *http.Request) {
		c, ok := check(w, r, "record_payment")
		if !ok {
			return
		}
		var in struct {
			Amount int64 `json:"amount_minor"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Amount < 1 {
			apiError(w, 400, "invalid_value")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		inv := find(c, r.PathValue("inv"))
		switch {
		case inv == nil:
			apiError(w, 404, "invoice_not_found")
		case inv.Status == "paid":
			apiError(w, 409, "invoice_paid")
		case in.Amount > inv.Balance:
			apiError(w, 409, "overpayment")
		default:
			inv.Paid += in.Amount
			inv.Balance -= in.Amount
			if inv.Balance == 0 {
				inv.Status = "paid"
			}
			writeJSONResp(w, 201, map[string]any{"payment": map[string]any{"amount_minor": in.Amount}, "invoice": *inv})
		}
	})
	mux.HandleFunc("GET /v1/customers/{id}/summary", func(w http.ResponseWriter, r *http.Request) {
		c, ok := check(w, r, "summary")
		if !ok {
			return
		}
		writeJSONResp(w, 200, map[string]any{"customer_id": c, "currencies": []any{}})
	})
	return mux
}

func TestAgainstFakeInvoiced(t *testing.T) {
	f := newFakeInvoiced()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	zipf, err := NewZipf(300, 1.1)
	if err != nil {
		t.Fatal(err)
	}
	hc := NewHTTPClient(64)
	hc.Timeout = 5 * time.Second
	api, err := NewAPI(srv.URL+"/", hc, zipf, DefaultMix())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	st, err := Setup(ctx, httpCreator{api}, zipf, DefaultTierMix(), 8, nil)
	if err != nil || st.Created != 300 || st.Existed != 0 {
		t.Fatalf("setup: %+v, %v; want 300 created", st, err)
	}
	st, err = Setup(ctx, httpCreator{api}, zipf, DefaultTierMix(), 8, nil)
	if err != nil || st.Created != 0 || st.Existed != 300 {
		t.Fatalf("second setup: %+v, %v; want 300 existed", st, err)
	}
	hottest := zipf.rankToID(1)
	if f.customers[hottest] != "enterprise" || f.customers[zipf.rankToID(300)] != "free" {
		t.Errorf("tiers: hottest customer %d is %q, coldest %q", hottest, f.customers[hottest], f.customers[zipf.rankToID(300)])
	}

	res, err := Run(ctx, Load{Rate: 400, Warmup: 300 * time.Millisecond, Duration: time.Second, Seed: 11}, api)
	if err != nil {
		t.Fatal(err)
	}
	rep := NewReport(res, RunInfo{Target: srv.URL, Customers: 300, ZipfS: 1.1, Mix: DefaultMix()}, nil)
	var b strings.Builder
	_ = rep.WriteTable(&b)
	t.Log("\n" + b.String())
	if rep.Total.Errors != 0 {
		t.Errorf("errors: %v", rep.ErrorKinds)
	}
	for _, r := range rep.Routes {
		if r.OK == 0 {
			t.Errorf("route %s never answered 2xx", r.Route)
		}
	}
	// Poisson arrivals at 400/s for 1 s: about 400 measured, well within 5 standard deviations.
	if rep.Total.Count < 300 || rep.Total.Count > 500 {
		t.Errorf("measured %d requests, want about 400", rep.Total.Count)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noKey != 0 || f.reused != 0 {
		t.Errorf("POSTs without an Idempotency-Key: %d, with a reused one: %d", f.noKey, f.reused)
	}
	// Gets and payments used real invoices; payments only conflict when two race on one
	// invoice, which is rare.
	if c := rep.Routes[RoutePay].Conflict; c*10 > rep.Routes[RoutePay].Count {
		t.Errorf("payments: %d of %d conflicted; loadgen overpays or pays settled invoices", c, rep.Routes[RoutePay].Count)
	}
	paid := 0
	for _, list := range f.invoices {
		for _, inv := range list {
			if inv.Paid > inv.Total {
				t.Fatalf("invoice %s overpaid: %+v", inv.ID, inv)
			}
			if inv.Paid > 0 {
				paid++
			}
		}
	}
	if paid == 0 {
		t.Error("no invoice received a payment")
	}
}

func TestRunExitStatus(t *testing.T) {
	f := newFakeInvoiced()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	ctx := context.Background()
	base := []string{"--target", srv.URL, "--customers", "50"}
	var out, errOut strings.Builder
	if code := run(ctx, append(base, "--setup"), &out, &errOut); code != exitOK || f.customers[1] == "" {
		t.Fatalf("setup: exit %d, stderr %s", code, errOut.String())
	}
	jsonPath := t.TempDir() + "/r.json"
	args := append(base, "--rate", "100", "--warmup", "0s", "--duration", "300ms", "--json", jsonPath, "--slo", "p99=5s,errors=0%")
	if code := run(ctx, args, &out, &errOut); code != exitOK {
		t.Fatalf("run: exit %d, stdout %s stderr %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "SLO p99=5s,errors=0%: met") {
		t.Errorf("table: %s", out.String())
	}
	var rep Report
	data, err := readFile(jsonPath)
	if err != nil || json.Unmarshal(data, &rep) != nil || rep.SLO == nil || !rep.SLO.Met || rep.Total.Count == 0 {
		t.Errorf("json report %s: %v", data, err)
	}
	// An SLO nobody can meet: exit 3.
	args = append(base, "--rate", "100", "--warmup", "0s", "--duration", "200ms", "--slo", "p50=1us")
	if code := run(ctx, args, &out, &errOut); code != exitSLOMissed {
		t.Errorf("impossible SLO: exit %d, want %d", code, exitSLOMissed)
	}
	for _, bad := range [][]string{
		{"--rate", "10"},
		append(base, "--rate", "10", "--workers", "2"),
		append(base, "--rate", "10", "--slo", "p95"),
		append(base, "--rate", "10", "--arrival", "bursty"),
		append(base, "--rate", "10", "--zipf-s", "-1"),
		{"--target", "ftp://x", "--rate", "10"},
	} {
		if code := run(ctx, bad, &out, &errOut); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func TestSetupWaitsOutRateLimits(t *testing.T) {
	f := newFakeInvoiced()
	f.limitCustomers = 3
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	zipf, err := NewZipf(20, 1.1)
	if err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(srv.URL, NewHTTPClient(8), zipf, DefaultMix())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := Setup(context.Background(), httpCreator{api}, zipf, DefaultTierMix(), 4, nil)
	if err != nil || st.Created != 20 {
		t.Fatalf("setup: %+v, %v; want all 20 created despite the 429s", st, err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("setup took %v: it did not wait the 1 s Retry-After", el)
	}
	if len(f.customers) != 20 {
		t.Errorf("fake holds %d customers, want 20", len(f.customers))
	}
}
