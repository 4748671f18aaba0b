package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// ReadyTimeout bounds one readiness check; a check that takes longer reports not ready.
const ReadyTimeout = 2 * time.Second

// shutdownTimeout bounds the graceful stop of the HTTP server when its context ends.
const shutdownTimeout = 5 * time.Second

// Config configures the admin HTTP listener.
type Config struct {
	// Addr is the listen address used by ListenAndServe, e.g. "127.0.0.1:9930".
	Addr string
	// API serves /api/v1/... when set.
	API API
	// Registerer receives the admin server's own metrics (API errors by code); nil: not
	// registered anywhere.
	Registerer prometheus.Registerer
}

// serverMetrics are the admin server's own metrics.
type serverMetrics struct {
	apiErrors *prometheus.CounterVec
}

// Server is the admin HTTP server. It is safe for concurrent use; its handler may be used
// without Serve (see Handler).
type Server struct {
	cfg      Config
	log      *zap.Logger
	gatherer prometheus.Gatherer
	ready    func(context.Context) error
	handler  http.Handler
	m        serverMetrics
}

// New returns a Server exposing gatherer's metrics. ready is called (concurrently, from any
// request) for each /readyz with a context that expires after ReadyTimeout; nil means always
// ready.
func New(cfg Config, log *zap.Logger, gatherer prometheus.Gatherer, ready func(context.Context) error) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	s := &Server{cfg: cfg, log: log, gatherer: gatherer, ready: ready}
	s.m.apiErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardwire_admin_api_errors_total",
		Help: "Failed admin API requests by error code.",
	}, []string{"code"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.m.apiErrors); err != nil {
			log.Warn("admin metrics not registered", zap.Error(err))
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(log), ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	routeDashboard(mux, log)
	if cfg.API != nil {
		s.routeAPI(mux, cfg.API)
	}
	s.handler = mux
	return s
}

// Handler returns the admin routes as an http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "ok")
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	err := s.check(ctx)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

// check runs the readiness function, giving up when ctx ends even if the function does not.
func (s *Server) check(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.ready(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("readiness check: %w", ctx.Err())
	}
}

// Serve serves the admin routes on ln until ctx is done, then shuts down gracefully. It
// returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(s.log),
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("admin: %w", err)
}

// ListenAndServe listens on Config.Addr and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}
