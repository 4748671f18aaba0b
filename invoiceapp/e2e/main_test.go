package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shardwire/shardwire/devcluster"
	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/httpapi"
	"github.com/shardwire/shardwire/invoiceapp/migrations"
)

// groups is the dev cluster's group count; the default map gives group g shards 4g..4g+3.
const groups = 4

// env is the shared test stack, set up once by TestMain and read-only afterwards.
var env struct {
	cluster *devcluster.Cluster
	pool    *pgxpool.Pool   // through the proxy
	writers []*pgxpool.Pool // straight to each group's writer, for placement checks
	srv     *httptest.Server
}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// setup starts the stack, runs the tests and tears the stack down.
func setup(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, devcluster.Options{Groups: groups, Replicas: 1, Proxies: 1})
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Stop() }()
	env.cluster = c
	if env.pool, err = pgxpool.New(ctx, c.Nodes[0].DSN()); err != nil {
		return 0, err
	}
	defer env.pool.Close()
	for _, g := range c.PG.Groups {
		p, err := pgxpool.New(ctx, g.Writer.AppDSN())
		if err != nil {
			return 0, err
		}
		defer p.Close()
		env.writers = append(env.writers, p)
	}
	if _, err := migrations.Apply(ctx, env.pool, nil); err != nil {
		return 0, err
	}
	if err := invoiceapp.MaintainPartitions(ctx, env.pool, time.Now(), invoiceapp.DefaultMonthsAhead); err != nil {
		return 0, err
	}
	// Errors the API logs (500s) go to stderr, where a failing test's output shows them.
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.Lock(os.Stderr), zap.WarnLevel))
	// Reads go to replicas: let them replay the schema before any test reads.
	if err := replayed(ctx, c); err != nil {
		return 0, err
	}
	api, err := httpapi.New(httpapi.Options{Store: invoiceapp.NewStore(env.pool, invoiceapp.StoreOptions{}), Log: log})
	if err != nil {
		return 0, err
	}
	env.srv = httptest.NewServer(api)
	defer env.srv.Close()
	return m.Run(), nil
}

// replayed waits until every replica has replayed all the WAL its writer has inserted.
func replayed(ctx context.Context, c *devcluster.Cluster) error {
	for _, g := range c.PG.Groups {
		w, err := pgx.Connect(ctx, g.Writer.AppDSN())
		if err != nil {
			return err
		}
		var target string
		err = w.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&target)
		_ = w.Close(ctx)
		if err != nil {
			return err
		}
		for _, r := range g.Replicas {
			conn, err := pgx.Connect(ctx, r.AppDSN())
			if err != nil {
				return err
			}
			for done := false; !done; {
				if err := conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, target).Scan(&done); err != nil {
					_ = conn.Close(ctx)
					return err
				}
				if !done {
					time.Sleep(20 * time.Millisecond)
				}
			}
			_ = conn.Close(ctx)
		}
	}
	return nil
}

// ownerGroup returns the index of the group owning a customer under the default map.
func ownerGroup(customerID int64) int { return int(customerID%16) * groups / 16 }

