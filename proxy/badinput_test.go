package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/proxy/wire"
)

// rawSession logs in through the proxy with pgconn and hands back the raw socket.
func rawSession(t *testing.T, dsn string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatalf("hijack: %v", err)
	}
	t.Cleanup(func() { hj.Conn.Close() })
	return hj.Conn, pgproto3.NewFrontend(hj.Conn, hj.Conn)
}

// expectFatal reads until an ErrorResponse and then EOF: the proxy must say why and hang up.
func expectFatal(t *testing.T, nc net.Conn, fe *pgproto3.Frontend, code string) {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("want ErrorResponse %s, got %v", code, err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			if e.Code != code || e.Severity != "FATAL" {
				t.Fatalf("want FATAL %s, got %s %s: %s", code, e.Severity, e.Code, e.Message)
			}
			break
		}
	}
	if _, err := fe.Receive(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isClosedErr(err) {
		t.Fatalf("want the proxy to close the connection, got %v", err)
	}
}

func isClosedErr(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "EOF"))
}

// healthy asserts that an ordinary client works through the proxy.
func healthy(t *testing.T, p *testProxy) {
	t.Helper()
	c := connect(t, p.dsn(""))
	if got := mustQueryInt(t, c, "select 41 + 1"); got != 42 {
		t.Fatalf("healthy client got %d", got)
	}
}

func connectErrCode(t *testing.T, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err == nil {
		c.Close(ctx)
		t.Fatalf("connect %s succeeded, want an error", dsn)
	}
	return pgCode(err)
}

func TestBadInput(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 1})
	p := startProxyFor(t, cl, func(c *config.Config) {
		c.MaxMessageSize = 4096
		c.Pool.DefaultPoolSize = 4
		c.Databases = []config.Database{{Name: pgtest.Database}}
	})
	// A long-lived healthy client runs throughout.
	keeper := connect(t, p.dsn(""))

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"unknown message type", func(t *testing.T) {
			nc, fe := rawSession(t, p.dsn(""))
			_, _ = nc.Write([]byte{'?', 0, 0, 0, 4})
			expectFatal(t, nc, fe, codeProtocolViolation)
		}},
		{"length below minimum", func(t *testing.T) {
			nc, fe := rawSession(t, p.dsn(""))
			_, _ = nc.Write([]byte{'Q', 0, 0, 0, 2})
			expectFatal(t, nc, fe, codeProtocolViolation)
		}},
		{"oversized message", func(t *testing.T) {
			nc, fe := rawSession(t, p.dsn(""))
			q := "select '" + strings.Repeat("x", 10000) + "'"
			msg, _ := (&pgproto3.Query{String: q}).Encode(nil)
			_, _ = nc.Write(msg)
			expectFatal(t, nc, fe, codeProgramLimit)
		}},
		{"Query without terminator", func(t *testing.T) {
			nc, fe := rawSession(t, p.dsn(""))
			_, _ = nc.Write(append(wire.AppendHeader(nil, wire.Query, 3), "abc"...))
			expectFatal(t, nc, fe, codeProtocolViolation)
		}},
		{"malformed Bind", func(t *testing.T) {
			nc, fe := rawSession(t, p.dsn(""))
			_, _ = nc.Write(append(wire.AppendHeader(nil, wire.Bind, 3), "abc"...))
			expectFatal(t, nc, fe, codeProtocolViolation)
		}},
		{"garbage startup packet", func(t *testing.T) {
			nc, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_, _ = nc.Write([]byte{0, 0, 0, 8, 0, 9, 0, 0})
			expectFatal(t, nc, pgproto3.NewFrontend(nc, nc), codeProtocolViolation)
		}},
		{"truncated startup packet", func(t *testing.T) {
			nc, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = nc.Write([]byte{0, 0, 0, 100, 0, 3, 0, 0})
			nc.Close() // the proxy must just drop it
		}},
		{"unknown user", func(t *testing.T) {
			dsn := fmt.Sprintf("postgres://nobody:app@%s/app?sslmode=disable", p.addr)
			if code := connectErrCode(t, dsn); code != codeInvalidPassword {
				t.Fatalf("got %q, want %s", code, codeInvalidPassword)
			}
		}},
		{"wrong password", func(t *testing.T) {
			dsn := fmt.Sprintf("postgres://app:wrong@%s/app?sslmode=disable", p.addr)
			if code := connectErrCode(t, dsn); code != codeInvalidPassword {
				t.Fatalf("got %q, want %s", code, codeInvalidPassword)
			}
		}},
		{"unknown database", func(t *testing.T) {
			dsn := fmt.Sprintf("postgres://app:app@%s/nosuchdb?sslmode=disable", p.addr)
			if code := connectErrCode(t, dsn); code != codeInvalidCatalogName {
				t.Fatalf("got %q, want %s", code, codeInvalidCatalogName)
			}
		}},
		{"LISTEN in transaction mode", func(t *testing.T) {
			c := connect(t, p.dsn(""))
			_, err := c.Exec(context.Background(), "LISTEN foo")
			if pgCode(err) != codeFeatureNotSupp || !strings.Contains(err.Error(), "session") {
				t.Fatalf("got %v, want %s naming session mode", err, codeFeatureNotSupp)
			}
			if got := mustQueryInt(t, c, "select 7"); got != 7 {
				t.Fatal("connection unusable after refused LISTEN")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			if got := mustQueryInt(t, keeper, "select 1"); got != 1 {
				t.Fatal("healthy client broke")
			}
			healthy(t, p)
		})
	}
	assertNoLeak(t, p)
	// Every refusal was counted by its SQLSTATE.
	for _, code := range []string{codeProtocolViolation, codeProgramLimit, codeInvalidPassword, codeInvalidCatalogName, codeFeatureNotSupp} {
		if n := counterValue(t, p, "shardwire_errors_total", map[string]string{"sqlstate": code, "source": "proxy"}); n < 1 {
			t.Errorf("shardwire_errors_total{sqlstate=%q} = %v, want > 0", code, n)
		}
	}
	if n := counterValue(t, p, "shardwire_client_logins_total", map[string]string{"result": "auth_failed"}); n != 2 {
		t.Errorf("auth failures counted %v, want 2", n)
	}
	if n := counterValue(t, p, "shardwire_client_received_bytes_total", nil); n <= 0 {
		t.Errorf("received bytes not counted")
	}
}

