package health

import "time"

// claim is what the election knows of one endpoint of a group.
type claim struct {
	// writable: the endpoint's latest answer was pg_is_in_recovery() = false (it may be down
	// since; a writer that stopped answering stays the writer until another one answers).
	writable   bool
	up         bool
	timeline   uint32
	promotedAt time.Time // when this checker saw it leave recovery; zero if never
}

// electWriter returns the index of the group's writer among claims, or -1 when no endpoint
// has claimed to be writable (then the configured writer stands).
//
// With one claimant the choice is plain. With several (split brain: a replica was promoted
// while the old writer still runs), the newest history wins: the higher timeline, then the
// later observed promotion. Only then does being up count, then staying with the current
// writer (no flapping between equals), then configuration order.
func electWriter(claims []claim, current int) int {
	best := -1
	for i := range claims {
		if !claims[i].writable {
			continue
		}
		if best < 0 || better(claims, i, best, current) {
			best = i
		}
	}
	return best
}

// better reports whether claim i beats claim j.
func better(claims []claim, i, j, current int) bool {
	a, b := &claims[i], &claims[j]
	switch {
	case a.timeline != b.timeline:
		return a.timeline > b.timeline
	case !a.promotedAt.Equal(b.promotedAt):
		return a.promotedAt.After(b.promotedAt)
	case a.up != b.up:
		return a.up
	case i == current || j == current:
		return i == current
	}
	return i < j
}

// writableCount returns how many claims are writable and up: more than one is a split brain.
func writableCount(claims []claim) int {
	n := 0
	for i := range claims {
		if claims[i].writable && claims[i].up {
			n++
		}
	}
	return n
}
