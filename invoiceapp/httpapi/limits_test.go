package httpapi

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shardwire/shardwire/invoiceapp"
)

func TestTierCache(t *testing.T) {
	c := newTierCache(30*time.Second, 3)
	now := time.Unix(1000, 0)
	if _, ok := c.get(1, now); ok {
		t.Fatal("empty cache hit")
	}
	c.put(1, invoiceapp.TierPremium, true, now)
	c.put(2, invoiceapp.TierFree, false, now)
	if tier, ok := c.get(1, now.Add(29*time.Second)); !ok || tier != invoiceapp.TierPremium {
		t.Errorf("get(1) = %s %v", tier, ok)
	}
	if _, ok := c.get(1, now.Add(31*time.Second)); ok {
		t.Error("expired entry served")
	}
	if _, ok := c.get(2, now.Add(6*time.Second)); ok {
		t.Error("a miss is cached as long as a hit")
	}
	// Full of live entries: the cache starts over rather than growing.
	c.put(3, invoiceapp.TierBasic, true, now)
	c.put(4, invoiceapp.TierBasic, true, now)
	if len(c.entries) > 3 {
		t.Errorf("cache holds %d entries, max 3", len(c.entries))
	}
	if tier, ok := c.get(4, now); !ok || tier != invoiceapp.TierBasic {
		t.Errorf("newest entry lost: %s %v", tier, ok)
	}
	// Expired entries make room first.
	c = newTierCache(time.Second, 2)
	c.put(1, invoiceapp.TierFree, true, now)
	c.put(2, invoiceapp.TierFree, true, now.Add(5*time.Second))
	c.put(3, invoiceapp.TierFree, true, now.Add(5*time.Second))
	if _, ok := c.get(2, now.Add(5*time.Second)); !ok {
		t.Error("live entry evicted while an expired one could go")
	}
}

func TestClientLimitKey(t *testing.T) {
	r := httptest.NewRequest("POST", "/v1/customers", nil)
	r.RemoteAddr = "192.0.2.7:51234"
	if got := clientLimitKey(r); got != "ip:192.0.2.7" {
		t.Errorf("key %q", got)
	}
	r.RemoteAddr = "[2001:db8::1]:443"
	if got := clientLimitKey(r); got != "ip:2001:db8::1" {
		t.Errorf("key %q", got)
	}
	if customerLimitKey(42) != "customer:42" {
		t.Error(customerLimitKey(42))
	}
}
