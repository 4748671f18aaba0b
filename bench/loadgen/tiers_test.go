package main

import "testing"

func TestTierMixByRank(t *testing.T) {
	m := DefaultTierMix()
	const n = 1000
	count := map[string]int{}
	prev := 0
	order := map[string]int{"enterprise": 0, "premium": 1, "basic": 2, "free": 3}
	for r := int64(1); r <= n; r++ {
		tier := m.TierOfRank(r, n)
		if order[tier] < prev {
			t.Fatalf("rank %d gets %s after a less generous tier: tiers must follow popularity", r, tier)
		}
		prev = order[tier]
		count[tier]++
	}
	want := map[string]int{"enterprise": 900, "premium": 50, "basic": 30, "free": 20}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%s: %d customers, want %d", k, count[k], v)
		}
	}
	if got := m.TierOfRank(1, n); got != "enterprise" {
		t.Errorf("hottest customer is %s, want enterprise", got)
	}
}

func TestParseTierMix(t *testing.T) {
	m, err := ParseTierMix("free=1")
	if err != nil || m.TierOfRank(1, 10) != "free" || m.TierOfRank(10, 10) != "free" {
		t.Errorf("free=1: %v %v", m, err)
	}
	m, err = ParseTierMix("basic=1, premium=1")
	if err != nil || m.TierOfRank(1, 10) != "premium" || m.TierOfRank(6, 10) != "basic" || m.String() != "premium=1,basic=1" {
		t.Errorf("basic=1,premium=1: %v %q %v", m, m.String(), err)
	}
	for _, bad := range []string{"", "gold=1", "free=-1", "free=0", "free"} {
		if _, err := ParseTierMix(bad); err == nil {
			t.Errorf("ParseTierMix(%q) accepted", bad)
		}
	}
}
