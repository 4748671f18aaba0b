package merge

import (
	"container/heap"
	"fmt"
)

// cursor is one source in the k-way merge: its current row (copied, since a Source's frame
// is valid only until its next call), double-buffered to check that the source's rows come
// in the merge's order.
type cursor struct {
	m     *Merger
	src   Source
	index int
	bufs  [2][]byte
	cols  [2][][]byte
	vals  [2][]value
	cur   int  // which buffer holds the current row
	has   bool // a current row exists
}

// advance reads the source's next row; at the end has becomes false.
func (c *cursor) advance() error {
	n := 1 - c.cur
	f, cols, err := c.m.next(c.src, c.index, c.cols[n])
	if err != nil {
		return err
	}
	if cols == nil {
		c.has = false
		return nil
	}
	c.bufs[n] = append(c.bufs[n][:0], f...)
	// Re-split the copy so that the values alias it, not the source's frame.
	if c.cols[n], err = splitDataRow(c.bufs[n], cols); err != nil {
		return err
	}
	if c.vals[n] == nil {
		c.vals[n] = make([]value, len(c.m.keys))
	}
	if err := c.m.decodeKeys(c.cols[n], c.vals[n], c.m.cols); err != nil {
		return err
	}
	if c.has && c.m.compareRows(c.vals[c.cur], c.vals[n]) > 0 {
		return &Error{Code: codeDatatypeMismatch, Message: fmt.Sprintf(
			"scatter merge: shard group %d returned rows out of the merge's order (ORDER BY text under a collation other than C?)", c.index)}
	}
	c.cur, c.has = n, true
	return nil
}

// cursorHeap is a min-heap of cursors by their current rows, ties by source index.
type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if c := a.m.compareRows(a.vals[a.cur], b.vals[b.cur]); c != 0 {
		return c < 0
	}
	return a.index < b.index
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// runSorted merges the sources' sorted rows with a heap holding one row per source.
func (m *Merger) runSorted(sources []Source, o *output) error {
	h := make(cursorHeap, 0, len(sources))
	for i, src := range sources {
		c := &cursor{m: m, src: src, index: i}
		if err := c.advance(); err != nil {
			return err
		}
		if c.has {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		c := h[0]
		var frame []byte
		if m.width == m.visible {
			frame = c.bufs[c.cur]
		}
		if err := o.row(c.cols[c.cur], frame); err != nil {
			return err
		}
		if err := c.advance(); err != nil {
			return err
		}
		if c.has {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}
