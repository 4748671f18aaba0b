package router

import (
	"sort"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// template is what parsing one SQL string taught about every string of its shape: per
// statement its kind and where it runs, and where the shard keys are. It is immutable once
// built and shared by every plan of the shape; planning a string of the shape reads the key
// literals from the string's own tokens (bindText) and evaluates the key tree.
type template struct {
	shape string // the encoded shape (see shape.go), compared on every cache hit
	fp    uint64 // schema fingerprint of the map it was built for

	litRefs   []litRef   // key values in literal tokens, by literal index
	pins      []pin      // literals the plan depends on beyond keys: must match exactly
	paramRefs []paramRef // key values in bound parameters
	leaves    []leafSpec
	nodes     []keyNode
	stmts     []stmtTemplate

	tables []string // every table named, lower case, sorted; shared by plans
	kind   Kind     // the strongest kind of the statements
	tx     TxFlags

	tableSet map[string]bool // while building
}

// litRef says that literal token lit holds a value of key leaf leaf.
type litRef struct {
	lit   int32
	leaf  int32
	neg   bool // a minus sign precedes the number
	array bool // the literal is an array of keys ('{1,2}')
}

// pin is a literal whose text the template depends on (a LIMIT or an ORDER BY position of a
// scatter, an EXPLAIN option): a string whose literal differs is another shape.
type pin struct {
	lit  int32
	text string
}

// paramRef says that bound parameter param (0-based) holds a value of key leaf leaf.
type paramRef struct {
	param int32
	leaf  int32
	array bool
}

// leafSpec is one key leaf: its values fixed in the statement (NULL, TRUE, ...) and the
// errors a bad value yields.
type leafSpec struct {
	init    leafAcc
	badErr  *RouteError
	nullErr *RouteError
}

// stmtTemplate is one statement of a template.
type stmtTemplate struct {
	kind Kind
	// target is where the statement runs when it does not depend on keys; TargetShards means
	// that it reads or writes sharded tables and its keys (or a hint) decide.
	target Target
	err    *RouteError // target == TargetReject
	tx     TxFlags

	// For target == TargetShards:
	root       int32   // key tree node of every key the statement states, or -1
	required   []int32 // nodes that must be known for the statement to count as keyed
	keyless    bool    // a part of the statement has no usable key whatever the values
	checks     []int32 // leaves whose shards must lie in the target (UPDATE SET key = v)
	fallback   Target  // without a key or hint: TargetScatter or TargetReject
	fallErr    *RouteError
	merge      *MergeSpec
	startTok   int32 // index of the statement's first token (hints before it belong to it)
	moveErr    *RouteError
	unknownErr *RouteError
}

func (t *template) addTable(name string) {
	if !t.tableSet[name] {
		t.tableSet[name] = true
		t.tables = append(t.tables, name)
	}
}

// combine returns a node of op over kids (-1 when there are none; the kid itself when alone).
func (t *template) combine(op keyOp, kids []int32) int32 {
	switch len(kids) {
	case 0:
		return -1
	case 1:
		return kids[0]
	}
	return t.combineAll(op, kids)
}

// combineAll returns a new node of op over kids, even when there are none or one.
func (t *template) combineAll(op keyOp, kids []int32) int32 {
	t.nodes = append(t.nodes, keyNode{op: op, kids: kids})
	return int32(len(t.nodes) - 1)
}

// pin modes of a statement (see builder.statement).
const (
	pinNone   = iota
	pinAll    // every literal that is not a key value
	pinOutside // every literal that is not a key value nor written in pinWhere's tree
)

// buildTemplate parses sql and builds its template for map m (whose schema fingerprint is fp).
// A syntax error is returned as a RouteError; such strings are not cached.
func buildTemplate(sql string, m *shardmap.Map, fp uint64) (*template, *RouteError) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, &RouteError{Code: CodeSyntaxError, Message: err.Error()}
	}
	if m == nil {
		m = &shardmap.Map{}
	}
	toks, shape := tokenize(sql)
	t := &template{shape: shape, fp: fp, tableSet: map[string]bool{}}
	b := &builder{m: m, sql: sql, toks: toks, t: t, keyLits: map[int32]bool{}, colErrs: map[string][2]*RouteError{}}
	starts := make([]int, len(tree.Stmts))
	for i, raw := range tree.Stmts {
		starts[i] = b.tokenAt(raw.StmtLocation)
	}
	var best, lastTx Kind
	for i, raw := range tree.Stmts {
		b.info, b.levels, b.ctes, b.keyCols = stmtInfo{}, b.levels[:0], b.ctes[:0], b.keyCols[:0]
		b.pinMode, b.pinWhere = pinNone, nil
		st := b.statement(raw.Stmt)
		st.startTok = int32(starts[i])
		end := len(toks)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		b.addPins(starts[i], end)
		t.stmts = append(t.stmts, st)
		t.tx |= st.tx
		switch {
		case st.kind == KindBegin || st.kind == KindCommit || st.kind == KindRollback:
			lastTx = st.kind
		case kindRank(st.kind) > kindRank(best):
			best = st.kind
		}
	}
	switch {
	case best != 0:
		t.kind = best
	case lastTx != 0:
		t.kind = lastTx
	default:
		t.kind = KindRead // nothing but comments: runs anywhere
	}
	sort.SliceStable(t.litRefs, func(i, j int) bool { return t.litRefs[i].lit < t.litRefs[j].lit })
	sort.Slice(t.pins, func(i, j int) bool { return t.pins[i].lit < t.pins[j].lit })
	sort.Strings(t.tables)
	t.tableSet = nil
	return t, nil
}

