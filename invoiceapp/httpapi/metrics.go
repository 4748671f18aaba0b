package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// routeUnmatched labels requests no route matched.
const routeUnmatched = "unmatched"

// metrics are the API's Prometheus collectors.
type metrics struct {
	duration *prometheus.HistogramVec // route, code
	inFlight prometheus.Gauge
	replays  *prometheus.CounterVec // route
	limited  *prometheus.CounterVec // route
}

// newMetrics creates the collectors and registers them with reg (nil: not registered).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "invoiced_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invoiced_http_requests_in_flight",
			Help: "HTTP requests being answered.",
		}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invoiced_idempotent_replays_total",
			Help: "POST requests answered with the stored response of an earlier request with the same Idempotency-Key.",
		}, []string{"route"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invoiced_rate_limited_total",
			Help: "Requests refused with 429 by the rate limiter, by route pattern.",
		}, []string{"route"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.duration, m.inFlight, m.replays, m.limited} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// observe records one answered request.
func (m *metrics) observe(route string, status int, took time.Duration) {
	if route == "" {
		route = routeUnmatched
	}
	m.duration.WithLabelValues(route, strconv.Itoa(status)).Observe(took.Seconds())
}

// recorder remembers the status code a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status and passes it on.
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

// Write records an implicit 200.
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
