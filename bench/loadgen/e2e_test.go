package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardwire/shardwire/devcluster"
	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/httpapi"
	"github.com/shardwire/shardwire/invoiceapp/migrations"
	"github.com/shardwire/shardwire/invoiceapp/ratelimit"
)

// TestEndToEnd runs the engine against the real stack: invoiced's handler (with its rate
// limiter, local only) in httptest, over one pool on a shardwire proxy in front of two shard
// groups of real Postgres. Every route must be exercised and answer without error.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, devcluster.Options{Groups: 2, Proxies: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	}()
	dsn := c.Nodes[0].DSN()
	pool, err := newProxyPool(ctx, dsn, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Apply(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if err := invoiceapp.MaintainPartitions(ctx, pool, time.Now(), 1); err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Options{
		Store:   invoiceapp.NewStore(pool, invoiceapp.StoreOptions{}),
		Limiter: ratelimit.New(nil, ratelimit.Options{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()

	const customers = 200
	zipf, err := NewZipf(customers, 1.1)
	if err != nil {
		t.Fatal(err)
	}
	sc, setupPool, err := newStoreCreator(ctx, dsn, 8)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Setup(ctx, sc, zipf, DefaultTierMix(), 8, nil)
	setupPool.Close()
	if err != nil || st.Created != customers {
		t.Fatalf("setup: %+v, %v; want %d created", st, err, customers)
	}

	hc := NewHTTPClient(256)
	hc.Timeout = 10 * time.Second
	w, err := NewAPI(srv.URL, hc, zipf, DefaultMix())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Load{Rate: 60, Warmup: time.Second, Duration: 3 * time.Second, Seed: 5}, w)
	if err != nil {
		t.Fatal(err)
	}
	rep := NewReport(res, RunInfo{Target: srv.URL, Customers: customers, ZipfS: 1.1, Mix: DefaultMix()}, nil)
	var b strings.Builder
	_ = rep.WriteTable(&b)
	t.Log("\n" + b.String())
	if rep.Total.Errors != 0 {
		t.Errorf("%d errors: %v", rep.Total.Errors, rep.ErrorKinds)
	}
	if rep.Total.Limited != 0 {
		t.Errorf("%d requests rate-limited at 60/s over enterprise customers", rep.Total.Limited)
	}
	for _, r := range rep.Routes {
		if r.OK == 0 {
			t.Errorf("route %s was not exercised successfully (%+v)", r.Route, r)
		}
	}
	// The rows are where shardwire put them: every invoice on the group owning its customer.
	for gi, g := range c.PG.Groups {
		gp, err := pgxpool.New(ctx, g.Writer.AppDSN())
		if err != nil {
			t.Fatal(err)
		}
		var n, stray int64
		err = gp.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE customer_id % 16 / 8 <> $1) FROM invoices`, gi).Scan(&n, &stray)
		gp.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || stray != 0 {
			t.Errorf("group %d: %d invoices, %d of another group's customers", gi, n, stray)
		}
	}
}
