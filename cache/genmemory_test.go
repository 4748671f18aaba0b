package cache

import (
	"testing"
	"time"
)

func TestGenMemory(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const ttl = 250 * time.Millisecond
	v := func(n uint64) GenValue { return GenValue{V: n, Group: "g0", LSN: n * 10} }
	type step func(m *genMemory, st map[string]uint64)
	begin := func(name string) step { return func(m *genMemory, st map[string]uint64) { st[name] = m.begin() } }
	store := func(op, key string, val uint64, epoch string) step {
		return func(m *genMemory, st map[string]uint64) {
			m.store([]string{key}, []GenValue{v(val)}, st[op], t0, epoch)
		}
	}
	cases := []struct {
		name  string
		steps []step
		at    time.Time
		key   string
		want  uint64 // 0: not served
	}{
		{"served while subscribed", []step{begin("f"), store("f", "k", 5, "e1")}, t0, "k", 5},
		{"expires after staleness", []step{begin("f"), store("f", "k", 5, "e1")}, t0.Add(ttl), "k", 0},
		{"fresh just before staleness", []step{begin("f"), store("f", "k", 5, "e1")}, t0.Add(ttl - time.Millisecond), "k", 5},
		{"message deletes", []step{begin("f"), store("f", "k", 5, "e1"),
			func(m *genMemory, _ map[string]uint64) { m.invalidate([]string{"k"}, t0) }}, t0, "k", 0},
		{"message during a fetch drops its result", []step{begin("f"),
			func(m *genMemory, _ map[string]uint64) { m.invalidate([]string{"k"}, t0) },
			store("f", "k", 5, "e1")}, t0, "k", 0},
		{"message about another key does not", []step{begin("f"),
			func(m *genMemory, _ map[string]uint64) { m.invalidate([]string{"other"}, t0) },
			store("f", "k", 5, "e1")}, t0, "k", 5},
		{"clear during a fetch drops its result", []step{begin("f"),
			func(m *genMemory, _ map[string]uint64) { m.clear() },
			store("f", "k", 5, "e1")}, t0, "k", 0},
		{"older fetch finishing after a bump keeps the bump", []step{begin("f"), begin("b"),
			store("b", "k", 6, "e1"), store("f", "k", 5, "e1")}, t0, "k", 6},
		{"bump finishing after a newer fetch keeps the larger", []step{begin("b"), begin("f"),
			store("f", "k", 7, "e1"), store("b", "k", 6, "e1")}, t0, "k", 7},
		{"later operation replaces an older value", []step{begin("f"), store("f", "k", 5, "e1"),
			begin("b"), store("b", "k", 6, "e1")}, t0, "k", 6},
		{"new epoch forgets the old one's values", []step{begin("f"), store("f", "k", 9, "e1"),
			begin("g"), store("g", "other", 3, "e2")}, t0, "k", 0},
		{"new epoch value below the old one is kept", []step{begin("f"), store("f", "k", 9, "e1"),
			begin("g"), store("g", "k", 3, "e2")}, t0, "k", 3},
		{"old-epoch result begun before the switch is dropped", []step{begin("old"), begin("new"),
			store("new", "k", 3, "e2"), store("old", "k", 9, "e1")}, t0, "k", 3},
		{"unsubscribed memory serves nothing", []step{
			func(m *genMemory, _ map[string]uint64) { m.enable(false) },
			begin("f"), store("f", "k", 5, "e1")}, t0, "k", 0},
		{"resubscription clears", []step{begin("f"), store("f", "k", 5, "e1"),
			func(m *genMemory, _ map[string]uint64) { m.enable(true) }}, t0, "k", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newGenMemory(ttl, time.Second)
			m.enable(true)
			st := map[string]uint64{}
			for _, s := range tc.steps {
				s(m, st)
			}
			dst := make([]GenValue, 1)
			_, missing := m.lookup([]string{tc.key}, dst, tc.at, nil)
			switch {
			case tc.want == 0 && len(missing) == 0:
				t.Fatalf("served %+v, want a miss", dst[0])
			case tc.want != 0 && len(missing) != 0:
				t.Fatalf("missed, want %d", tc.want)
			case tc.want != 0 && dst[0] != v(tc.want):
				t.Fatalf("served %+v, want %+v", dst[0], v(tc.want))
			}
		})
	}
}

func TestGenMemorySweep(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newGenMemory(100*time.Millisecond, time.Second)
	m.enable(true)
	m.store([]string{"a", "b"}, []GenValue{{V: 1}, {V: 2}}, m.begin(), t0, "e")
	m.invalidate([]string{"b"}, t0)
	if n := m.held(); n != 1 {
		t.Fatalf("held %d values, want 1", n)
	}
	m.sweep(t0.Add(200 * time.Millisecond))
	if len(m.m) != 1 || !m.m["b"].tomb {
		t.Fatalf("after the value's staleness: %+v, want only b's tombstone", m.m)
	}
	// The tombstone still stops a result begun before it.
	m.sweep(t0.Add(2 * time.Second))
	if len(m.m) != 0 {
		t.Fatalf("after the tombstone's life: %+v, want empty", m.m)
	}
}
