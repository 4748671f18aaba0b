package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// scrubber makes live output comparable with a golden file. It replaces exactly these volatile
// parts and nothing else:
//   - host:port addresses: known ones by the name given to name (e.g. <p0-admin>), any other
//     by <addr-N> in order of first appearance;
//   - the lease age ("age 0.412s" in tables, "age_seconds": 0.412 in JSON) by <age>;
//   - durations with millisecond precision ("0.012s", only replica lags are left by then)
//     by <lag>.
//
// Tables are then realigned, since a placeholder is rarely as wide as what it replaces.
type scrubber struct {
	names   map[string]string
	unknown int
}

var (
	addrRE     = regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}:\d+\b|\[[0-9a-fA-F:]+\]:\d+`)
	ageRE      = regexp.MustCompile(`age \d+\.\d{3}s`)
	ageJSONRE  = regexp.MustCompile(`"age_seconds": [0-9.eE+-]+`)
	lagRE      = regexp.MustCompile(`\b\d+\.\d{3}s\b`)
	cellGapsRE = regexp.MustCompile(` {2,}`)
)

func newScrubber() *scrubber { return &scrubber{names: map[string]string{}} }

// name makes addr print as placeholder.
func (s *scrubber) name(addr, placeholder string) { s.names[addr] = placeholder }

// scrub replaces the volatile parts of text; with table, it realigns its columns too.
func (s *scrubber) scrub(text string, table bool) string {
	text = addrRE.ReplaceAllStringFunc(text, func(a string) string {
		if p, ok := s.names[a]; ok {
			return p
		}
		s.unknown++
		p := fmt.Sprintf("<addr-%d>", s.unknown)
		s.names[a] = p
		return p
	})
	text = ageRE.ReplaceAllString(text, "age <age>")
	text = ageJSONRE.ReplaceAllString(text, `"age_seconds": "<age>"`)
	text = lagRE.ReplaceAllString(text, "<lag>")
	if table {
		text = realign(text)
	}
	return text
}

// realign re-renders text whose cells are separated by two or more spaces through the same
// tabwriter settings shardctl uses.
func realign(text string) string {
	var b strings.Builder
	t := newTable(&b)
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		row(t, cellGapsRE.Split(line, -1)...)
	}
	_ = t.Flush()
	out := b.String()
	if !strings.HasSuffix(text, "\n") {
		out = strings.TrimSuffix(out, "\n")
	}
	return out
}

func TestScrubber(t *testing.T) {
	s := newScrubber()
	s.name("127.0.0.1:41234", "<p0-admin>")
	in := "" +
		"NAME  ADMIN            OTHER\n" +
		"p0    127.0.0.1:41234  127.0.0.1:5\n" +
		"p1    [::1]:60001      127.0.0.1:5\n" +
		"lease valid (age 0.412s of 10s), lag 12.250s, epoch 3, version v1.2.3\n" +
		`{"age_seconds": 0.0004, "ttl_seconds": 10}` + "\n"
	want := "" +
		"NAME  ADMIN       OTHER\n" +
		"p0    <p0-admin>  <addr-1>\n" +
		"p1    <addr-2>    <addr-1>\n" +
		"lease valid (age <age> of 10s), lag <lag>, epoch 3, version v1.2.3\n" +
		`{"age_seconds": "<age>", "ttl_seconds": 10}` + "\n"
	if got := s.scrub(in, true); got != want {
		t.Errorf("scrub:\n%s\nwant:\n%s", got, want)
	}
	// Numbering goes on across calls, so a placeholder means the same address everywhere.
	if got := s.scrub("127.0.0.1:7 127.0.0.1:5", false); got != "<addr-3> <addr-1>" {
		t.Errorf("second scrub = %q", got)
	}
}
