package cdc

import (
	"maps"
	"slices"

	"github.com/shardwire/shardwire/cache"
)

// maxCustomersPerTable bounds the customers one transaction collects for one table; a
// transaction that writes more (a bulk load, a mass update) bumps the whole table instead,
// which is exact too and keeps Bump's work bounded.
const maxCustomersPerTable = 1024

// changeSet collects what one transaction wrote, per table. Not safe for concurrent use.
type changeSet struct {
	tables map[string]*tableChange
}

// tableChange is what one transaction wrote in one table.
type tableChange struct {
	cacheable bool   // false: the table is not cached; nothing is recorded for it
	sharded   bool   // the table has a shard-key column
	keyColumn string // that column, when sharded
	whole     bool   // customers unknown: the whole table is touched
	customers map[int64]struct{}
}

// table returns the entry of table, asking cfg about the table on its first use in the
// transaction.
func (s *changeSet) table(name string, keyColumn func(string) (string, bool), cacheable func(string) bool) *tableChange {
	if t, ok := s.tables[name]; ok {
		return t
	}
	if s.tables == nil {
		s.tables = make(map[string]*tableChange)
	}
	t := &tableChange{cacheable: cacheable(name)}
	if t.cacheable {
		t.keyColumn, t.sharded = keyColumn(name)
		t.whole = !t.sharded // an unsharded table has only a table generation
	}
	s.tables[name] = t
	return t
}

// addCustomer records a row of customer c.
func (t *tableChange) addCustomer(c int64) {
	if !t.cacheable || t.whole {
		return
	}
	if t.customers == nil {
		t.customers = make(map[int64]struct{})
	}
	t.customers[c] = struct{}{}
	if len(t.customers) > maxCustomersPerTable {
		t.addWhole()
	}
}

// addWhole records a change whose customers are unknown.
func (t *tableChange) addWhole() {
	if !t.cacheable {
		return
	}
	t.whole = true
	t.customers = nil
}

// touches returns one Touch per cacheable table written, ordered by table name, with
// customers in ascending order; nil when nothing cacheable was written.
func (s *changeSet) touches(db string) []cache.Touch {
	var out []cache.Touch
	for _, name := range slices.Sorted(maps.Keys(s.tables)) {
		t := s.tables[name]
		switch {
		case !t.cacheable:
		case t.whole:
			out = append(out, cache.Touch{DB: db, Table: name, Sharded: t.sharded})
		case len(t.customers) > 0:
			out = append(out, cache.Touch{DB: db, Table: name, Sharded: true,
				Customers: slices.Sorted(maps.Keys(t.customers))})
		}
	}
	return out
}

// reset forgets everything, for the next transaction.
func (s *changeSet) reset() { clear(s.tables) }
