package merge

import (
	"fmt"
	"slices"
)

// group is one output group of an aggregating merge.
type group struct {
	cols   [][]byte // per-group layout; grouping columns hold the first row's values (copied)
	states []aggState
	vals   []value // sort keys of the finished row
}

// runAggregate reads every row of every source, combines rows with equal grouping values,
// finishes the aggregates, then sorts and emits the groups.
func (m *Merger) runAggregate(sources []Source, o *output) error {
	index := make(map[string]*group)
	var groups []*group
	var cols [][]byte
	var key []byte
	var tmp value
	newGroup := func(row [][]byte) *group {
		g := &group{cols: make([][]byte, m.width), states: make([]aggState, len(m.aggs))}
		for _, c := range m.keyCols {
			if row[c] != nil {
				g.cols[c] = slices.Clone(row[c])
				if g.cols[c] == nil {
					g.cols[c] = []byte{}
				}
			}
		}
		groups = append(groups, g)
		return g
	}
	for i, src := range sources {
		for {
			_, c, err := m.next(src, i, cols)
			if err != nil {
				return err
			}
			if c == nil {
				break
			}
			cols = c
			key = key[:0]
			for _, kc := range m.keyCols {
				if err := m.cols[kc].decode(cols[kc], &tmp); err != nil {
					return fmt.Errorf("scatter merge: GROUP BY column %d: %w", kc+1, err)
				}
				key = appendKey(key, m.cols[kc].kind, &tmp)
			}
			g := index[string(key)]
			if g == nil {
				g = newGroup(cols)
				index[string(key)] = g
			}
			for a, ag := range m.aggs {
				if err := ag.combine(&g.states[a], cols, &tmp); err != nil {
					return err
				}
			}
		}
	}
	// Without GROUP BY an aggregate returns one row even over no rows at all.
	if len(groups) == 0 && len(m.keyCols) == 0 {
		newGroup(nil)
	}

	for _, g := range groups {
		for a, ag := range m.aggs {
			v, ok, err := ag.finish(nil, &g.states[a])
			if err != nil {
				return err
			}
			if ok {
				if v == nil {
					v = []byte{}
				}
				g.cols[ag.col] = v
			}
		}
	}
	if len(m.keys) > 0 {
		for _, g := range groups {
			g.vals = make([]value, len(m.keys))
			if err := m.decodeKeys(g.cols, g.vals, m.final); err != nil {
				return err
			}
		}
		slices.SortStableFunc(groups, func(a, b *group) int { return m.compareRows(a.vals, b.vals) })
	}
	for _, g := range groups {
		if err := o.row(g.cols, nil); err != nil {
			return err
		}
	}
	return nil
}
