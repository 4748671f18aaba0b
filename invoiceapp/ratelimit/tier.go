package ratelimit

import (
	"fmt"
	"strings"
)

// Tier is a customer's plan name, as stored in customers.tier.
type Tier string

// The platform's tiers, from the most to the least restrictive.
const (
	Free       Tier = "free"
	Basic      Tier = "basic"
	Premium    Tier = "premium"
	Enterprise Tier = "enterprise"
)

// knownTiers lists every Tier; index returns positions in it.
func knownTiers() [4]Tier { return [...]Tier{Free, Basic, Premium, Enterprise} }

// ParseTier returns the Tier named s, ignoring case and surrounding space.
// It fails for any other name.
func ParseTier(s string) (Tier, error) {
	t := Tier(strings.ToLower(strings.TrimSpace(s)))
	if t.index() < 0 {
		return "", fmt.Errorf("unknown tier %q (want free, basic, premium or enterprise)", s)
	}
	return t, nil
}

// String returns the tier's name.
func (t Tier) String() string { return string(t) }

// index returns t's position in tiers, or -1 if t is not a known tier.
func (t Tier) index() int {
	for i, known := range knownTiers() {
		if t == known {
			return i
		}
	}
	return -1
}

// orFree returns t if it is a known tier, else Free, so that an invalid
// tier never grants more than the smallest plan.
func (t Tier) orFree() Tier {
	if t.index() < 0 {
		return Free
	}
	return t
}

// Plan is a tier's request budget per customer.
type Plan struct {
	PerMinute int // sustained requests per minute
	PerHour   int // requests per hour; also the hour limit's capacity (see the package doc)
	Burst     int // requests admitted at once by the minute limit after an idle spell
}

// PlanOf returns the platform's plan for t. An unknown tier gets the free
// plan, the most restrictive one.
func PlanOf(t Tier) Plan {
	switch t {
	case Basic:
		return Plan{PerMinute: 300, PerHour: 10_000, Burst: 500}
	case Premium:
		return Plan{PerMinute: 1_000, PerHour: 50_000, Burst: 2_000}
	case Enterprise:
		return Plan{PerMinute: 5_000, PerHour: 500_000, Burst: 10_000}
	default:
		return Plan{PerMinute: 60, PerHour: 1_000, Burst: 100}
	}
}
