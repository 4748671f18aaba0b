package rebalance

import (
	"fmt"
	"sort"

	"github.com/shardwire/shardwire/shardmap"
)

// Step is one move of a rebalance plan.
type Step struct {
	Shard shardmap.Shard
	From  string
	To    string
	// Bytes is the shard's size when the plan was made by size (0 otherwise).
	Bytes int64
}

// String is e.g. "shard 5: g1 → g4".
func (s Step) String() string { return fmt.Sprintf("shard %d: %s → %s", s.Shard, s.From, s.To) }

// Plan returns the moves that even out the map's shards across its groups: afterwards no
// group owns more than one shard more than another, and no shard moves that need not (so
// from 4 groups of 4 shards to 5 groups it plans 4/3/3/3/3 with three moves). Groups give
// up their highest-numbered shards first; the fullest group gives, the emptiest takes, ties
// going to the group listed first.
func Plan(m *shardmap.Map) []Step {
	owned := make([][]shardmap.Shard, len(m.Groups))
	for g := range m.Groups {
		owned[g] = m.OwnedBy(g).Shards()
	}
	var steps []Step
	for {
		hi, lo := 0, 0
		for g := range owned {
			if len(owned[g]) > len(owned[hi]) {
				hi = g
			}
			if len(owned[g]) < len(owned[lo]) {
				lo = g
			}
		}
		if len(owned[hi])-len(owned[lo]) <= 1 {
			return steps
		}
		sh := owned[hi][len(owned[hi])-1]
		owned[hi] = owned[hi][:len(owned[hi])-1]
		owned[lo] = append(owned[lo], sh)
		steps = append(steps, Step{Shard: sh, From: m.Groups[hi].Name, To: m.Groups[lo].Name})
	}
}

// PlanBySize returns moves that even out bytes across groups (sizes[s] is shard s's size):
// it moves, from the group holding the most bytes to the one holding the fewest, the shard
// that best narrows their gap, as long as a move narrows it; a shard moves at most once.
func PlanBySize(m *shardmap.Map, sizes [shardmap.NumShards]int64) []Step {
	owner := m.Owner
	total := make([]int64, len(m.Groups))
	for s, g := range owner {
		total[g] += sizes[s]
	}
	moved := shardmap.ShardSet(0)
	var steps []Step
	for range shardmap.NumShards {
		order := make([]int, len(m.Groups))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return total[order[a]] > total[order[b]] })
		hi, lo := order[0], order[len(order)-1]
		gap := total[hi] - total[lo]
		best, bestGap := -1, gap
		for s, g := range owner {
			if g != hi || moved.Has(shardmap.Shard(s)) || sizes[s] == 0 {
				continue
			}
			// After the move the two groups differ by |gap - 2*size|.
			after := gap - 2*sizes[s]
			if after < 0 {
				after = -after
			}
			if after < bestGap {
				best, bestGap = s, after
			}
		}
		if best < 0 {
			break
		}
		owner[best] = lo
		total[hi] -= sizes[best]
		total[lo] += sizes[best]
		moved = moved.Add(shardmap.Shard(best))
		steps = append(steps, Step{Shard: shardmap.Shard(best), From: m.Groups[hi].Name, To: m.Groups[lo].Name, Bytes: sizes[best]})
	}
	return steps
}