// counterValue returns the sum of a metric's samples whose labels include want (for a
// histogram, its observation counts).
func counterValue(t *testing.T, p *testProxy, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// assertNoLeak waits until no server connection is checked out.
func assertNoLeak(t *testing.T, p *testProxy) {
	t.Helper()
	waitFor(t, 10*time.Second, "every server connection back in the pool", func() bool {
		for _, st := range p.srv.PoolStats() {
			if st.Active != 0 {
				return false
			}
		}
		return true
	})
}

// TestFullPool: a client that cannot get a server within query_wait_timeout gets 53300, not a
// hang, and keeps working once the pool frees up.
func TestFullPool(t *testing.T) {
	p := startProxy(t, func(c *config.Config) {
		c.Pool.DefaultPoolSize = 1
		c.Pool.QueryWaitTimeout = config.Duration(500 * time.Millisecond)
	})
	ctx := context.Background()
	holder := connect(t, p.dsn(""))
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	waiter := connect(t, p.dsn(""))
	start := time.Now()
	_, err = waiter.Exec(ctx, "select 2")
	if pgCode(err) != codeTooManyConnections {
		t.Fatalf("got %v, want %s", err, codeTooManyConnections)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("waited %s, want about query_wait_timeout", d)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustQueryInt(t, waiter, "select 3"); got != 3 {
		t.Fatal("waiter unusable after the pool freed up")
	}
	assertNoLeak(t, p)
}

// TestMaxClientConn: connections beyond max_client_conn are refused with 53300.
func TestMaxClientConn(t *testing.T) {
	p := startProxy(t, func(c *config.Config) { c.MaxClientConn = 2 })
	a := connect(t, p.dsn(""))
	_ = connect(t, p.dsn(""))
	if code := connectErrCode(t, p.dsn("")); code != codeTooManyConnections {
		t.Fatalf("got %q, want %s", code, codeTooManyConnections)
	}
	if got := mustQueryInt(t, a, "select 5"); got != 5 {
		t.Fatal("existing client broke")
	}
}

// TestBackendDies: a backend killed mid-transaction gives the client an error and leaves the
// client connection usable; nothing of the aborted transaction is kept.
func TestBackendDies(t *testing.T) {
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = 2 })
	ctx := context.Background()
	admin := connect(t, p.cluster.Groups[0].Writer.SuperDSN(pgtest.Database))
	c := connect(t, p.dsn(""))
	if _, err := c.Exec(ctx, "create table dies(v int)"); err != nil {
		t.Fatal(err)
	}
	for _, idle := range []bool{true, false} {
		t.Run(fmt.Sprintf("idle=%v", idle), func(t *testing.T) {
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var pid int32
			if _, err := tx.Exec(ctx, "insert into dies values (1)"); err != nil {
				t.Fatal(err)
			}
			if err := tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if idle {
				if _, err := admin.Exec(ctx, "select pg_terminate_backend($1)", pid); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 5*time.Second, "backend gone", func() bool {
					return mustQueryInt(t, admin, "select count(*) from pg_stat_activity where pid = $1", pid) == 0
				})
				_, err = tx.Exec(ctx, "insert into dies values (2)")
			} else {
				go func() {
					time.Sleep(200 * time.Millisecond)
					_, _ = admin.Exec(ctx, "select pg_terminate_backend($1)", pid)
				}()
				_, err = tx.Exec(ctx, "select pg_sleep(5)")
			}
			if code := pgCode(err); code != codeConnectionFailure && code != "57P01" {
				t.Fatalf("got %v, want 08006 or 57P01", err)
			}
			_ = tx.Rollback(ctx)
			if n := mustQueryInt(t, c, "select count(*) from dies"); n != 0 {
				t.Fatalf("%d rows of the aborted transaction survived", n)
			}
		})
	}
	assertNoLeak(t, p)
}

