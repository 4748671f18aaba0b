package ratelimit

import "testing"

func TestParseTier(t *testing.T) {
	tests := []struct {
		in      string
		want    Tier
		wantErr bool
	}{
		{in: "free", want: Free},
		{in: "basic", want: Basic},
		{in: "premium", want: Premium},
		{in: "enterprise", want: Enterprise},
		{in: " Premium ", want: Premium},
		{in: "ENTERPRISE", want: Enterprise},
		{in: "", wantErr: true},
		{in: "gold", wantErr: true},
		{in: "free ish", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTier(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTier(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPlanOf(t *testing.T) {
	// The numbers.
	tests := []struct {
		tier Tier
		want Plan
	}{
		{Free, Plan{PerMinute: 60, PerHour: 1000, Burst: 100}},
		{Basic, Plan{PerMinute: 300, PerHour: 10000, Burst: 500}},
		{Premium, Plan{PerMinute: 1000, PerHour: 50000, Burst: 2000}},
		{Enterprise, Plan{PerMinute: 5000, PerHour: 500000, Burst: 10000}},
		{"platinum", Plan{PerMinute: 60, PerHour: 1000, Burst: 100}}, // unknown: the free plan
		{"", Plan{PerMinute: 60, PerHour: 1000, Burst: 100}},
	}
	for _, tt := range tests {
		if got := PlanOf(tt.tier); got != tt.want {
			t.Errorf("PlanOf(%q) = %+v, want %+v", tt.tier, got, tt.want)
		}
	}
}

func TestTierIndexAndOrFree(t *testing.T) {
	for i, tier := range knownTiers() {
		if tier.index() != i || tier.orFree() != tier || tier.String() != string(tier) {
			t.Errorf("tier %q: index %d (want %d), orFree %q", tier, tier.index(), i, tier.orFree())
		}
	}
	if got := Tier("gold").orFree(); got != Free {
		t.Errorf("orFree of an unknown tier = %q, want free", got)
	}
}

func TestLimitsOf(t *testing.T) {
	// Every plan's intervals are whole microseconds, so nothing is rounded.
	tests := []struct {
		tier Tier
		want limits
	}{
		{Free, limits{minute: limit{interval: 1_000_000, burst: 100}, hour: limit{interval: 3_600_000, burst: 1000}}},
		{Basic, limits{minute: limit{interval: 200_000, burst: 500}, hour: limit{interval: 360_000, burst: 10000}}},
		{Premium, limits{minute: limit{interval: 60_000, burst: 2000}, hour: limit{interval: 72_000, burst: 50000}}},
		{Enterprise, limits{minute: limit{interval: 12_000, burst: 10000}, hour: limit{interval: 7_200, burst: 500000}}},
	}
	for _, tt := range tests {
		if got := limitsOf(PlanOf(tt.tier)); got != tt.want {
			t.Errorf("limitsOf(%s) = %+v, want %+v", tt.tier, got, tt.want)
		}
	}
	// A rate that does not divide a minute rounds the interval up.
	if got := limitsOf(Plan{PerMinute: 7, PerHour: 7, Burst: 1}).minute.interval; got != 8_571_429 {
		t.Errorf("interval for 7/min = %d, want 8571429 (rounded up)", got)
	}
}
