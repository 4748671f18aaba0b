package e2e

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/httpapi"
	"github.com/shardwire/shardwire/invoiceapp/ratelimit"
)

// limitedServer serves the API with an in-process rate limiter.
func limitedServer(t *testing.T) *httptest.Server {
	t.Helper()
	api, err := httpapi.New(httpapi.Options{
		Store:   invoiceapp.NewStore(env.pool, invoiceapp.StoreOptions{}),
		Limiter: ratelimit.New(nil, ratelimit.Options{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv
}

// untilRefused sends requests until one is refused and returns how many were allowed.
func untilRefused(t *testing.T, max int, send func() reply) (int, reply) {
	t.Helper()
	for i := 0; i < max; i++ {
		r := send()
		if r.status == 429 {
			return i, r
		}
		if r.header.Get("RateLimit-Limit") == "" || r.header.Get("RateLimit-Remaining") == "" || r.header.Get("RateLimit-Reset") == "" {
			t.Fatalf("allowed request %d lacks RateLimit headers: %v", i, r.header)
		}
	}
	return max, reply{}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	srv := limitedServer(t)
	free := newCustomer(t, "free")
	enterprise := newCustomer(t, "enterprise")
	syncReplicas(t, free)
	syncReplicas(t, enterprise)
	get := func(id int64) func() reply {
		return func() reply { return call(t, srv.URL, "GET", fmt.Sprintf("/v1/customers/%d", id), nil) }
	}
	// Free: a burst of 100, refilled at one a second, so a quick run sees 100 or very few
	// more allowed.
	n, refused := untilRefused(t, 200, get(free))
	if n < 100 || n > 103 {
		t.Fatalf("free customer: %d requests allowed before a 429, want about 100", n)
	}
	refused.wantError(t, 429, "rate_limited", "")
	if ra, err := strconv.Atoi(refused.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", refused.header.Get("Retry-After"))
	}
	if refused.header.Get("RateLimit-Remaining") != "0" || refused.header.Get("RateLimit-Limit") != "100" {
		t.Errorf("429 headers %v", refused.header)
	}
	// Every route under the customer shares the budget.
	call(t, srv.URL, "GET", fmt.Sprintf("/v1/customers/%d/summary", free), nil).wantError(t, 429, "rate_limited", "")
	// Enterprise (burst 10,000) is not limited at that rate; other customers are unaffected.
	if n, _ := untilRefused(t, 150, get(enterprise)); n != 150 {
		t.Errorf("enterprise customer refused after %d requests", n)
	}
	// Customer creation is limited per client address on the free plan; the bodies here are
	// invalid, so the limiter answers before anything is written.
	n, refused = untilRefused(t, 200, func() reply { return call(t, srv.URL, "POST", "/v1/customers", `{}`) })
	if n < 100 || n > 103 {
		t.Fatalf("customer creation: %d requests allowed before a 429, want about 100", n)
	}
	refused.wantError(t, 429, "rate_limited", "")
	// Without a limiter (the shared server) nothing is limited and no headers are sent.
	r := do(t, "GET", fmt.Sprintf("/v1/customers/%d", free), nil).want(t, 200)
	if r.header.Get("RateLimit-Limit") != "" {
		t.Errorf("unlimited server sent %q", r.header.Get("RateLimit-Limit"))
	}
}

// TestRateLimitsAcrossInstances: two invoiced instances share one Redis, so a free customer's
// burst of 100 is one budget whichever instance a request reaches.
func TestRateLimitsAcrossInstances(t *testing.T) {
	t.Parallel()
	rd := pgtest.NewRedis(t)
	var servers [2]*httptest.Server
	for i := range servers {
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{rd.Addr()}, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = rdb.Close() })
		api, err := httpapi.New(httpapi.Options{
			Store:   invoiceapp.NewStore(env.pool, invoiceapp.StoreOptions{}),
			Limiter: ratelimit.New(rdb, ratelimit.Options{Prefix: "across:"}),
		})
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = httptest.NewServer(api)
		t.Cleanup(servers[i].Close)
	}
	free := newCustomer(t, "free")
	syncReplicas(t, free)
	turn := 0
	perInstance := [2]int{}
	n, refused := untilRefused(t, 300, func() reply {
		i := turn % 2
		turn++
		r := call(t, servers[i].URL, "GET", fmt.Sprintf("/v1/customers/%d", free), nil)
		if r.status != 429 {
			perInstance[i]++
		}
		return r
	})
	// The burst is 100, refilled at one a second: a run of a few seconds admits 100 to 103.
	if n < 100 || n > 103 {
		t.Fatalf("two instances admitted %d requests of a free customer before a 429, want the shared burst of 100 (per instance %v)", n, perInstance)
	}
	if perInstance[0] < 45 || perInstance[1] < 45 {
		t.Fatalf("requests were not spread over both instances: %v", perInstance)
	}
	refused.wantError(t, 429, "rate_limited", "")
	// The other instance refuses too: the budget is spent cluster-wide.
	other := turn % 2
	call(t, servers[other].URL, "GET", fmt.Sprintf("/v1/customers/%d", free), nil).wantError(t, 429, "rate_limited", "")
}