// TestClientLeaves: a client that disconnects inside a transaction or in the middle of a
// result does not poison the pool.
func TestClientLeaves(t *testing.T) {
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = 1 })
	ctx := context.Background()
	setup := connect(t, p.dsn(""))
	if _, err := setup.Exec(ctx, "create table leaves(v int)"); err != nil {
		t.Fatal(err)
	}
	t.Run("inside a transaction", func(t *testing.T) {
		nc, fe := rawSession(t, p.dsn(""))
		fe.Send(&pgproto3.Query{String: "begin; insert into leaves values (1)"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		readUntilReady(t, fe)
		nc.Close()
		c := connect(t, p.dsn(""))
		if n := mustQueryInt(t, c, "select count(*) from leaves"); n != 0 {
			t.Fatalf("abandoned transaction left %d rows", n)
		}
		var inTx bool
		if err := c.QueryRow(ctx, "select pg_current_xact_id_if_assigned() is not null").Scan(&inTx); err != nil || inTx {
			t.Fatalf("next client inherited a transaction (err %v)", err)
		}
	})
	t.Run("mid result", func(t *testing.T) {
		nc, fe := rawSession(t, p.dsn(""))
		fe.Send(&pgproto3.Query{String: "select g, repeat('x', 100) from generate_series(1, 2000000) g"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if _, err := fe.Receive(); err != nil {
				t.Fatal(err)
			}
		}
		nc.Close()
		c := connect(t, p.dsn(""))
		start := time.Now()
		if got := mustQueryInt(t, c, "select 9"); got != 9 {
			t.Fatal("pool poisoned")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("next client waited %s for the abandoned query", d)
		}
	})
	t.Run("mid copy", func(t *testing.T) {
		nc, fe := rawSession(t, p.dsn(""))
		fe.Send(&pgproto3.Query{String: "copy leaves from stdin"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if msg, err := fe.Receive(); err != nil {
			t.Fatal(err)
		} else if _, ok := msg.(*pgproto3.CopyInResponse); !ok {
			t.Fatalf("got %T, want CopyInResponse", msg)
		}
		fe.Send(&pgproto3.CopyData{Data: []byte("1\n2\n")})
		_ = fe.Flush()
		nc.Close()
		c := connect(t, p.dsn(""))
		if n := mustQueryInt(t, c, "select count(*) from leaves"); n != 0 {
			t.Fatalf("abandoned copy left %d rows", n)
		}
	})
	assertNoLeak(t, p)
}

func readUntilReady(t *testing.T, fe *pgproto3.Frontend) {
	t.Helper()
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return
		}
	}
}

// TestCancelWrongKey: a CancelRequest with a wrong secret cancels nothing.
func TestCancelWrongKey(t *testing.T) {
	p := startProxy(t, nil)
	ctx := context.Background()
	pc, err := pgconn.Connect(ctx, p.dsn(""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() {
		defer wg.Done()
		runErr = pc.Exec(ctx, "select pg_sleep(1)").Close()
	}()
	time.Sleep(200 * time.Millisecond)
	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	bad := pgproto3.CancelRequest{ProcessID: pc.PID(), SecretKey: []byte{1, 2, 3, 4}}
	if string(bad.SecretKey) == string(pc.SecretKey()) {
		bad.SecretKey = []byte{4, 3, 2, 1}
	}
	buf, _ := bad.Encode(nil)
	_, _ = nc.Write(buf)
	nc.Close()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("a cancel with a wrong key cancelled the query: %v", runErr)
	}
	// And the right key does cancel.
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = pc.CancelRequest(ctx)
	}()
	start := time.Now()
	err = pc.Exec(ctx, "select pg_sleep(10)").Close()
	if pgCode(err) != "57014" || time.Since(start) > 2*time.Second {
		t.Fatalf("cancel with the right key: %v after %s", err, time.Since(start))
	}
}