// kindRank orders kinds for a multi-statement string: Write > DDL > Other > Read > Session >
// Savepoint (transaction control is recorded in TxControl).
func kindRank(k Kind) int {
	switch k {
	case KindWrite:
		return 6
	case KindDDL:
		return 5
	case KindOther:
		return 4
	case KindRead:
		return 3
	case KindSession:
		return 2
	case KindSavepoint:
		return 1
	}
	return 0
}

// addPins pins the literals of tokens [start, end) as the statement's pin mode says.
func (b *builder) addPins(start, end int) {
	if b.pinMode == pinNone {
		return
	}
	var where map[int32]bool
	if b.pinMode == pinOutside && b.pinWhere != nil {
		where = map[int32]bool{}
		for _, l := range b.literalsOf(b.pinWhere) {
			where[l] = true
		}
	}
	for _, tk := range b.toks[start:end] {
		if tk.lit < 0 || b.keyLits[tk.lit] || where[tk.lit] {
			continue
		}
		b.t.pins = append(b.t.pins, pin{lit: tk.lit, text: b.sql[tk.start:tk.end]})
	}
}

// bindText checks that sql has t's shape and, on the way, folds sql's key literals into acc
// (which holds the leaves' initial values) and, when scanHints is set, records the first
// shard_key hint comment of each statement in hints. It returns false, leaving acc and hints
// in an undefined state, when sql is not of t's shape.
func (t *template) bindText(sql string, src *tokenSource, acc []leafAcc, hints []hint, scanHints bool) bool {
	shape := t.shape
	pos, lit, ri, pi, stmt := 0, int32(0), 0, 0, 0
	for tokIdx := int32(0); ; tokIdx++ {
		tk, gap, head, class := src.next()
		if scanHints && len(hints) > 0 {
			for stmt+1 < len(t.stmts) && t.stmts[stmt+1].startTok <= tokIdx {
				stmt++
			}
			if gap < tk.start && !hints[stmt].set {
				hints[stmt] = hintIn(sql[gap:tk.start])
			}
		}
		if tk.kind == tokEOF {
			if head&headOpen != 0 {
				return pos+1 == len(shape) && shape[pos] == head
			}
			return pos == len(shape)
		}
		if pos >= len(shape) || shape[pos] != head {
			return false
		}
		pos++
		text := sql[tk.start:tk.end]
		if class != 0 {
			if pos >= len(shape) || shape[pos] != class {
				return false
			}
			pos++
			for ; pi < len(t.pins) && t.pins[pi].lit == lit; pi++ {
				if t.pins[pi].text != text {
					return false
				}
			}
			for ; ri < len(t.litRefs) && t.litRefs[ri].lit == lit; ri++ {
				r := &t.litRefs[ri]
				addLiteral(&acc[r.leaf], sql, tk, class, r.neg, r.array)
			}
			lit++
			continue
		}
		n, k := uvarintString(shape[pos:])
		if k <= 0 || uint64(len(text)) != n || len(shape)-pos-k < len(text) {
			return false
		}
		pos += k
		if shape[pos:pos+len(text)] != text {
			return false
		}
		pos += len(text)
	}
}

// uvarintString decodes a uvarint at the start of s, as binary.Uvarint does for bytes.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < 10; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// addLiteral folds the value of literal token tk (of the given class) into a.
func addLiteral(a *leafAcc, sql string, tk token, class byte, neg, array bool) {
	switch class {
	case 'i', 'I', 'f':
		if array {
			a.flags |= accBad
			return
		}
		a.addNumber(sql[tk.start:tk.end], neg)
	case 's', 'e', 'n', 'd':
		s, ok := stringText(sql, tk)
		switch {
		case !ok:
			a.flags |= accBad
		case array:
			addArrayText(a, s)
		default:
			addText(a, s, neg)
		}
	default: // bit strings and Unicode-escaped strings are not integers here
		a.flags |= accBad
	}
}

// stmtResult is the plan of one statement.
type stmtResult struct {
	kind   Kind
	target Target
	shards shardmap.ShardSet
	merge  *MergeSpec
	err    *RouteError
}