// reply is an HTTP response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request to base; body is sent as is when it is a string, else JSON-encoded
// (nil: no body). hdr holds header name, value pairs.
func call(t testing.TB, base, method, path string, body any, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// do calls the shared API server.
func do(t testing.TB, method, path string, body any, hdr ...string) reply {
	t.Helper()
	return call(t, env.srv.URL, method, path, body, hdr...)
}

// want fails unless r has status; it returns r for chaining.
func (r reply) want(t testing.TB, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// decode unmarshals r's body into v.
func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// apiError is the error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError fails unless r is an error with status, code and field.
func (r reply) wantError(t testing.TB, status int, code, field string) {
	t.Helper()
	r.want(t, status)
	var e apiError
	r.decode(t, &e)
	if e.Error.Code != code || e.Error.Field != field || e.Error.Message == "" {
		t.Fatalf("error %+v, want code %s field %q", e.Error, code, field)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
}

// eventually retries cond until it holds or 15 s pass. Reads through the proxy may be served by
// a replica that has not replayed a write yet; conditions after a write wait for it.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getEventually GETs path until it answers status.
func getEventually(t testing.TB, path string, status int) reply {
	t.Helper()
	var r reply
	eventually(t, "GET "+path+" to answer "+fmt.Sprint(status), func() bool {
		r = do(t, "GET", path, nil)
		return r.status == status
	})
	return r
}

// customer is the customer resource.
type customer struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Tier      string    `json:"tier"`
	CreatedAt time.Time `json:"created_at"`
}

// newCustomer creates a customer with a server-chosen id.
func newCustomer(t testing.TB, tier string) int64 {
	t.Helper()
	var c customer
	do(t, "POST", "/v1/customers", map[string]any{"name": "Test " + t.Name(), "tier": tier}).want(t, 201).decode(t, &c)
	return c.ID
}

// line is an invoice line in a request.
type line struct {
	Description    string `json:"description"`
	Quantity       int64  `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
}

// invoiceReq is a create-invoice request.
type invoiceReq struct {
	Currency  string `json:"currency"`
	IssueDate string `json:"issue_date,omitempty"`
	DueDate   string `json:"due_date,omitempty"`
	Lines     []line `json:"lines"`
}

// invoice is the invoice resource.
type invoice struct {
	ID           string     `json:"id"`
	CustomerID   int64      `json:"customer_id"`
	Currency     string     `json:"currency"`
	Status       string     `json:"status"`
	Overdue      bool       `json:"overdue"`
	IssueDate    string     `json:"issue_date"`
	DueDate      string     `json:"due_date"`
	TotalMinor   int64      `json:"total_minor"`
	PaidMinor    int64      `json:"paid_minor"`
	BalanceMinor int64      `json:"balance_minor"`
	CreatedAt    time.Time  `json:"created_at"`
	PaidAt       *time.Time `json:"paid_at"`
	VoidedAt     *time.Time `json:"voided_at"`
	Lines        []struct {
		LineNo         int    `json:"line_no"`
		Description    string `json:"description"`
		Quantity       int64  `json:"quantity"`
		UnitPriceMinor int64  `json:"unit_price_minor"`
		AmountMinor    int64  `json:"amount_minor"`
	} `json:"lines"`
}

// newInvoice creates an invoice of total minor units in currency issued on issue ("" today).
func newInvoice(t testing.TB, customerID int64, currency string, total int64, issue, due string) invoice {
	t.Helper()
	var inv invoice
	do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices", customerID), invoiceReq{
		Currency: currency, IssueDate: issue, DueDate: due, Lines: []line{{"item", 1, total}},
	}).want(t, 201).decode(t, &inv)
	return inv
}

// paymentResult is the record-payment response.
type paymentResult struct {
	Payment struct {
		ID          string `json:"id"`
		InvoiceID   string `json:"invoice_id"`
		AmountMinor int64  `json:"amount_minor"`
		Currency    string `json:"currency"`
		Reference   string `json:"reference"`
	} `json:"payment"`
	Invoice invoice `json:"invoice"`
}

// pay posts a payment and returns the reply.
func pay(t testing.TB, customerID int64, invoiceID string, amount int64, hdr ...string) reply {
	t.Helper()
	return do(t, "POST", fmt.Sprintf("/v1/customers/%d/invoices/%s/payments", customerID, invoiceID),
		map[string]any{"amount_minor": amount}, hdr...)
}

// writerCount counts rows of table for a customer on group g's writer, bypassing the proxy.
func writerCount(t testing.TB, g int, table string, customerID int64) int {
	t.Helper()
	var n int
	if err := env.writers[g].QueryRow(context.Background(),
		`SELECT count(*) FROM `+table+` WHERE customer_id = $1`, customerID).Scan(&n); err != nil {
		t.Fatalf("count %s on group %d: %v", table, g, err)
	}
	return n
}

// today is the current UTC day as the API sees it.
func today() invoiceapp.Date { return invoiceapp.DateOf(time.Now()) }

// syncReplicas waits until every replica of the group owning customerID has replayed all the
// WAL its writer had inserted when called, so that any read after it sees every earlier write
// whichever endpoint serves it. (The test servers run with synchronous_commit off: a commit
// is acknowledged before its WAL is written, so the insert position is the one to wait for.)
func syncReplicas(t testing.TB, customerID int64) {
	t.Helper()
	ctx := context.Background()
	g := ownerGroup(customerID)
	var target string
	if err := env.writers[g].QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	for _, r := range env.cluster.PG.Groups[g].Replicas {
		conn, err := pgx.Connect(ctx, r.AppDSN())
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "replica "+r.Addr()+" to replay "+target, func() bool {
			var done bool
			if err := conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, target).Scan(&done); err != nil {
				t.Fatal(err)
			}
			return done
		})
		_ = conn.Close(ctx)
	}
}
