package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/invoiceapp"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultTierTTL        = 30 * time.Second
	DefaultTierCacheSize  = 100000
	DefaultRequestTimeout = 30 * time.Second
	healthTimeout         = 2 * time.Second
)

// Options configures an API.
type Options struct {
	// Store runs the operations; required.
	Store *invoiceapp.Store
	// Limiter rate-limits /v1 requests; nil means no limits (and no RateLimit headers).
	Limiter Limiter
	// Registerer receives the API's metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Log receives request errors; nil discards them.
	Log *zap.Logger
	// Health is what GET /healthz checks (the database answers); nil: always healthy.
	Health func(context.Context) error
	// MaxBodyBytes bounds a request body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// TierTTL is how long a customer's tier is cached for rate limiting; default
	// DefaultTierTTL.
	TierTTL time.Duration
	// RequestTimeout bounds the database work of one request; default DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// API is the HTTP handler of invoiced's /v1 routes and /healthz. Safe for concurrent use.
type API struct {
	store   *invoiceapp.Store
	limiter Limiter
	log     *zap.Logger
	health  func(context.Context) error
	maxBody int64
	timeout time.Duration
	tiers   *tierCache
	metrics *metrics
	mux     *http.ServeMux
	routes  []string // the registered patterns, in order
}

// New returns the API over opts.Store.
func New(opts Options) (*API, error) {
	if opts.Store == nil {
		return nil, errors.New("httpapi: Store is required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.TierTTL <= 0 {
		opts.TierTTL = DefaultTierTTL
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	a := &API{
		store: opts.Store, limiter: opts.Limiter, log: opts.Log, health: opts.Health,
		maxBody: opts.MaxBodyBytes, timeout: opts.RequestTimeout,
		tiers: newTierCache(opts.TierTTL, DefaultTierCacheSize), metrics: m, mux: http.NewServeMux(),
	}
	a.register()
	return a, nil
}

// register registers every route (docs/openapi.yaml describes each).
func (a *API) register() {
	a.handle("GET /healthz", a.healthz)
	a.handle("POST /v1/customers", a.createCustomer)
	a.handle("GET /v1/customers/{id}", a.customer(a.getCustomer))
	a.handle("POST /v1/customers/{id}/invoices", a.customer(a.createInvoice))
	a.handle("GET /v1/customers/{id}/invoices", a.customer(a.listInvoices))
	a.handle("GET /v1/customers/{id}/invoices/{invoice}", a.customer(a.getInvoice))
	a.handle("POST /v1/customers/{id}/invoices/{invoice}/payments", a.customer(a.recordPayment))
	a.handle("POST /v1/customers/{id}/invoices/{invoice}/void", a.customer(a.voidInvoice))
	a.handle("GET /v1/customers/{id}/summary", a.customer(a.summary))
}

// handle registers one route.
func (a *API) handle(pattern string, h http.HandlerFunc) {
	a.mux.HandleFunc(pattern, h)
	a.routes = append(a.routes, pattern)
}

// ServeHTTP answers one request and records its latency by route pattern and status.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	a.metrics.inFlight.Inc()
	defer a.metrics.inFlight.Dec()
	rec := &recorder{ResponseWriter: w}
	_, pattern := a.mux.Handler(r)
	if pattern == "" {
		a.unmatched(rec, r)
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		a.mux.ServeHTTP(rec, r.WithContext(ctx))
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	a.metrics.observe(pattern, status, time.Since(start))
}

// unmatched answers a request no route takes: 404, or 405 with Allow when the path exists
// with other methods, as JSON.
func (a *API) unmatched(w http.ResponseWriter, r *http.Request) {
	probe := &probeWriter{header: make(http.Header)}
	a.mux.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "", r.Method+" is not allowed here")
		return
	}
	writeError(w, http.StatusNotFound, codeNotFound, "", "no such route; see docs/openapi.yaml")
}

// customer wraps a handler of /v1/customers/{id}/...: it parses the customer id and applies
// the customer's rate limit.
func (a *API) customer(h func(http.ResponseWriter, *http.Request, int64)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := customerIDParam(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if a.limiter != nil && !a.admit(w, r, customerLimitKey(id), a.tierOf(r.Context(), id)) {
			return
		}
		h(w, r, id)
	}
}

// healthz answers 200 when the database answers.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if a.health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := a.health(ctx); err != nil {
			a.log.Warn("health check failed", zap.Error(err))
			writeError(w, http.StatusServiceUnavailable, codeUnavailable, "", "the database does not answer")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// probeWriter captures what ServeMux's own 404/405 handler would answer, to answer it as JSON.
type probeWriter struct {
	header http.Header
	status int
}

// Header returns the captured headers.
func (p *probeWriter) Header() http.Header { return p.header }

// Write discards the body.
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }

// WriteHeader captures the status.
func (p *probeWriter) WriteHeader(status int) { p.status = status }
