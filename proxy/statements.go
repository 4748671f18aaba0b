package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
)

// statement is one distinct prepared statement (query text and parameter types), shared by
// every client that prepares the same thing. Backends know it by its internal name.
type statement struct {
	name    string
	frame   []byte // a Parse message preparing it under name
	effects router.SessionEffects
	// valid is set once a backend accepted the Parse; from then on a client's Parse of it is
	// answered by the proxy without a backend, and backends prepare it lazily on first use.
	valid atomic.Bool
}

// statementRegistry maps statement text and parameter types to the shared statement. It is
// bounded: when full it starts over, and statements already held by clients stay valid because
// internal names are never reused.
type statementRegistry struct {
	mu    sync.Mutex
	byKey map[string]*statement
	seq   uint64
	max   int
}

func newStatementRegistry(max int) *statementRegistry {
	return &statementRegistry{byKey: make(map[string]*statement), max: max}
}

// lookup returns the statement for a Parse body's part after the client's name (query text,
// NUL, parameter type count and OIDs). It allocates only for a statement seen the first time.
func (r *statementRegistry) lookup(rest []byte) *statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.byKey[string(rest)]; ok {
		return st
	}
	if len(r.byKey) >= r.max {
		clear(r.byKey)
	}
	r.seq++
	name := "sw_" + strconv.FormatUint(r.seq, 36)
	frame := wire.AppendHeader(nil, wire.Parse, len(name)+1+len(rest))
	frame = append(frame, name...)
	frame = append(frame, 0)
	frame = append(frame, rest...)
	query, _, _ := wire.CString(rest)
	st := &statement{name: name, frame: frame, effects: router.AnalyzeSession(string(query))}
	r.byKey[string(rest)] = st
	return st
}

// unnamedStatement is a client's current unnamed statement, kept so that a Bind arriving on a
// different backend than its Parse can be prepared there first.
type unnamedStatement struct {
	frame   []byte // the client's Parse message, verbatim
	effects router.SessionEffects
	// checked: a backend accepted it (on a side connection, while a BEGIN was held).
	checked bool
}

// appendRenamed appends a message of type typ made of prefix (what precedes the name: a Bind's
// portal field, or the kind byte of Describe and Close), the name, and rest.
func appendRenamed(dst []byte, typ byte, prefix []byte, name string, rest []byte) []byte {
	dst = wire.AppendHeader(dst, typ, len(prefix)+len(name)+1+len(rest))
	dst = append(dst, prefix...)
	dst = append(dst, name...)
	dst = append(dst, 0)
	return append(dst, rest...)
}
