package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/service"
)

// demoInvoices counts the demo customers' invoices and payments on the group writers.
func demoInvoices(t *testing.T, customers int64) int {
	t.Helper()
	n := 0
	for id := int64(1); id <= customers; id++ {
		n += writerCount(t, ownerGroup(id), "invoices", id) + writerCount(t, ownerGroup(id), "payments", id)
	}
	return n
}

func TestService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const demo = 12
	cfg := service.DefaultConfig()
	cfg.DSN = env.cluster.Nodes[0].DSN()
	cfg.Listen = "127.0.0.1:0"
	cfg.DemoCustomers = demo
	cfg.MaxConns = 4
	svc, err := service.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = svc.Shutdown(ctx)
		}
	}()
	base := "http://" + svc.Addr()
	call(t, base, "GET", "/healthz", nil).want(t, 200)

	// The demo customers exist with their invoices, on the groups that own them.
	for id := int64(1); id <= demo; id++ {
		if writerCount(t, ownerGroup(id), "customers", id) != 1 || writerCount(t, ownerGroup(id), "invoices", id) < 2 {
			t.Fatalf("demo customer %d incomplete", id)
		}
	}
	var c customer
	eventually(t, "demo customer 7 to be readable", func() bool {
		r := call(t, base, "GET", "/v1/customers/7", nil)
		if r.status != 200 {
			return false
		}
		r.decode(t, &c)
		return true
	})
	if c.Tier != "basic" || c.Name != "Demo Customer 7" {
		t.Errorf("demo customer %+v", c)
	}
	r := call(t, base, "GET", "/v1/customers/7/summary", nil).want(t, 200)
	if r.header.Get("RateLimit-Limit") == "" {
		t.Error("rate limits are off")
	}
	// Loading again adds nothing.
	before := demoInvoices(t, demo)
	if err := invoiceapp.LoadDemo(ctx, env.pool, demo); err != nil {
		t.Fatal(err)
	}
	if after := demoInvoices(t, demo); after != before {
		t.Errorf("a second LoadDemo changed the demo invoices from %d to %d", before, after)
	}

	metrics := string(call(t, base, "GET", "/metrics", nil).want(t, 200).body)
	for _, want := range []string{
		`invoiced_http_request_duration_seconds_count{code="200",route="GET /v1/customers/{id}"}`,
		`invoiced_http_request_duration_seconds_count{code="200",route="GET /healthz"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stopped = true
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-svc.Done():
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after Shutdown")
	}
}
