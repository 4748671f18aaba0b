package main

import (
	"fmt"
	"strconv"
	"strings"
)

// tierOrder lists the tiers from the most to the least generous plan.
var tierOrder = [...]string{"enterprise", "premium", "basic", "free"}

// TierMix is the share of customers per tier, in tierOrder. Tiers go to customers by
// popularity: the most popular ranks get the first tier of tierOrder with a positive share,
// and so on, so the hottest customers are the big accounts (as on the real platform) and the
// per-customer rate limits of small plans do not throttle the benchmark unless asked to.
type TierMix [len(tierOrder)]int

// DefaultTierMix is 90 % enterprise, 5 % premium, 3 % basic, 2 % free.
func DefaultTierMix() TierMix { return TierMix{90, 5, 3, 2} }

// ParseTierMix parses "enterprise=90,premium=5,basic=3,free=2"; tiers left out get 0.
func ParseTierMix(s string) (TierMix, error) {
	var m TierMix
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return TierMix{}, fmt.Errorf("tier mix: %q is not tier=share", part)
		}
		i := -1
		for j, t := range tierOrder {
			if t == strings.TrimSpace(k) {
				i = j
			}
		}
		if i < 0 {
			return TierMix{}, fmt.Errorf("tier mix: unknown tier %q (want enterprise, premium, basic or free)", k)
		}
		w, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || w < 0 {
			return TierMix{}, fmt.Errorf("tier mix: share of %s: want an integer >= 0, got %q", k, v)
		}
		m[i] = w
		total += w
	}
	if total == 0 {
		return TierMix{}, fmt.Errorf("tier mix: %q has no positive share", s)
	}
	return m, nil
}

// TierOfRank returns the tier of the customer with popularity rank (1-based) among n.
func (m TierMix) TierOfRank(rank, n int64) string {
	total := int64(0)
	for _, w := range m {
		total += int64(w)
	}
	// rank r falls in the tier whose cumulative share first covers it.
	cum := int64(0)
	last := 0
	for i, w := range m {
		if w == 0 {
			continue
		}
		last = i
		cum += int64(w)
		if (rank-1)*total < cum*n {
			return tierOrder[i]
		}
	}
	return tierOrder[last]
}

// String formats the mix as ParseTierMix reads it.
func (m TierMix) String() string {
	parts := make([]string, 0, len(m))
	for i, w := range m {
		if w > 0 {
			parts = append(parts, tierOrder[i]+"="+strconv.Itoa(w))
		}
	}
	return strings.Join(parts, ",")
}
