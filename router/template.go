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
	errs   *planErrors // the router's errors of plan time

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
	split      *InsertSplit // a multi-row INSERT whose rows the proxy may send apart
	copy       *CopySpec    // target == TargetSplit: the COPY of a sharded table
	// exact: the statement names one relation, once, its rows are those its keys restrict
	// (no UPDATE of the key, no INSERT ... SELECT) and it calls no function that may write
	// elsewhere: its key values are Plan.Keys.
	exact bool

	noCache NoCacheReason // what the statement itself says about caching its result
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
	pinNone    = iota
	pinAll     // every literal that is not a key value
	pinOutside // every literal that is not a key value nor written in pinWhere's tree
)

// buildTemplate parses sql and builds its template for map m (whose schema fingerprint is fp).
// A syntax error is returned as a RouteError; such strings are not cached.
func buildTemplate(sql string, m *shardmap.Map, fp uint64, errs *planErrors) (*template, *RouteError) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, &RouteError{Code: CodeSyntaxError, Message: err.Error()}
	}
	if m == nil {
		m = &shardmap.Map{}
	}
	toks, shape := tokenize(sql)
	t := &template{shape: shape, fp: fp, errs: errs, tableSet: map[string]bool{}}
	b := &builder{m: m, sql: sql, toks: toks, t: t, version: tree.Version, keyLits: map[int32]bool{},
		colErrs: map[string][2]*RouteError{}}
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
		st.noCache = b.cacheReason(raw.Stmt, &st)
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

// planErrors are the errors plans of a router share for what only plan time finds, so that
// rejecting allocates nothing either.
type planErrors struct {
	badHint, scatterAlone, copyAlone, crossGroup *RouteError
}

func newPlanErrors() *planErrors {
	return &planErrors{
		badHint: &RouteError{Code: CodeInvalidParameter,
			Message: "the shard_key hint must be an integer",
			Hint:    "write it as /* shard_key=42 */"},
		scatterAlone: &RouteError{Code: CodeFeatureNotSupported,
			Message: "a statement without a shard key on sharded tables must be sent alone",
			Hint:    "send it as a query of its own, or add /* shard_key=N */"},
		copyAlone: &RouteError{Code: CodeFeatureNotSupported,
			Message: "a COPY of a sharded table must be sent alone",
			Hint:    "send it as a query of its own"},
		crossGroup: &RouteError{Code: CodeFeatureNotSupported,
			Message: "statements for different groups in one request",
			Hint:    "send them as separate queries"},
	}
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
