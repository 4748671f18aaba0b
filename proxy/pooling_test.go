package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/lib/pq"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// TestSettingsFollowClient: with one server connection shared by two clients, each client
// keeps seeing its own settings, a SET inside a rolled-back transaction is undone, and RESET
// returns to the client's startup value.
func TestSettingsFollowClient(t *testing.T) {
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = 1 })
	ctx := context.Background()
	a := connect(t, p.dsn("application_name=alpha&default_query_exec_mode=simple_protocol"))
	b := connect(t, p.dsn("application_name=beta"))
	show := func(c *pgx.Conn, name string) string {
		t.Helper()
		var v string
		if err := c.QueryRow(ctx, "select current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := a.Exec(ctx, "SET search_path TO pg_catalog, public"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "SET statement_timeout = '4s'"); err != nil {
		t.Fatal(err)
	}
	for range 3 { // alternate on the single backend
		if got := show(a, "application_name"); got != "alpha" {
			t.Fatalf("a application_name = %q", got)
		}
		if got := show(a, "search_path"); got != "pg_catalog, public" {
			t.Fatalf("a search_path = %q", got)
		}
		if got := show(a, "statement_timeout"); got != "0" {
			t.Fatalf("a sees b's statement_timeout %q", got)
		}
		if got := show(b, "application_name"); got != "beta" {
			t.Fatalf("b application_name = %q", got)
		}
		if got := show(b, "search_path"); got != `"$user", public` {
			t.Fatalf("b sees a's search_path %q", got)
		}
		if got := show(b, "statement_timeout"); got != "4s" {
			t.Fatalf("b statement_timeout = %q", got)
		}
	}
	// A SET in a rolled-back transaction does not stick.
	tx, err := b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET statement_timeout = '9s'"); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback(ctx)
	_ = show(a, "application_name") // let a take the backend in between
	if got := show(b, "statement_timeout"); got != "4s" {
		t.Fatalf("rolled-back SET stuck: %q", got)
	}
	// RESET goes back to the client's startup value; RESET ALL too.
	if _, err := b.Exec(ctx, "SET application_name = 'changed'"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "RESET application_name"); err != nil {
		t.Fatal(err)
	}
	_ = show(a, "application_name")
	if got := show(b, "application_name"); got != "beta" {
		t.Fatalf("after RESET application_name = %q, want beta", got)
	}
}

// TestAdvisoryLockPins: a session advisory lock keeps the client on its backend until unlocked.
func TestAdvisoryLockPins(t *testing.T) {
	p := startProxy(t, func(c *config.Config) {
		c.Pool.DefaultPoolSize = 1
		c.Pool.QueryWaitTimeout = config.Duration(400 * time.Millisecond)
	})
	ctx := context.Background()
	a := connect(t, p.dsn(""))
	b := connect(t, p.dsn(""))
	if _, err := a.Exec(ctx, "select pg_advisory_lock(42)"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "select 1"); pgCode(err) != codeTooManyConnections {
		t.Fatalf("b got %v while a holds the only backend pinned, want %s", err, codeTooManyConnections)
	}
	// a still holds the lock on the same backend.
	if held := mustQueryInt(t, a, "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()"); held != 1 {
		t.Fatalf("a lost its advisory lock (held %d)", held)
	}
	if _, err := a.Exec(ctx, "select pg_advisory_unlock(42)"); err != nil {
		t.Fatal(err)
	}
	if got := mustQueryInt(t, b, "select 2"); got != 2 {
		t.Fatal("b cannot run after a unlocked")
	}
}

// TestPoolModes: session mode supports LISTEN/NOTIFY; statement mode refuses transactions.
func TestPoolModes(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 1})
	p := startProxyFor(t, cl, func(c *config.Config) {
		c.Users = append(c.Users,
			config.User{Name: "sess", Password: "s", ServerUser: pgtest.User, ServerPassword: pgtest.Password, PoolMode: config.PoolModeSession},
			config.User{Name: "stmt", Password: "s", ServerUser: pgtest.User, ServerPassword: pgtest.Password, PoolMode: config.PoolModeStatement})
	})
	ctx := context.Background()
	dsnFor := func(user string) string {
		return fmt.Sprintf("postgres://%s:s@%s/app?sslmode=disable", user, p.addr)
	}
	listener := connect(t, dsnFor("sess"))
	if _, err := listener.Exec(ctx, "LISTEN events"); err != nil {
		t.Fatalf("LISTEN in session mode: %v", err)
	}
	notifier := connect(t, p.dsn(""))
	if _, err := notifier.Exec(ctx, "NOTIFY events, 'hello'"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil || n.Payload != "hello" {
		t.Fatalf("notification: %v %+v", err, n)
	}

	st := connect(t, dsnFor("stmt"))
	if _, err := st.Exec(ctx, "BEGIN"); pgCode(err) != codeFeatureNotSupp {
		t.Fatalf("BEGIN in statement mode: %v, want %s", err, codeFeatureNotSupp)
	}
	if got := mustQueryInt(t, st, "select 3"); got != 3 {
		t.Fatal("statement-mode client unusable")
	}
}

