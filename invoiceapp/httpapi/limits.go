package httpapi

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/ratelimit"
)

// Limiter decides whether a request may proceed; *ratelimit.Limiter implements it. Allow
// must be safe for concurrent use and never fail (it decides locally when its shared store
// is down).
type Limiter interface {
	Allow(ctx context.Context, key string, tier ratelimit.Tier) ratelimit.Decision
}

// Rate-limit keys: customers by id, customer creation by client address. The prefixes keep
// the two apart.
func customerLimitKey(id int64) string { return "customer:" + strconv.FormatInt(id, 10) }

// clientLimitKey keys a request by its peer's IP address (RemoteAddr; invoiced does not trust
// forwarding headers).
func clientLimitKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// admit asks the limiter about the request, sets the RateLimit headers, and answers 429 when
// it is refused. It reports whether the request may proceed. Without a limiter every request
// proceeds and gets no headers.
func (a *API) admit(w http.ResponseWriter, r *http.Request, key string, tier invoiceapp.Tier) bool {
	if a.limiter == nil {
		return true
	}
	d := a.limiter.Allow(r.Context(), key, ratelimit.Tier(tier))
	d.WriteHeaders(w.Header())
	if d.Allowed {
		return true
	}
	a.metrics.limited.WithLabelValues(r.Pattern).Inc()
	writeError(w, http.StatusTooManyRequests, codeRateLimited, "",
		"too many requests for this customer's plan; retry after the Retry-After header's seconds")
	return false
}

// tierCache remembers customers' tiers for a short while, so that rate limiting does not cost
// a query per request. Unknown customers are remembered as free for a shorter while. Safe for
// concurrent use.
type tierCache struct {
	ttl, missTTL time.Duration
	max          int

	mu      sync.Mutex
	entries map[int64]tierEntry
}

// tierEntry is one cached tier.
type tierEntry struct {
	tier    invoiceapp.Tier
	expires time.Time
}

// newTierCache returns a cache keeping at most max entries for ttl.
func newTierCache(ttl time.Duration, max int) *tierCache {
	return &tierCache{ttl: ttl, missTTL: min(ttl, 5*time.Second), max: max, entries: make(map[int64]tierEntry)}
}

// get returns a cached tier.
func (c *tierCache) get(id int64, now time.Time) (invoiceapp.Tier, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || now.After(e.expires) {
		return "", false
	}
	return e.tier, true
}

// put caches a tier; found is false for a customer that does not exist.
func (c *tierCache) put(id int64, tier invoiceapp.Tier, found bool, now time.Time) {
	ttl := c.ttl
	if !found {
		ttl = c.missTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries) // all live: start over rather than grow without bound
		}
	}
	c.entries[id] = tierEntry{tier: tier, expires: now.Add(ttl)}
}

// tierOf returns a customer's tier, cached; an unknown customer, or one whose tier cannot be
// read right now, is limited as free.
func (a *API) tierOf(ctx context.Context, id int64) invoiceapp.Tier {
	now := time.Now()
	if t, ok := a.tiers.get(id, now); ok {
		return t
	}
	t, found, err := a.store.CustomerTier(ctx, id)
	if err != nil {
		a.log.Debug("tier lookup failed; limiting as free", zap.Int64("customer_id", id), zap.Error(err))
		return invoiceapp.TierFree
	}
	if !found {
		t = invoiceapp.TierFree
	}
	a.tiers.put(id, t, found, now)
	return t
}
