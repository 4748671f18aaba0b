package router

import "strings"

// hintWord is what a shard key hint comment holds: /* shard_key=42 */ (or -- shard_key=42).
const hintWord = "shard_key"

// hint is the shard key a statement's comments name.
type hint struct {
	set bool  // a hint comment was found
	bad bool  // ... but its value is not an integer
	key int64 // the value
}

// hintIn looks for a shard_key hint in gap, text between two tokens that holds only
// whitespace and comments. "shard_key" must stand as a word, followed by '=' or ':' and an
// integer (optionally signed, with spaces around the '='). The first hint of gap wins.
func hintIn(gap string) hint {
	for off := 0; ; {
		k := strings.Index(gap[off:], hintWord)
		if k < 0 {
			return hint{}
		}
		i := off + k
		off = i + len(hintWord)
		if i > 0 && isIdentCont(gap[i-1]) || off < len(gap) && isIdentCont(gap[off]) {
			continue // part of a longer word
		}
		j := skipHintSpace(gap, off)
		if j >= len(gap) || gap[j] != '=' && gap[j] != ':' {
			continue // a mention, not a hint
		}
		j = skipHintSpace(gap, j+1)
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

func skipHintSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}