// evalStmt plans statement st given its leaves' values and hint.
func (t *template) evalStmt(st *stmtTemplate, acc []leafAcc, h hint, sess Session) stmtResult {
	r := stmtResult{kind: st.kind, target: st.target, err: st.err}
	if st.target != TargetShards {
		return r
	}
	if h.set || sess.HasShardKey {
		if h.set && h.bad {
			return stmtResult{kind: st.kind, target: TargetReject, err: &RouteError{
				Code: CodeInvalidParameter, Message: "the shard_key hint must be an integer",
				Hint: "write it as /* shard_key=42 */"}}
		}
		key := sess.ShardKey
		if h.set {
			key = h.key
		}
		r.shards = shardmap.Of(shardmap.ShardOf(key))
		return t.checkMoves(st, acc, r)
	}
	if !st.keyless && st.root >= 0 {
		set, state, bad := evalKey(t.nodes, acc, st.root)
		switch state {
		case keyBad:
			return t.badKey(st, acc, bad)
		case keyKnown:
			keyed := true
			for _, n := range st.required {
				if _, s, _ := evalKey(t.nodes, acc, n); s != keyKnown {
					keyed = false
					break
				}
			}
			if keyed {
				r.shards = set
				return t.checkMoves(st, acc, r)
			}
		}
	}
	r.target, r.err, r.merge = st.fallback, st.fallErr, st.merge
	return r
}

func (t *template) badKey(st *stmtTemplate, acc []leafAcc, leaf int32) stmtResult {
	err := t.leaves[leaf].badErr
	if acc[leaf].flags&accBad == 0 {
		err = t.leaves[leaf].nullErr
	}
	return stmtResult{kind: st.kind, target: TargetReject, err: err}
}

// checkMoves verifies that an UPDATE setting the key keeps its rows in the shards it runs on.
func (t *template) checkMoves(st *stmtTemplate, acc []leafAcc, r stmtResult) stmtResult {
	for _, leaf := range st.checks {
		a := acc[leaf]
		switch {
		case a.flags&(accBad|accNull) != 0:
			return t.badKey(st, acc, leaf)
		case a.flags&accUnknown != 0 || a.set.Empty():
			return stmtResult{kind: st.kind, target: TargetReject, err: st.unknownErr}
		case a.set&^r.shards != 0:
			return stmtResult{kind: st.kind, target: TargetReject, err: st.moveErr}
		}
	}
	return r
}

// plan plans a string of t's shape given its leaves' values and hints.
func (t *template) plan(acc []leafAcc, hints []hint, sess Session, m *shardmap.Map) Plan {
	p := Plan{Kind: t.kind, Tables: t.tables, Statements: len(t.stmts), TxControl: t.tx}
	if len(t.stmts) == 0 {
		p.Target = TargetAny
		return p
	}
	if len(t.stmts) == 1 {
		r := t.evalStmt(&t.stmts[0], acc, hintOf(hints, 0), sess)
		p.Target, p.Err, p.Merge = r.target, r.err, r.merge
		if r.target == TargetShards {
			p.Shards = r.shards
		}
		return p
	}
	var shards shardmap.ShardSet
	var anyShards, anyDefault, defaultData, allGroups bool
	for i := range t.stmts {
		r := t.evalStmt(&t.stmts[i], acc, hintOf(hints, i), sess)
		switch r.target {
		case TargetReject:
			p.Target, p.Err = TargetReject, r.err
			return p
		case TargetScatter:
			p.Target, p.Err = TargetReject, &RouteError{
				Code:    CodeFeatureNotSupported,
				Message: "a statement without a shard key on sharded tables must be sent alone",
				Hint:    "send it as a query of its own, or add /* shard_key=N */",
			}
			return p
		case TargetShards:
			anyShards = true
			shards |= r.shards
		case TargetDefault:
			anyDefault = true
			if r.kind != KindDDL {
				defaultData = true
			}
		case TargetAllGroups:
			allGroups = true
		}
	}
	switch {
	case allGroups && (anyShards || defaultData):
		return rejectGroups(p)
	case allGroups:
		p.Target = TargetAllGroups
	case anyShards && anyDefault:
		if m == nil || len(m.Groups) == 0 || m.GroupsOf(shards) != 1<<uint(m.DefaultGroup) {
			return rejectGroups(p)
		}
		p.Target, p.Shards = TargetShards, shards
	case anyShards:
		p.Target, p.Shards = TargetShards, shards
	case anyDefault:
		p.Target = TargetDefault
	default:
		p.Target = TargetAny
	}
	return p
}

func hintOf(hints []hint, i int) hint {
	if i < len(hints) {
		return hints[i]
	}
	return hint{}
}

func rejectGroups(p Plan) Plan {
	p.Target, p.Shards, p.Err = TargetReject, 0, &RouteError{
		Code:    CodeFeatureNotSupported,
		Message: "statements for different groups in one request",
		Hint:    "send them as separate queries",
	}
	return p
}
