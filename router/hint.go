package router

import (
	"strings"
	"time"
)

// hintWord is what a shard key hint comment holds: /* shard_key=42 */ (or -- shard_key=42).
const hintWord = "shard_key"

// cacheWord is in both cache hint comments: /* nocache */ and /* cache ttl=30s */.
const cacheWord = "cache"

// hint is what a statement's comments say: the shard key they name, and the cache hints.
type hint struct {
	set bool  // a shard_key hint comment was found
	bad bool  // ... but its value is not an integer
	key int64 // the value

	noCache bool          // a nocache hint was found
	ttlSet  bool          // a cache ttl hint was found (the first one decides)
	ttl     time.Duration // its value, 0 when malformed
}

// wantHints reports whether sql may hold hint comments worth looking for.
func wantHints(sql string) bool {
	return strings.Contains(sql, hintWord) || strings.Contains(sql, cacheWord)
}

// scan reads the hints of gap, text between two tokens that holds only whitespace and
// comments, into h: the shard key unless one was found before, and the cache hints.
func (h *hint) scan(gap string) {
	if !h.set {
		k := hintIn(gap)
		h.set, h.bad, h.key = k.set, k.bad, k.key
	}
	if strings.Contains(gap, cacheWord) {
		h.scanCache(gap)
	}
}

// hintIn looks for a shard_key hint in gap, text between two tokens that holds only
// whitespace and comments. "shard_key" must stand as a word, followed by '=' or ':' and an
// integer (optionally signed, with spaces around the '='). The first hint of gap wins.
func hintIn(gap string) hint {
	for off := 0; ; {
		i, ok := wordIn(gap, hintWord, &off)
		if !ok {
			return hint{}
		}
		j, ok := hintValue(gap, i+len(hintWord))
		if !ok {
			continue // a mention, not a hint
		}
		start := j
		if j < len(gap) && (gap[j] == '-' || gap[j] == '+') {
			j++
		}
		for j < len(gap) && (isIdentCont(gap[j]) || gap[j] == '.') {
			j++
		}
		v, ok := parseIntText(gap[start:j], false)
		if !ok {
			return hint{set: true, bad: true}
		}
		return hint{set: true, key: v}
	}
}

// scanCache reads the cache hints of gap into h: the word "nocache", and "cache ttl=D" where
// D is a Go duration (30s, 1m30s, 1.5h) or a number of seconds (30). A malformed duration
// counts as a ttl hint of 0 (none); only the first ttl hint counts.
func (h *hint) scanCache(gap string) {
	if !h.noCache {
		off := 0
		_, h.noCache = wordIn(gap, "nocache", &off)
	}
	for off := 0; !h.ttlSet; {
		i, ok := wordIn(gap, cacheWord, &off)
		if !ok {
			return
		}
		j := skipHintSpace(gap, i+len(cacheWord))
		if !strings.HasPrefix(gap[j:], "ttl") || j+3 < len(gap) && isIdentCont(gap[j+3]) {
			continue
		}
		j, ok = hintValue(gap, j+3)
		if !ok {
			continue
		}
		start := j
		for j < len(gap) && (isIdentCont(gap[j]) || gap[j] == '.') {
			j++
		}
		h.ttlSet, h.ttl = true, parseTTL(gap[start:j])
	}
}

// wordIn finds word in s at or after *off as a word of its own (not part of a longer
// identifier), and moves *off past it.
func wordIn(s, word string, off *int) (int, bool) {
	for {
		k := strings.Index(s[*off:], word)
		if k < 0 {
			return 0, false
		}
		i := *off + k
		*off = i + len(word)
		if i > 0 && isIdentCont(s[i-1]) || *off < len(s) && isIdentCont(s[*off]) {
			continue // part of a longer word
		}
		return i, true
	}
}

// hintValue expects, at i in s, optional spaces, '=' or ':' and optional spaces, and returns
// where the value after them starts.
func hintValue(s string, i int) (int, bool) {
	j := skipHintSpace(s, i)
	if j >= len(s) || s[j] != '=' && s[j] != ':' {
		return 0, false
	}
	return skipHintSpace(s, j+1), true
}

// parseTTL reads a cache ttl hint's value: a positive Go duration ("30s", "1m30s", "250ms")
// or a whole number of seconds ("30"); 0 when it is neither.
func parseTTL(s string) time.Duration {
	if s == "" {
		return 0
	}
	if allDigits(s) {
		v, ok := parseIntToken(s, false)
		if !ok || v > int64(1<<63-1)/int64(time.Second) {
			return 0
		}
		return time.Duration(v) * time.Second
	}
	if !durationSyntax(s) {
		return 0 // checked first: time.ParseDuration allocates its error
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

// durationSyntax reports whether s is a sequence of decimal numbers, each with an optional
// fraction and a unit (ns, us, µs, μs, ms, s, m, h), as time.ParseDuration reads them unsigned.
func durationSyntax(s string) bool {
	for s != "" {
		i := 0
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		digits := i
		if i < len(s) && s[i] == '.' {
			i++
			for ; i < len(s) && isDigit(s[i]); i++ {
				digits++
			}
		}
		if digits == 0 {
			return false
		}
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "ns"), strings.HasPrefix(s, "us"), strings.HasPrefix(s, "ms"):
			s = s[2:]
		case strings.HasPrefix(s, "µs"), strings.HasPrefix(s, "μs"):
			s = s[len("µs"):]
		case strings.HasPrefix(s, "s"), strings.HasPrefix(s, "m"), strings.HasPrefix(s, "h"):
			s = s[1:]
		default:
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func skipHintSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}
