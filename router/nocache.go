package router

import (
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// NoCacheReason says why a statement's result may not be cached, as far as the statement
// itself decides: CacheOK when it may. Whether it is cached is then the proxy's decision
// (configured tables, transactions, session state).
type NoCacheReason uint8

// Reasons, checked in this order (the first that applies is reported): the statement,
// locking, system tables, functions, then a nocache hint.
const (
	// CacheOK: the statement is one plain read whose result depends on nothing but the rows
	// it reads and the session settings the cache key covers.
	CacheOK NoCacheReason = iota
	// NoCacheStatement: not one plain read. Several statements, none, anything but a
	// SELECT, VALUES or TABLE (writes, DDL, EXPLAIN, SHOW, COPY, cursors, ...), SELECT INTO, a
	// data-modifying CTE, or a statement the router rejects.
	NoCacheStatement
	// NoCacheFunction: calls a function that is not IMMUTABLE (now(), random(), nextval(),
	// to_char, a user function not in the map's ImmutableFunctions), uses an SQL value
	// function (CURRENT_USER, CURRENT_DATE, LOCALTIMESTAMP, ...), or samples a table
	// (TABLESAMPLE).
	NoCacheFunction
	// NoCacheLocking: a locking clause (FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY
	// SHARE).
	NoCacheLocking
	// NoCacheSystemTable: names a catalog or temporary relation: one in schema pg_catalog,
	// information_schema, pg_toast* or pg_temp*, or one named pg_*.
	NoCacheSystemTable
	// NoCacheHint: a /* nocache */ comment.
	NoCacheHint
)

var noCacheNames = [...]string{"ok", "statement", "function", "locking", "system_table", "hint"}

// String returns the reason's metric label: "ok", "statement", "function", "locking",
// "system_table" or "hint".
func (r NoCacheReason) String() string {
	if int(r) < len(noCacheNames) {
		return noCacheNames[r]
	}
	return fmt.Sprintf("NoCacheReason(%d)", uint8(r))
}

// MarshalText writes the reason's label.
func (r NoCacheReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a reason's label.
func (r *NoCacheReason) UnmarshalText(b []byte) error {
	for i, n := range noCacheNames {
		if n == string(b) {
			*r = NoCacheReason(i)
			return nil
		}
	}
	return fmt.Errorf("router: unknown no-cache reason %q", b)
}

// cacheReason is what a walked statement n (whose walk filled b.info) says about caching its
// result, before hints.
func (b *builder) cacheReason(n *pg.Node, st *stmtTemplate) NoCacheReason {
	in := &b.info
	switch {
	case n.GetSelectStmt() == nil || st.target == TargetReject || in.into || in.modifying:
		return NoCacheStatement
	case in.lock:
		return NoCacheLocking
	case in.system:
		return NoCacheSystemTable
	case in.volatile:
		return NoCacheFunction
	}
	return CacheOK
}

// cacheSystemTable reports whether a relation named schema.name (lower case, schema "" when
// unqualified) is a catalog or a temporary relation, whose contents a cache must not keep.
func cacheSystemTable(schema, name string) bool {
	switch {
	case schema == "pg_catalog", schema == "information_schema",
		strings.HasPrefix(schema, "pg_toast"), strings.HasPrefix(schema, "pg_temp"):
		return true
	}
	return strings.HasPrefix(name, "pg_")
}

// immutableCall reports whether a call of the function schema.name (schema "" when
// unqualified; names as the parser gives them) is known to be IMMUTABLE: a built-in whose
// every overload is (see immutableBuiltin), or a function of the database's own that the map
// lists in ImmutableFunctions. An unqualified built-in name that the database also has as a
// non-immutable function of its own (a read-only one in the map) is not: the call may resolve
// to that one.
func (b *builder) immutableCall(schema, name string) bool {
	var user, readOnly bool
	if b.m != nil {
		lower := strings.ToLower(name)
		user, readOnly = b.m.ImmutableFunctions[lower], b.m.ReadOnlyFunctions[lower]
	}
	switch schema {
	case "pg_catalog":
		return immutableBuiltin(name)
	case "":
		if immutableBuiltin(name) {
			return user || !readOnly
		}
	}
	return user
}
