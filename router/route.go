package router

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/shardwire/shardwire/shardmap"
)

// DefaultCacheSize is the number of statement shapes a Router keeps by default.
const DefaultCacheSize = 10000

// Config configures a Router.
type Config struct {
	// CacheSize is the number of statement shapes kept (and, separately, of prepared
	// statement texts); 0 or less means DefaultCacheSize.
	CacheSize int
}

// Router plans statements against a shard map. It parses each statement shape once (with the
// Postgres parser) and keeps what it learned in a bounded cache, so that planning a shape seen
// before costs a scan of the text and no allocation. It is safe for concurrent use.
type Router struct {
	shapes   *clockCache[*template]
	prepared *clockCache[*Statement]
	seed     maphash.Seed
	// The schema fingerprints of the last maps seen: a template built for a map whose
	// Tables and Rules are the same holds for another epoch of it.
	schemas [2]atomic.Pointer[mapSchema]
	next    atomic.Uint32
	errs    *planErrors
}

type mapSchema struct {
	m  *shardmap.Map
	fp uint64
}

// New returns a Router.
func New(cfg Config) *Router {
	size := cfg.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Router{
		shapes:   newClockCache[*template](size),
		prepared: newClockCache[*Statement](size),
		seed:     maphash.MakeSeed(),
		errs:     newPlanErrors(),
	}
}

// Session is what the router needs of the client session.
type Session struct {
	// ShardKey is the value of SET shardwire.shard_key (session or LOCAL; the proxy resolves
	// which applies) when HasShardKey is set. Like a /* shard_key=N */ comment, it decides
	// the shard of every statement on sharded tables.
	ShardKey    int64
	HasShardKey bool
}

// Route plans a simple-query string of one or several statements under map m. Its plan's
// Tables, Merge and Err are shared with other plans and must not be modified.
//
// A statement on sharded tables runs on the shards of its keys: key = v, key IN (...), key =
// ANY(...) in WHERE and inner-join conditions (intersected under AND, united under OR when
// every branch has one), the key values of every row an INSERT writes, and keys in subqueries
// and CTEs — sharded tables are co-located by key, so any key the statement states decides
// for all of them. A /* shard_key=N */ comment in the statement, else sess.ShardKey, overrides
// the keys; statements on unsharded tables (or none) ignore both. Without a key a read
// scatters and a write is rejected. A string the parser rejects yields TargetReject with
// SQLSTATE 42601.
func (r *Router) Route(sql string, sess Session, m *shardmap.Map) Plan {
	fp := r.schema(m)
	scanHints := wantHints(sql)
	var accBuf [16]leafAcc
	var hintBuf [4]hint
	t, acc, hints, err := r.template(sql, m, fp, accBuf[:0], hintBuf[:0], scanHints)
	if err != nil {
		return Plan{Kind: KindOther, Target: TargetReject, Err: err, Statements: 1, NoCache: NoCacheStatement}
	}
	for _, p := range t.paramRefs {
		acc[p.leaf].flags |= accUnknown // a simple query has no parameters
	}
	return t.plan(acc, hints, sess, m)
}

// template returns the template of sql's shape, building it on a miss, with sql's key
// literals folded into acc and its hints in hints (both sized from the buffers given).
func (r *Router) template(sql string, m *shardmap.Map, fp uint64, accBuf []leafAcc, hintBuf []hint,
	scanHints bool) (*template, []leafAcc, []hint, *RouteError) {
	if strings.IndexByte(sql, 0) >= 0 {
		// Postgres takes a query as a C string; the parser would stop at the NUL.
		return nil, nil, nil, &RouteError{Code: CodeSyntaxError, Message: "the statement contains a NUL byte"}
	}
	var tokBuf [64]lexedToken
	h, toks := shapeHash(sql, tokBuf[:0])
	set := r.shapes.set(h)
	for i := range set.ways {
		e := set.ways[i].Load()
		if e == nil || e.hash != h || e.val.fp != fp {
			continue
		}
		acc, hints := e.val.buffers(accBuf, hintBuf, scanHints)
		src := newTokenSource(sql, toks)
		if e.val.bindText(sql, &src, acc, hints, scanHints) {
			e.touch()
			return e.val, acc, hints, nil
		}
	}
	t, err := buildTemplate(sql, m, fp, r.errs)
	if err != nil {
		return nil, nil, nil, err
	}
	acc, hints := t.buffers(accBuf, hintBuf, scanHints)
	src := newTokenSource(sql, toks)
	if !t.bindText(sql, &src, acc, hints, scanHints) {
		// A template always matches the text it was built from; this is a defect.
		return nil, nil, nil, &RouteError{Code: CodeFeatureNotSupported,
			Message: "the router could not read back the statement it parsed"}
	}
	r.shapes.put(h, t, func(old *template) bool { return old.fp != fp || old.sameShape(t) })
	return t, acc, hints, nil
}

