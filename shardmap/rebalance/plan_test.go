package rebalance

import (
	"fmt"
	"testing"

	"github.com/shardwire/shardwire/shardmap"
)

// testMap returns a map of n groups g0..g(n-1) whose owners are given (owner[s] = group).
func testMap(n int, owner [shardmap.NumShards]int) *shardmap.Map {
	m := &shardmap.Map{Epoch: 1, Owner: owner}
	for g := range n {
		m.Groups = append(m.Groups, shardmap.Group{Name: fmt.Sprintf("g%d", g), Region: "r", Writer: fmt.Sprintf("h:%d", 5432+g)})
	}
	for s := range m.State {
		m.State[s] = shardmap.StateActive
	}
	return m
}

// counts applies steps to m's ownership and returns shards per group.
func counts(t *testing.T, m *shardmap.Map, steps []Step) []int {
	t.Helper()
	owner := m.Owner
	seen := shardmap.ShardSet(0)
	for _, st := range steps {
		if seen.Has(st.Shard) {
			t.Errorf("shard %d moves twice", st.Shard)
		}
		seen = seen.Add(st.Shard)
		if got := m.Groups[owner[st.Shard]].Name; got != st.From {
			t.Errorf("%v: shard is owned by %s", st, got)
		}
		owner[st.Shard] = m.GroupIndex(st.To)
	}
	out := make([]int, len(m.Groups))
	for _, g := range owner {
		out[g]++
	}
	return out
}

func TestPlan(t *testing.T) {
	fourOfFour := [16]int{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}
	tests := []struct {
		name   string
		groups int
		owner  [16]int
		want   []int
		moves  int
	}{
		{"4 groups to 5", 5, fourOfFour, []int{3, 3, 3, 3, 4}, 3},
		{"balanced 4 groups", 4, fourOfFour, []int{4, 4, 4, 4}, 0},
		{"all on one of 2", 2, [16]int{}, []int{8, 8}, 8},
		{"all on one of 3", 3, [16]int{}, []int{6, 5, 5}, 10},
		{"one group", 1, [16]int{}, []int{16}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMap(tt.groups, tt.owner)
			steps := Plan(m)
			if len(steps) != tt.moves {
				t.Errorf("%d moves %v, want %d", len(steps), steps, tt.moves)
			}
			got := counts(t, m, steps)
			// Compare as multisets: which group ends with the extra shard does not matter.
			hist := func(c []int) map[int]int {
				h := map[int]int{}
				for _, n := range c {
					h[n]++
				}
				return h
			}
			if fmt.Sprint(hist(got)) != fmt.Sprint(hist(tt.want)) {
				t.Errorf("counts %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanBySize(t *testing.T) {
	fourOfFour := [16]int{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}
	var sizes [16]int64
	for s := range sizes {
		sizes[s] = 100
	}
	sizes[0] = 1000 // group 0 holds one huge shard
	m := testMap(5, fourOfFour)
	steps := PlanBySize(m, sizes)
	owner := m.Owner
	for _, st := range steps {
		owner[st.Shard] = m.GroupIndex(st.To)
	}
	total := make([]int64, 5)
	for s, g := range owner {
		total[g] += sizes[s]
	}
	before := []int64{1300, 400, 400, 400, 0}
	spread := func(v []int64) int64 {
		lo, hi := v[0], v[0]
		for _, x := range v {
			lo, hi = min(lo, x), max(hi, x)
		}
		return hi - lo
	}
	if spread(total) >= spread(before) {
		t.Fatalf("by-size plan %v leaves totals %v, no better than %v", steps, total, before)
	}
	if len(steps) == 0 || steps[0].Shard != 0 || steps[0].To != "g4" {
		t.Errorf("first step %v, want the huge shard 0 to the empty g4", steps)
	}
	if steps := PlanBySize(testMap(4, fourOfFour), [16]int64{}); len(steps) != 0 {
		t.Errorf("empty shards planned %v", steps)
	}
}
