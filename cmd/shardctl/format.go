package main

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// newTable returns a tabwriter for aligned columns separated by two spaces. Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes cells as one tab-separated table row.
func row(w io.Writer, cells ...string) {
	_, _ = io.WriteString(w, strings.Join(cells, "\t")+"\n")
}

// shardSet writes shards as a set with consecutive runs compressed: {0-3,8,10-11}, or {}.
func shardSet(shards []int) string {
	s := slices.Clone(shards)
	slices.Sort(s)
	s = slices.Compact(s)
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	b.WriteByte('}')
	return b.String()
}

// orDash returns s, or "-" when it is empty, so that no table cell is blank.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// yesNo writes a boolean for a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// seconds writes a duration in seconds with millisecond precision: "0.012s".
func seconds(v float64) string {
	return strconv.FormatFloat(v, 'f', 3, 64) + "s"
}

// lag writes a replica's lag, "-" when unknown.
func lag(v *float64) string {
	if v == nil {
		return "-"
	}
	return seconds(*v)
}