// sameShape reports whether t and o are templates of the same strings (same shape and pins).
func (t *template) sameShape(o *template) bool {
	if t.shape != o.shape || len(t.pins) != len(o.pins) {
		return false
	}
	for i := range t.pins {
		if t.pins[i] != o.pins[i] {
			return false
		}
	}
	return true
}

// buffers returns the leaves' initial values for a plan of t and, when hints are looked for,
// zeroed hints, in the buffers given when they are large enough.
func (t *template) buffers(accBuf []leafAcc, hintBuf []hint, scanHints bool) ([]leafAcc, []hint) {
	var acc []leafAcc
	if n := len(t.leaves); n <= cap(accBuf) {
		acc = accBuf[:n]
	} else {
		acc = make([]leafAcc, n)
	}
	for i := range t.leaves {
		acc[i] = t.leaves[i].init
	}
	if !scanHints {
		return acc, nil
	}
	var hints []hint
	if n := len(t.stmts); n <= cap(hintBuf) {
		hints = hintBuf[:n]
	} else {
		hints = make([]hint, n)
	}
	clear(hints)
	return acc, hints
}

// schema returns the fingerprint of m's Tables and Rules, remembering the last two maps.
func (r *Router) schema(m *shardmap.Map) uint64 {
	for i := range r.schemas {
		if p := r.schemas[i].Load(); p != nil && p.m == m {
			return p.fp
		}
	}
	fp := schemaFingerprint(r.seed, m)
	r.schemas[r.next.Add(1)%uint32(len(r.schemas))].Store(&mapSchema{m: m, fp: fp})
	return fp
}

// schemaFingerprint hashes what templates depend on in a map: which tables are sharded, by
// which column, the database's read-only and immutable functions, and the rules (for CREATE
// TABLE). Group ownership is not part of it.
func schemaFingerprint(seed maphash.Seed, m *shardmap.Map) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	if m == nil {
		return h.Sum64()
	}
	var tables uint64 // order-independent: a sum of per-entry hashes
	for name, col := range m.Tables {
		var e maphash.Hash
		e.SetSeed(seed)
		e.WriteString(name)
		e.WriteByte(0)
		e.WriteString(col)
		if i, ok := m.KeyIndex[name]; ok {
			e.WriteByte(byte(i))
			e.WriteByte(byte(i >> 8))
		}
		tables += e.Sum64()
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], tables)
	binary.LittleEndian.PutUint64(b[8:], uint64(len(m.Tables)))
	h.Write(b[:])
	binary.LittleEndian.PutUint64(b[:8], funcSetHash(seed, m.ReadOnlyFunctions))
	binary.LittleEndian.PutUint64(b[8:], funcSetHash(seed, m.ImmutableFunctions))
	h.Write(b[:])
	for _, rule := range m.Rules {
		h.WriteString(rule.Table)
		h.WriteByte(0)
		h.WriteString(rule.Column)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// funcSetHash hashes a set of function names, independently of order (like tables).
func funcSetHash(seed maphash.Seed, funcs map[string]bool) uint64 {
	var sum uint64
	for name, ok := range funcs {
		if ok {
			sum += maphash.String(seed, name)
		}
	}
	return sum
}