// TestPreparedStatementEviction: more statements than max_prepared_statements still work; the
// proxy re-prepares evicted ones.
func TestPreparedStatementEviction(t *testing.T) {
	p := startProxy(t, func(c *config.Config) {
		c.Pool.DefaultPoolSize = 1
		c.Pool.MaxPreparedStatements = 2
	})
	ctx := context.Background()
	c := connect(t, p.dsn(""))
	for round := range 3 {
		for i := range 5 {
			q := fmt.Sprintf("select $1::int + %d", i)
			if got := mustQueryInt(t, c, q, round); got != int64(round+i) {
				t.Fatalf("%s = %d", q, got)
			}
		}
	}
	var n int64
	if err := c.QueryRow(ctx, "select count(*) from pg_prepared_statements").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > 3 { // two kept plus the statement being run
		t.Fatalf("backend holds %d prepared statements, bound is 2", n)
	}
}

// TestReload: a reload adds users and resizes pools without dropping clients.
func TestReload(t *testing.T) {
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = 2 })
	c := connect(t, p.dsn(""))
	cfg := *p.srv.config()
	cfg.Users = append(append([]config.User(nil), cfg.Users...),
		config.User{Name: "late", Password: "late", ServerUser: pgtest.User, ServerPassword: pgtest.Password})
	cfg.Pool.DefaultPoolSize = 5
	if err := p.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	late := connect(t, fmt.Sprintf("postgres://late:late@%s/app?sslmode=disable", p.addr))
	if got := mustQueryInt(t, late, "select 4"); got != 4 {
		t.Fatal("new user cannot query")
	}
	if got := mustQueryInt(t, c, "select 5"); got != 5 {
		t.Fatal("existing client dropped by reload")
	}
	if st := p.srv.PoolStats()[0]; st.Size != 5 {
		t.Fatalf("pool size after reload = %d, want 5", st.Size)
	}
	bad := cfg
	bad.Users = nil
	if err := p.srv.Reload(bad); err == nil {
		t.Fatal("reload accepted a config without users")
	}
}

// TestTLSAndMD5: clients can require TLS, and md5 authentication works for old drivers.
func TestTLSAndMD5(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	p := startProxy(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
		c.AuthType = "md5"
	})
	c := connect(t, p.dsn("")+"&sslmode=require")
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is %T, want TLS", c.PgConn().Conn())
	}
	if got := mustQueryInt(t, c, "select 6"); got != 6 {
		t.Fatal("query over TLS failed")
	}
	db, err := sql.Open("postgres", fmt.Sprintf("postgres://app:app@%s/app?sslmode=require", p.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("select 7").Scan(&v); err != nil || v != 7 {
		t.Fatalf("lib/pq over TLS with md5: %v", err)
	}
}

func writeSelfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestStartupOptions: settings given as options=-c ... at startup apply and follow the client.
func TestStartupOptions(t *testing.T) {
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = 1 })
	a := connect(t, p.dsn("options=-c%20statement_timeout%3D3s%20-c%20DateStyle%3DSQL,DMY"))
	b := connect(t, p.dsn(""))
	for range 2 {
		var st, ds string
		if err := a.QueryRow(context.Background(), "select current_setting('statement_timeout'), current_setting('DateStyle')").Scan(&st, &ds); err != nil {
			t.Fatal(err)
		}
		if st != "3s" || ds != "SQL, DMY" {
			t.Fatalf("options not applied: statement_timeout %q DateStyle %q", st, ds)
		}
		if err := b.QueryRow(context.Background(), "select current_setting('statement_timeout')").Scan(&st); err != nil || st != "0" {
			t.Fatalf("other client sees %q (%v)", st, err)
		}
	}
}

// TestIgnoresLibpqEnvironment: PGHOST, PGSSLMODE and friends in the proxy's environment do not
// change how it connects to its backends.
func TestIgnoresLibpqEnvironment(t *testing.T) {
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGPORT", "1")
	t.Setenv("PGSSLMODE", "require")
	p := startProxy(t, nil)
	c := connect(t, p.dsn(""))
	if got := mustQueryInt(t, c, "select count(*) from pg_sleep(0.01)"); got != 1 {
		t.Fatal("query through the proxy failed")
	}
}
