package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// testProxy is a proxy node in front of a real Postgres, for end-to-end tests.
type testProxy struct {
	srv     *Server
	addr    string
	cluster *pgtest.Cluster
	reg     *prometheus.Registry
}

// startProxy starts Postgres (one group, no replica) and a proxy in front of it. tweak may
// change the configuration before the proxy starts.
func startProxy(t testing.TB, tweak func(*config.Config)) *testProxy {
	t.Helper()
	cl := pgtest.New(t, pgtest.Options{Groups: 1})
	return startProxyFor(t, cl, tweak)
}

func startProxyFor(t testing.TB, cl *pgtest.Cluster, tweak func(*config.Config)) *testProxy {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = ""
	cfg.Users = []config.User{{Name: pgtest.User, Password: pgtest.Password}}
	cfg.Groups = []config.Group{{Name: "g0", Writer: cl.Groups[0].Writer.Addr()}}
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	reg := prometheus.NewRegistry()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	srv, err := New(cfg, log, reg)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return &testProxy{srv: srv, addr: ln.Addr().String(), cluster: cl, reg: reg}
}

// dsn returns a URL for the proxy with extra query parameters.
func (p *testProxy) dsn(extra string) string {
	u := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", pgtest.User, pgtest.Password, p.addr, pgtest.Database)
	if extra != "" {
		u += "&" + extra
	}
	return u
}

func (p *testProxy) directDSN() string { return p.cluster.Groups[0].Writer.AppDSN() }

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	return pgtest.Connect(t, dsn)
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string { return pgtest.SQLState(err) }

// mustQueryInt runs a one-value integer query.
func mustQueryInt(t testing.TB, c *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// envDuration reads a whole number of seconds from an environment variable (for quick local
// runs), else returns def.
func envDuration(name string, def time.Duration) time.Duration {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return def
}
