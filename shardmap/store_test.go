package shardmap

import (
	"sync"
	"testing"
)

func epochMap(epoch int64) *Map {
	m := testMap(1)
	m.Epoch = epoch
	return m
}

func TestStoreSet(t *testing.T) {
	boot := epochMap(0)
	tests := []struct {
		name    string
		initial *Map
		sets    []*Map
		taken   []bool
		final   int64
	}{
		{"forward only", epochMap(1),
			[]*Map{epochMap(2), epochMap(2), epochMap(1), epochMap(5), epochMap(4), epochMap(0)},
			[]bool{true, false, false, true, false, false}, 5},
		{"nil is never taken", epochMap(3), []*Map{nil}, []bool{false}, 3},
		{"the bootstrap map is replaced by anything", boot,
			[]*Map{epochMap(0), epochMap(7), epochMap(0)}, []bool{true, true, false}, 7},
		{"an empty store takes the first map", nil,
			[]*Map{epochMap(0), epochMap(2)}, []bool{true, true}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore(tt.initial)
			if s.Current() != tt.initial {
				t.Fatal("Current is not the initial map")
			}
			for i, m := range tt.sets {
				before := s.Current()
				if got := s.Set(m); got != tt.taken[i] {
					t.Errorf("Set #%d (%v) = %v, want %v", i, m, got, tt.taken[i])
				}
				switch {
				case tt.taken[i] && s.Current() != m:
					t.Errorf("after Set #%d Current is not the map set", i)
				case !tt.taken[i] && s.Current() != before:
					t.Errorf("a refused Set #%d changed Current", i)
				}
			}
			if got := s.Current().Epoch; got != tt.final {
				t.Errorf("final epoch %d, want %d", got, tt.final)
			}
		})
	}
}

func TestStoreNotifications(t *testing.T) {
	s := NewStore(epochMap(0))
	ch := s.Changed()
	var got []int64
	unsub := s.Subscribe(func(m *Map) {
		if s.Current() != m {
			t.Error("Current inside a callback is not the map given")
		}
		got = append(got, m.Epoch)
	})
	select {
	case <-ch:
		t.Fatal("Changed closed before any Set")
	default:
	}
	s.Set(epochMap(1))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by Set")
	}
	ch2 := s.Changed()
	s.Set(epochMap(1)) // refused: no notification
	select {
	case <-ch2:
		t.Fatal("a refused Set closed Changed")
	default:
	}
	s.Set(epochMap(2))
	<-ch2
	unsub()
	unsub() // idempotent
	s.Set(epochMap(3))
	if want := []int64{1, 2}; len(got) != len(want) || got[0] != 1 || got[1] != 2 {
		t.Errorf("subscriber saw epochs %v, want %v", got, want)
	}
}

// Concurrent Sets: the store ends at the highest epoch, and a subscriber sees strictly
// ascending epochs, one call at a time.
func TestStoreConcurrentSets(t *testing.T) {
	s := NewStore(epochMap(0))
	var (
		last    int64
		calls   int
		inside  sync.Mutex
		ordered = true
	)
	s.Subscribe(func(m *Map) {
		if !inside.TryLock() {
			t.Error("subscriber calls overlap")
			return
		}
		defer inside.Unlock()
		if m.Epoch <= last {
			ordered = false
		}
		last = m.Epoch
		calls++
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for e := int64(1); e <= 200; e++ {
				s.Set(epochMap(e*8 + int64(w)))
			}
		})
	}
	wg.Wait()
	if got := s.Current().Epoch; got != 200*8+7 {
		t.Errorf("final epoch %d, want %d", got, 200*8+7)
	}
	if !ordered || last != 200*8+7 || calls == 0 {
		t.Errorf("subscriber: ordered %v, last %d, %d calls", ordered, last, calls)
	}
}
