package proxy

import (
	"slices"
	"strings"

	"github.com/shardwire/shardwire/router"
)

// settings is an immutable set of session settings a client has made: for each setting, the
// statement that re-applies it and the one that undoes it. Values are replaced, never mutated,
// so a backend connection can record which value it carries by pointer.
type settings struct {
	items []setting // sorted by name
	// unknown marks a backend whose state the proxy cannot name (after a client's RESET of a
	// parameter it gave at startup: the backend's default differs from the client's).
	unknown bool
}

type setting struct {
	name     string
	setSQL   string
	resetSQL string
}

var (
	emptySettings   = &settings{}
	unknownSettings = &settings{unknown: true}
)

// with returns the settings after changes, in order; s itself is unchanged. A RESET returns a
// setting to its value in startup (the client's startup parameters), as Postgres does for
// parameters given at connection start; resetsStartup reports that this happened.
func (s *settings) with(changes []router.SettingChange, startup *settings) (out *settings, resetsStartup bool) {
	items := slices.Clone(s.items)
	for _, c := range changes {
		switch c.Kind {
		case router.ChangeResetAll:
			items = append(items[:0], startup.items...)
			resetsStartup = resetsStartup || len(startup.items) > 0
		case router.ChangeSet:
			i, found := slices.BinarySearchFunc(items, c.Name, cmpSetting)
			st := setting{name: c.Name, setSQL: c.SetSQL, resetSQL: c.ResetSQL}
			if found {
				items[i] = st
			} else {
				items = slices.Insert(items, i, st)
			}
		case router.ChangeReset:
			i, found := slices.BinarySearchFunc(items, c.Name, cmpSetting)
			j, atStartup := slices.BinarySearchFunc(startup.items, c.Name, cmpSetting)
			switch {
			case atStartup && found:
				items[i] = startup.items[j]
				resetsStartup = true
			case atStartup:
				items = slices.Insert(items, i, startup.items[j])
				resetsStartup = true
			case found:
				items = slices.Delete(items, i, i+1)
			}
		}
	}
	return &settings{items: items}, resetsStartup
}

func cmpSetting(s setting, name string) int { return strings.Compare(s.name, name) }

// equal reports whether both sets apply the same statements.
func (s *settings) equal(o *settings) bool {
	if s == o {
		return true
	}
	return !s.unknown && !o.unknown && slices.Equal(s.items, o.items)
}

// transitionSQL returns the statements (one simple-query string) that turn a connection
// carrying from into one carrying to; "" when nothing differs. RESETs come first so a setting
// reset and set again in one step ends at its new value.
func transitionSQL(from, to *settings) string {
	if from.unknown {
		var b strings.Builder
		b.WriteString("RESET ALL;")
		for _, t := range to.items {
			b.WriteString(t.setSQL)
			b.WriteString(";")
		}
		return b.String()
	}
	if from.equal(to) {
		return ""
	}
	var b strings.Builder
	for _, f := range from.items {
		if _, found := slices.BinarySearchFunc(to.items, f.name, cmpSetting); !found {
			b.WriteString(f.resetSQL)
			b.WriteString(";")
		}
	}
	for _, t := range to.items {
		i, found := slices.BinarySearchFunc(from.items, t.name, cmpSetting)
		if found && from.items[i].setSQL == t.setSQL {
			continue
		}
		b.WriteString(t.setSQL)
		b.WriteString(";")
	}
	return b.String()
}
