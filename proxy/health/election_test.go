package health

import (
	"testing"
	"time"
)

func TestElectWriter(t *testing.T) {
	t0 := time.Now()
	writer := claim{writable: true, up: true, timeline: 1}
	replica := claim{up: true}
	down := func(c claim) claim { c.up = false; return c }
	promoted := func(tl uint32, after time.Duration) claim {
		return claim{writable: true, up: true, timeline: tl, promotedAt: t0.Add(after)}
	}
	tests := []struct {
		name    string
		claims  []claim
		current int
		want    int
	}{
		{name: "nothing known yet", claims: []claim{{}, {}, {}}, current: -1, want: -1},
		{name: "everything in recovery", claims: []claim{replica, replica}, current: 0, want: -1},
		{name: "the configured writer", claims: []claim{writer, replica, replica}, current: -1, want: 0},
		{name: "writer down stays the writer", claims: []claim{down(writer), replica, replica}, current: 0, want: 0},
		{name: "promoted replica after the writer stopped", claims: []claim{down(writer), promoted(2, 0), replica}, current: 0, want: 1},
		{name: "split brain: the higher timeline wins", claims: []claim{writer, promoted(2, 0), replica}, current: 0, want: 1},
		{name: "split brain: higher timeline wins even when down", claims: []claim{writer, down(promoted(2, 0))}, current: 1, want: 1},
		{name: "same timeline: the latest promotion wins", claims: []claim{down(promoted(2, 0)), replica, promoted(2, time.Second)}, current: 0, want: 2},
		{name: "equal claims: the current writer stays", claims: []claim{writer, writer}, current: 1, want: 1},
		{name: "equal claims, no current: configuration order", claims: []claim{replica, writer, writer}, current: -1, want: 1},
		{name: "equal claims: an up one beats a down one", claims: []claim{down(writer), writer}, current: 0, want: 1},
	}
	for _, tt := range tests {
		if got := electWriter(tt.claims, tt.current); got != tt.want {
			t.Errorf("%s: electWriter = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestWritableCount(t *testing.T) {
	claims := []claim{{writable: true, up: true}, {writable: true}, {up: true}, {writable: true, up: true}}
	if got := writableCount(claims); got != 2 {
		t.Errorf("writableCount = %d, want 2", got)
	}
}
