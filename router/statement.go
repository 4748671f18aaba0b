package router

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/shardwire/shardwire/shardmap"
)

// Params gives the bound parameters of a Bind. The proxy implements it over the raw message
// without allocating; the router reads the values only during Statement.Plan and keeps none.
type Params interface {
	// Len returns the number of parameters.
	Len() int
	// Value returns parameter i (0-based): its bytes, whether they are in binary format, and
	// whether it is NULL.
	Value(i int) (v []byte, binary bool, isNull bool)
}

// Statement is a parsed statement of the extended protocol (a Parse), shared by every session
// that prepares the same text. It is safe for concurrent use.
type Statement struct {
	sql   string
	r     *Router
	kind  Kind
	state atomic.Pointer[stmtState]
}

// stmtState is a Statement's analysis for one map schema.
type stmtState struct {
	fp    uint64
	t     *template   // nil when the text does not parse
	err   *RouteError // why it does not
	acc   []leafAcc   // the leaves with the text's own literals folded in
	hints []hint      // the text's hint comments, per statement
}

// Prepare returns the Statement for the text of a Parse under map m. Statements are cached
// by exact text; a text whose shape was seen before is not parsed again.
func (r *Router) Prepare(sql string, m *shardmap.Map) *Statement {
	fp := r.schema(m)
	h := maphash.String(r.seed, sql)
	set := r.prepared.set(h)
	for i := range set.ways {
		e := set.ways[i].Load()
		if e == nil || e.hash != h || e.val.sql != sql {
			continue
		}
		e.touch()
		st := e.val
		if st.state.Load().fp != fp {
			st.refresh(m, fp)
		}
		return st
	}
	st := &Statement{sql: sql, r: r}
	s := st.refresh(m, fp)
	st.kind = KindOther
	if s.t != nil {
		st.kind = s.t.kind
	}
	r.prepared.put(h, st, func(old *Statement) bool { return old.sql == sql })
	return st
}

// refresh analyzes the statement for the map schema fp and publishes the result.
func (st *Statement) refresh(m *shardmap.Map, fp uint64) *stmtState {
	s := &stmtState{fp: fp}
	t, acc, hints, err := st.r.template(st.sql, m, fp, nil, nil, true)
	if err != nil {
		s.err = err
	} else {
		// template returned fresh slices (no buffers were given): the state owns them.
		s.t, s.acc, s.hints = t, acc, hints
	}
	st.state.Store(s)
	return s
}

// Kind returns the statement's kind (KindOther when it does not parse).
func (st *Statement) Kind() Kind { return st.kind }

// SQL returns the statement's text.
func (st *Statement) SQL() string { return st.sql }

// Plan plans the statement for a Bind with params, in session sess, under map m. Its plan's
// Tables, Merge and Err are shared with other plans and must not be modified.
func (st *Statement) Plan(params Params, sess Session, m *shardmap.Map) Plan {
	fp := st.r.schema(m)
	s := st.state.Load()
	if s.fp != fp {
		s = st.refresh(m, fp)
	}
	if s.err != nil {
		return Plan{Kind: st.kind, Target: TargetReject, Err: s.err, Statements: 1, NoCache: NoCacheStatement}
	}
	t := s.t
	var accBuf [16]leafAcc
	acc := accBuf[:0]
	if len(s.acc) <= cap(accBuf) {
		acc = accBuf[:len(s.acc)]
	} else {
		acc = make([]leafAcc, len(s.acc))
	}
	copy(acc, s.acc)
	for _, p := range t.paramRefs {
		bindParam(&acc[p.leaf], params, p)
	}
	return t.plan(acc, s.hints, sess, m)
}

// bindParam folds the value of a bound parameter into a key leaf.
func bindParam(a *leafAcc, params Params, p paramRef) {
	if params == nil || int(p.param) >= params.Len() {
		a.flags |= accUnknown
		return
	}
	v, bin, null := params.Value(int(p.param))
	switch {
	case null:
		a.flags |= accNull
	case p.array && bin:
		a.addArrayBinary(v)
	case p.array:
		addArrayText(a, v)
	case bin:
		a.addBinary(v)
	default:
		n, ok := parseIntParam(v)
		if !ok {
			a.flags |= accBad
			return
		}
		a.addInt(n)
	}
}
