package admin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthz(t *testing.T) {
	s := New(Config{}, zap.NewNop(), prometheus.NewRegistry(), nil)
	code, body := get(t, s.Handler(), "/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}
}

func TestReadyz(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ready    func(context.Context) error
		wantCode int
		wantBody string
	}{
		{"ready", func(context.Context) error { return nil }, http.StatusOK, "ok"},
		{"nil check", nil, http.StatusOK, "ok"},
		{"not ready", func(context.Context) error { return errors.New("writer 127.0.0.1:1: refused") },
			http.StatusServiceUnavailable, "writer 127.0.0.1:1: refused"},
		{"check ignores its context", func(context.Context) error { time.Sleep(ReadyTimeout + time.Second); return nil },
			http.StatusServiceUnavailable, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(Config{}, zap.NewNop(), prometheus.NewRegistry(), tc.ready)
			start := time.Now()
			code, body := get(t, s.Handler(), "/readyz")
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("/readyz = %d %q, want %d containing %q", code, body, tc.wantCode, tc.wantBody)
			}
			if d := time.Since(start); d > ReadyTimeout+500*time.Millisecond {
				t.Fatalf("/readyz took %v, want at most about %v", d, ReadyTimeout)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "shardwire_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	s := New(Config{}, zap.NewNop(), reg, nil)
	code, body := get(t, s.Handler(), "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "shardwire_test_things_total 3") {
		t.Fatalf("/metrics = %d, body:\n%s", code, body)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	s := New(Config{}, zap.NewNop(), prometheus.NewRegistry(), nil)
	if code, _ := get(t, s.Handler(), "/nope"); code != http.StatusNotFound {
		t.Fatalf("/nope = %d, want 404", code)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz = %d, want 405", rec.Code)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{}, zap.NewNop(), prometheus.NewRegistry(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("GET /healthz = %d %q", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
