package router

import (
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shardwire/shardwire/shardmap"
)

// builder turns the parse tree of one SQL string into a template: for each statement its
// kind, where it runs, and where its shard keys are (as literal and parameter positions).
// It runs once per statement shape, so it favours clarity over speed.
type builder struct {
	m    *shardmap.Map
	sql  string
	toks []shapeToken
	t    *template

	info    stmtInfo  // the statement being analyzed
	levels  []level   // query levels, innermost last
	ctes    []cteInfo // CTEs in scope, innermost last
	keyCols []string  // key columns of the sharded tables named so far

	pinMode  int           // which literals of the statement the template pins
	pinWhere proto.Message // pinOutside: the tree whose literals are not pinned

	keyLits  map[int32]bool           // literal indexes used as key values
	colErrs  map[string][2]*RouteError // per key column: not an integer, NULL
	nodeLits []int32                   // scratch for literalsOf
}

// stmtInfo is what the walk of one statement learns.
type stmtInfo struct {
	sharded, unsharded bool
	shardedTable       string // first sharded table named, and its key column (for messages)
	shardedKey         string
	unshardedTable     string
	writeTable         string // sharded table an INSERT/UPDATE/DELETE/MERGE writes, and its key
	writeKey           string
	writeVerb          string
	lock               bool // locking clause (FOR UPDATE/SHARE)
	into               bool // SELECT INTO
	modifying          bool // INSERT/UPDATE/DELETE/MERGE, also inside a CTE
	unknownFunc        bool // calls a function not known to be read-only
	roots              []int32
	required           []int32
	keyless            bool // a part that must have a key has none (INSERT without the key)
	keylessWhy         string
	checks             []int32
	staticErr          *RouteError
}

// level is one query level (a SELECT, or the target of an INSERT/UPDATE/DELETE/MERGE): the
// relations its column references may name.
type level struct{ rels []relRef }

// relRef is one relation of a level: a table, or a derived one (subquery, function, CTE).
type relRef struct {
	name   string // the name columns qualify it by: the alias, else the table name
	keyCol string // a sharded table's key column, or the key column a derived relation passes on
	// keyNode is, for a derived relation, the key tree node of its own query (-1 when it
	// has none, and for tables): the keys of the rows it yields.
	keyNode int32
}

// cteInfo is a CTE in scope, as a relation.
type cteInfo struct {
	name    string
	keyCol  string
	keyNode int32
}

func (b *builder) pushLevel() { b.levels = append(b.levels, level{}) }
func (b *builder) popLevel()  { b.levels = b.levels[:len(b.levels)-1] }

func (b *builder) addRel(r relRef) {
	if len(b.levels) > 0 {
		l := &b.levels[len(b.levels)-1]
		l.rels = append(l.rels, r)
	}
}

// walk visits a parse tree node and everything below it, handling the nodes that matter to
// routing and recursing generically through the rest.
func (b *builder) walk(m proto.Message) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return
	}
	switch x := m.(type) {
	case *pg.Node:
		if x.Node == nil {
			return
		}
	case *pg.SelectStmt:
		b.selectStmt(x, nil)
		return
	case *pg.InsertStmt:
		b.insertStmt(x)
		return
	case *pg.UpdateStmt:
		b.updateStmt(x)
		return
	case *pg.DeleteStmt:
		b.deleteStmt(x)
		return
	case *pg.MergeStmt:
		b.mergeStmt(x)
		return
	case *pg.RangeVar:
		b.tableRef(x)
		return
	case *pg.FuncCall:
		b.funcCall(x)
	case *pg.JoinExpr, *pg.RangeSubselect, *pg.RangeFunction, *pg.RangeTableSample:
		b.fromItemMsg(x)
		return
	case *pg.LockingClause:
		b.info.lock = true
	case *pg.IntoClause:
		b.info.into = true
	}
	b.children(m.ProtoReflect())
}

// children walks every message-valued field of r.
func (b *builder) children(r protoreflect.Message) {
	if !r.IsValid() {
		return
	}
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				b.walk(l.Get(i).Message().Interface())
			}
			return true
		}
		b.walk(v.Message().Interface())
		return true
	})
}

func (b *builder) walkAll(ns []*pg.Node) {
	for _, n := range ns {
		b.walk(n)
	}
}

// tableRef notes a table a statement names and returns its key column when it is sharded.
// isTable is false for a reference to a CTE.
func (b *builder) tableRef(rv *pg.RangeVar) (name, keyCol string, isTable bool) {
	if rv == nil {
		return "", "", false
	}
	if rv.Schemaname == "" && rv.Catalogname == "" {
		if _, ok := b.cte(rv.Relname); ok {
			return rv.Relname, "", false
		}
	}
	name = strings.ToLower(rv.Relname)
	b.t.addTable(name)
	if col, ok := b.m.KeyColumn(name); ok {
		if !b.info.sharded {
			b.info.sharded, b.info.shardedTable, b.info.shardedKey = true, name, col
		}
		b.keyCols = append(b.keyCols, col)
		return name, col, true
	}
	if !systemTable(strings.ToLower(rv.Schemaname), name) {
		if !b.info.unsharded {
			b.info.unsharded, b.info.unshardedTable = true, name
		}
	}
	return name, "", true
}

// systemTable reports whether a table is a system catalog, which every group has.
func systemTable(schema, name string) bool {
	switch schema {
	case "pg_catalog", "information_schema":
		return true
	case "":
		return strings.HasPrefix(name, "pg_")
	}
	return false
}

// cte returns the CTE of that name in scope.
func (b *builder) cte(name string) (*cteInfo, bool) {
	for i := len(b.ctes) - 1; i >= 0; i-- {
		if b.ctes[i].name == name {
			return &b.ctes[i], true
		}
	}
	return nil, false
}

// withClause brings a WITH clause's names into scope (the caller restores b.ctes) and walks
// its queries, noting for each the key column it passes on and its key node.
func (b *builder) withClause(w *pg.WithClause) {
	if w == nil {
		return
	}
	first := len(b.ctes)
	for _, c := range w.Ctes {
		if cte := c.GetCommonTableExpr(); cte != nil {
			b.ctes = append(b.ctes, cteInfo{name: cte.Ctename, keyNode: -1})
		}
	}
	i := first
	for _, c := range w.Ctes {
		cte := c.GetCommonTableExpr()
		if cte == nil {
			continue
		}
		keyCol, keyNode := b.derived(cte.Ctequery, len(cte.Aliascolnames) > 0)
		b.ctes[i].keyCol, b.ctes[i].keyNode = keyCol, keyNode
		i++
	}
}

// derived walks the query of a derived relation (CTE, FROM subquery) and returns the key
// column it passes on to its readers — a column of its output that is a sharded table's key
// column, by name — and the key tree node of its own keys (-1 when it has none). renamed is
// set when a column alias list renames its output, which then passes no key on.
func (b *builder) derived(q *pg.Node, renamed bool) (keyCol string, keyNode int32) {
	roots, cols := len(b.info.roots), len(b.keyCols)
	b.walk(q)
	if len(b.info.roots) > roots {
		keyNode = b.t.combineAll(keyAny, append([]int32(nil), b.info.roots[roots:]...))
	} else {
		keyNode = -1
	}
	if renamed {
		return "", keyNode
	}
	return outputKey(q, b.keyCols[cols:]), keyNode
}

// outputKey returns the key column among keys that query q outputs unchanged (as a plain
// column reference, or through a *), or "" when none does or another output takes its name.
func outputKey(q *pg.Node, keys []string) string {
	var list []*pg.Node
	switch {
	case q.GetSelectStmt() != nil && q.GetSelectStmt().Op == pg.SetOperation_SETOP_NONE:
		list = q.GetSelectStmt().TargetList
	case q.GetInsertStmt() != nil:
		list = q.GetInsertStmt().ReturningList
	case q.GetUpdateStmt() != nil:
		list = q.GetUpdateStmt().ReturningList
	case q.GetDeleteStmt() != nil:
		list = q.GetDeleteStmt().ReturningList
	case q.GetMergeStmt() != nil:
		list = q.GetMergeStmt().ReturningList
	}
	isKey := func(name string) bool {
		for _, k := range keys {
			if k == name {
				return true
			}
		}
		return false
	}
	found := ""
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			return ""
		}
		var last string
		star := false
		if cr := rt.Val.GetColumnRef(); cr != nil && len(cr.Fields) > 0 {
			f := cr.Fields[len(cr.Fields)-1]
			star = f.GetAStar() != nil
			last = f.GetString_().GetSval()
		}
		out := rt.Name
		if out == "" {
			out = last
		}
		switch {
		case star && rt.Name == "":
			// t.* or *: every key column of the tables read passes through, if they agree.
			for _, k := range keys {
				if k != keys[0] {
					return ""
				}
			}
			if len(keys) > 0 {
				found = keys[0]
			}
		case isKey(out) && last == out:
			found = out
		case isKey(out):
			return "" // another value under a key column's name
		}
	}
	return found
}

// selectStmt walks a SELECT (or VALUES, or set operation) as a new query level. hook, when
// set, runs with the level's relations still in scope, before it is left.
func (b *builder) selectStmt(s *pg.SelectStmt, hook func()) {
	if s == nil {
		return
	}
	mark := len(b.ctes)
	defer func() { b.ctes = b.ctes[:mark] }()
	b.withClause(s.WithClause)
	if s.Op != pg.SetOperation_SETOP_NONE && s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		b.selectStmt(s.Larg, nil)
		b.selectStmt(s.Rarg, nil)
		b.walkAll(s.SortClause)
		b.walk(s.LimitOffset)
		b.walk(s.LimitCount)
		b.walkAll(s.LockingClause)
		return
	}
	if len(s.LockingClause) > 0 {
		b.info.lock = true
	}
	if s.IntoClause != nil {
		b.info.into = true
		b.tableRef(s.IntoClause.Rel)
	}
	b.pushLevel()
	defer b.popLevel()
	for _, f := range s.FromClause {
		b.fromItem(f)
	}
	b.scope(s.WhereClause)
	b.walkAll(s.TargetList)
	b.walkAll(s.DistinctClause)
	b.walkAll(s.GroupClause)
	b.walk(s.HavingClause)
	b.walkAll(s.WindowClause)
	b.walkAll(s.ValuesLists)
	b.walkAll(s.SortClause)
	b.walk(s.LimitOffset)
	b.walk(s.LimitCount)
	if hook != nil {
		hook()
	}
}

// scope analyzes a condition that restricts the rows of its level (a WHERE, an inner join's
// ON): its key predicates become a root of the statement's key tree.
func (b *builder) scope(n *pg.Node) {
	if n == nil {
		return
	}
	if r := b.predicate(n); r >= 0 {
		b.info.roots = append(b.info.roots, r)
	}
}

// fromItem adds a FROM clause entry to the current level.
func (b *builder) fromItem(n *pg.Node) {
	if n == nil || n.Node == nil {
		return
	}
	if rv := n.GetRangeVar(); rv != nil {
		b.fromRangeVar(rv)
		return
	}
	b.fromItemMsg(nodeMessage(n))
}

// nodeMessage returns the statement or expression a Node wraps.
func nodeMessage(n *pg.Node) proto.Message {
	r := n.ProtoReflect()
	fd := r.WhichOneof(r.Descriptor().Oneofs().Get(0))
	if fd == nil {
		return nil
	}
	return r.Get(fd).Message().Interface()
}

func (b *builder) fromRangeVar(rv *pg.RangeVar) {
	name, keyCol, isTable := b.tableRef(rv)
	ref := relRef{name: name, keyCol: keyCol, keyNode: -1}
	if !isTable {
		if c, ok := b.cte(rv.Relname); ok {
			ref.keyCol, ref.keyNode = c.keyCol, c.keyNode
		}
	}
	if rv.Alias != nil && rv.Alias.Aliasname != "" {
		ref.name = rv.Alias.Aliasname
	}
	b.addRel(ref)
}

func (b *builder) fromItemMsg(m proto.Message) {
	switch x := m.(type) {
	case *pg.RangeVar:
		b.fromRangeVar(x)
	case *pg.JoinExpr:
		b.fromItem(x.Larg)
		b.fromItem(x.Rarg)
		if x.Jointype == pg.JoinType_JOIN_INNER {
			b.scope(x.Quals)
		} else {
			// An outer join's condition does not restrict the preserved side's rows.
			b.walk(x.Quals)
		}
	case *pg.RangeSubselect:
		keyCol, keyNode := b.derived(x.Subquery, len(x.GetAlias().GetColnames()) > 0)
		b.addRel(relRef{name: x.GetAlias().GetAliasname(), keyCol: keyCol, keyNode: keyNode})
	case *pg.RangeFunction:
		b.children(x.ProtoReflect())
		b.addRel(relRef{name: x.GetAlias().GetAliasname(), keyNode: -1})
	case *pg.RangeTableSample:
		b.fromItem(x.Relation)
		b.walkAll(x.Args)
		b.walk(x.Repeatable)
	default:
		b.children(m.ProtoReflect())
	}
}

// predicate walks a condition and returns the key tree node of its key predicates, or -1.
func (b *builder) predicate(n *pg.Node) int32 {
	switch x := n.Node.(type) {
	case *pg.Node_BoolExpr:
		var kids []int32
		switch x.BoolExpr.Boolop {
		case pg.BoolExprType_AND_EXPR:
			for _, a := range x.BoolExpr.Args {
				if r := b.predicate(a); r >= 0 {
					kids = append(kids, r)
				}
			}
			return b.t.combine(keyAnd, kids)
		case pg.BoolExprType_OR_EXPR:
			all := true
			for _, a := range x.BoolExpr.Args {
				if r := b.predicate(a); r >= 0 {
					kids = append(kids, r)
				} else {
					all = false
				}
			}
			if !all {
				return -1
			}
			return b.t.combine(keyOr, kids)
		}
	case *pg.Node_AExpr:
		r := b.keyPredicate(x.AExpr)
		b.walk(x.AExpr.Lexpr)
		b.walk(x.AExpr.Rexpr)
		return r
	}
	b.walk(n)
	return -1
}

// keyPredicate returns the leaf of `key = v`, `key IN (v, ...)` or `key = ANY(array)` (either
// side of the =), or -1.
func (b *builder) keyPredicate(e *pg.A_Expr) int32 {
	if !isEqualsOp(e.Name) {
		return -1
	}
	switch e.Kind {
	case pg.A_Expr_Kind_AEXPR_OP:
		if col, ok := b.keyColumn(e.Lexpr); ok {
			if v, ok := b.scalarValue(e.Rexpr); ok {
				return b.newLeaf(col, []valueRef{v})
			}
		}
		if col, ok := b.keyColumn(e.Rexpr); ok {
			if v, ok := b.scalarValue(e.Lexpr); ok {
				return b.newLeaf(col, []valueRef{v})
			}
		}
	case pg.A_Expr_Kind_AEXPR_IN:
		col, ok := b.keyColumn(e.Lexpr)
		list := e.Rexpr.GetList()
		if !ok || list == nil {
			return -1
		}
		vals := make([]valueRef, 0, len(list.Items))
		for _, it := range list.Items {
			v, ok := b.scalarValue(it)
			if !ok {
				return -1
			}
			vals = append(vals, v)
		}
		return b.newLeaf(col, vals)
	case pg.A_Expr_Kind_AEXPR_OP_ANY:
		col, ok := b.keyColumn(e.Lexpr)
		if !ok {
			return -1
		}
		if vals, ok := b.arrayValue(e.Rexpr, nil); ok {
			return b.newLeaf(col, vals)
		}
	}
	return -1
}

// isEqualsOp reports whether an operator name is = (or OPERATOR(pg_catalog.=)).
func isEqualsOp(name []*pg.Node) bool {
	switch len(name) {
	case 1:
		return name[0].GetString_().GetSval() == "="
	case 2:
		return name[0].GetString_().GetSval() == "pg_catalog" && name[1].GetString_().GetSval() == "="
	}
	return false
}

// keyColumn reports whether n is (a cast of) a reference to the key column of a sharded table
// (or of a derived relation passing one on) in scope, and returns the column.
func (b *builder) keyColumn(n *pg.Node) (string, bool) {
	col, _, ok := b.keyRef(n)
	return col, ok
}

// keyRef is keyColumn, also returning the relation the column belongs to.
func (b *builder) keyRef(n *pg.Node) (string, relRef, bool) {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	cr := n.GetColumnRef()
	if cr == nil {
		return "", relRef{}, false
	}
	names := make([]string, 0, 3)
	for _, f := range cr.Fields {
		s := f.GetString_()
		if s == nil {
			return "", relRef{}, false // a * or an indirection
		}
		names = append(names, s.Sval)
	}
	switch len(names) {
	case 1:
		col := names[0]
		// Unqualified: the innermost level with relations decides (columns of derived and
		// unsharded relations are unknown, so a match elsewhere is not trusted).
		for i := len(b.levels) - 1; i >= 0; i-- {
			rels := b.levels[i].rels
			if len(rels) == 0 {
				continue
			}
			for _, r := range rels {
				if r.keyCol != "" && r.keyCol == col {
					return col, r, true
				}
			}
			return "", relRef{}, false
		}
	case 2, 3:
		rel, col := names[len(names)-2], names[len(names)-1]
		for i := len(b.levels) - 1; i >= 0; i-- {
			for _, r := range b.levels[i].rels {
				if r.name == rel {
					return col, r, r.keyCol != "" && r.keyCol == col
				}
			}
		}
	}
	return "", relRef{}, false
}

// valueRef is where one key value comes from.
type valueRef struct {
	kind   uint8 // valLiteral, valParam, valFixed
	array  bool  // the value is an array of keys
	neg    bool  // valLiteral: negate the number
	lit    int32 // valLiteral: literal index
	param  int32 // valParam: 0-based parameter index
	static leafAcc
}

const (
	valLiteral uint8 = iota + 1
	valParam
	valFixed
)

// scalarValue returns where a key value comes from when n is a constant or a parameter
// (possibly cast).
func (b *builder) scalarValue(n *pg.Node) (valueRef, bool) {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	switch {
	case n.GetAConst() != nil:
		return b.constValue(n.GetAConst(), false)
	case n.GetParamRef() != nil:
		if p := n.GetParamRef().Number; p >= 1 {
			return valueRef{kind: valParam, param: p - 1}, true
		}
	}
	return valueRef{}, false
}

// arrayValue returns the sources of the keys of an array expression: an array parameter, an
// array literal ('{1,2}'), or ARRAY[...] of constants and parameters.
func (b *builder) arrayValue(n *pg.Node, dst []valueRef) ([]valueRef, bool) {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	switch {
	case n.GetParamRef() != nil:
		if p := n.GetParamRef().Number; p >= 1 {
			return append(dst, valueRef{kind: valParam, param: p - 1, array: true}), true
		}
	case n.GetAConst() != nil:
		v, ok := b.constValue(n.GetAConst(), true)
		return append(dst, v), ok
	case n.GetAArrayExpr() != nil:
		for _, e := range n.GetAArrayExpr().Elements {
			if e.GetAArrayExpr() != nil {
				var ok bool
				if dst, ok = b.arrayValue(e, dst); !ok {
					return nil, false
				}
				continue
			}
			v, ok := b.scalarValue(e)
			if !ok {
				return nil, false
			}
			dst = append(dst, v)
		}
		return dst, true
	}
	return nil, false
}

// constValue returns the source of a constant: the literal token it was written as, or for
// a keyword constant (NULL, TRUE) its fixed value.
func (b *builder) constValue(c *pg.A_Const, array bool) (valueRef, bool) {
	if lit, neg, ok := b.literalAt(c.Location); ok {
		if neg && array {
			return valueRef{}, false
		}
		return valueRef{kind: valLiteral, lit: lit, neg: neg, array: array}, true
	} else if lit >= 0 {
		return valueRef{}, false // a literal this router cannot read alone (continued string)
	}
	v := valueRef{kind: valFixed}
	switch {
	case c.Isnull:
		v.static.flags = accNull
	case c.GetIval() != nil && !array:
		v.static.addInt(int64(c.GetIval().Ival))
	default:
		v.static.flags = accBad
	}
	return v, true
}

// tokenAt returns the index of the first token starting at or after offset loc.
func (b *builder) tokenAt(loc int32) int {
	return sort.Search(len(b.toks), func(i int) bool { return b.toks[i].start >= int(loc) })
}

// literalAt finds the literal token a constant at byte offset loc was written as. The parser
// folds a leading minus into a numeric constant and puts its location at the '-', so a run
// of '-' before a number is read as a sign. ok is false, with lit >= 0, for a string literal
// continued by another one on the next line (which the parser concatenates).
func (b *builder) literalAt(loc int32) (lit int32, neg, ok bool) {
	i := b.tokenAt(loc)
	if i >= len(b.toks) || b.toks[i].start != int(loc) {
		return -1, false, false
	}
	for i < len(b.toks) && b.toks[i].kind == tokOp && b.sql[b.toks[i].start] == '-' {
		neg = !neg
		i++
	}
	if i >= len(b.toks) || b.toks[i].lit < 0 {
		return -1, false, false
	}
	t := b.toks[i]
	if neg && t.kind != tokNumber {
		return -1, false, false
	}
	if t.kind == tokString && i+1 < len(b.toks) && b.toks[i+1].kind == tokString &&
		strings.ContainsAny(b.sql[t.end:b.toks[i+1].start], "\n\r") {
		return t.lit, false, false
	}
	return t.lit, neg, true
}

// newLeaf makes a key leaf for column col over vals and returns its key tree node.
func (b *builder) newLeaf(col string, vals []valueRef) int32 {
	t := b.t
	leaf := int32(len(t.leaves))
	errs, ok := b.colErrs[col]
	if !ok {
		errs = [2]*RouteError{
			{Code: CodeInvalidParameter, Message: "shard key " + col + " must be an integer"},
			{Code: CodeInvalidParameter, Message: "shard key " + col + " must be an integer, not NULL"},
		}
		b.colErrs[col] = errs
	}
	spec := leafSpec{badErr: errs[0], nullErr: errs[1]}
	for _, v := range vals {
		switch v.kind {
		case valFixed:
			spec.init.set |= v.static.set
			spec.init.flags |= v.static.flags
		case valLiteral:
			t.litRefs = append(t.litRefs, litRef{lit: v.lit, leaf: leaf, neg: v.neg, array: v.array})
			b.keyLits[v.lit] = true
		case valParam:
			t.paramRefs = append(t.paramRefs, paramRef{param: v.param, leaf: leaf, array: v.array})
		}
	}
	t.leaves = append(t.leaves, spec)
	t.nodes = append(t.nodes, keyNode{op: keyLeaf, leaf: leaf})
	return int32(len(t.nodes) - 1)
}

// setTarget notes the sharded table a data-modifying statement writes.
func (b *builder) setTarget(verb, table, keyCol string) {
	b.info.modifying = true
	if keyCol != "" && b.info.writeTable == "" {
		b.info.writeVerb, b.info.writeTable, b.info.writeKey = verb, table, keyCol
	}
}

// relOf returns the relation a DML target adds to its level.
func relOf(rv *pg.RangeVar, table, keyCol string) relRef {
	r := relRef{name: table, keyCol: keyCol, keyNode: -1}
	if a := rv.GetAlias().GetAliasname(); a != "" {
		r.name = a
	}
	return r
}

func (b *builder) insertStmt(s *pg.InsertStmt) {
	mark := len(b.ctes)
	defer func() { b.ctes = b.ctes[:mark] }()
	b.withClause(s.WithClause)
	table, keyCol, _ := b.tableRef(s.Relation)
	b.setTarget("INSERT into", table, keyCol)
	if keyCol == "" {
		b.walk(s.SelectStmt)
	} else {
		idx := -1
		for i, c := range s.Cols {
			if c.GetResTarget().GetName() == keyCol {
				idx = i
			}
		}
		switch {
		case len(s.Cols) == 0 && s.SelectStmt != nil:
			b.walk(s.SelectStmt)
			b.markKeyless("INSERT into sharded table " + table + " without a column list")
		case idx < 0:
			b.walk(s.SelectStmt)
			b.markKeyless("INSERT into sharded table " + table + " without its key column " + keyCol)
		default:
			if r, ok := b.insertSource(s.SelectStmt, idx, keyCol); ok {
				b.info.required = append(b.info.required, r)
				b.info.roots = append(b.info.roots, r)
			} else {
				b.markKeyless("INSERT into sharded table " + table + " whose " + keyCol + " values are not all constants or parameters")
			}
		}
	}
	b.pushLevel()
	defer b.popLevel()
	b.addRel(relOf(s.Relation, table, keyCol))
	if oc := s.OnConflictClause; oc != nil {
		b.addRel(relRef{name: "excluded", keyCol: keyCol, keyNode: -1})
		b.walk(oc.Infer)
		b.assignments(oc.TargetList, table, keyCol)
		b.walk(oc.WhereClause)
	}
	b.walkAll(s.ReturningList)
}

func (b *builder) markKeyless(why string) {
	if !b.info.keyless {
		b.info.keyless, b.info.keylessWhy = true, why
	}
}

// insertSource walks the rows an INSERT writes and returns the key tree node of their key
// column (index idx): a leaf of every row's value for VALUES, or for INSERT ... SELECT the
// select's constant or its keys. ok is false when a row's key cannot be known.
func (b *builder) insertSource(n *pg.Node, idx int, keyCol string) (int32, bool) {
	sel := n.GetSelectStmt()
	if sel == nil {
		b.walk(n)
		return -1, false
	}
	if len(sel.ValuesLists) > 0 && len(sel.FromClause) == 0 && sel.Op == pg.SetOperation_SETOP_NONE {
		vals := make([]valueRef, 0, len(sel.ValuesLists))
		ok := true
		for _, row := range sel.ValuesLists {
			items := row.GetList().GetItems()
			if idx >= len(items) {
				ok = false
				continue
			}
			v, vok := b.scalarValue(items[idx])
			if !vok {
				ok = false
			}
			vals = append(vals, v)
		}
		b.walk(n)
		if !ok {
			return -1, false
		}
		return b.newLeaf(keyCol, vals), true
	}
	if sel.Op != pg.SetOperation_SETOP_NONE || len(sel.ValuesLists) > 0 {
		b.walk(n)
		return -1, false
	}
	start := len(b.info.roots)
	node, ok, from := int32(-1), false, int32(-1)
	b.selectStmt(sel, func() {
		for i := 0; i <= idx && i < len(sel.TargetList); i++ {
			if cr := sel.TargetList[i].GetResTarget().GetVal().GetColumnRef(); cr != nil {
				for _, f := range cr.Fields {
					if f.GetAStar() != nil {
						return // a * before the key: its position is unknown
					}
				}
			}
		}
		if idx >= len(sel.TargetList) {
			return
		}
		val := sel.TargetList[idx].GetResTarget().GetVal()
		if v, vok := b.scalarValue(val); vok {
			node, ok = b.newLeaf(keyCol, []valueRef{v}), true
			return
		}
		if _, rel, kok := b.keyRef(val); kok {
			// The rows keep the key of what they are selected from: the select's keys
			// decide, with those of the CTE or subquery the key comes from.
			ok, from = true, rel.keyNode
		}
	})
	if !ok {
		return -1, false
	}
	if node >= 0 {
		return node, true
	}
	kids := append([]int32(nil), b.info.roots[start:]...)
	if from >= 0 {
		kids = append(kids, from)
	}
	return b.t.combineAll(keyAny, kids), true
}

// assignments walks the SET list of an UPDATE (or ON CONFLICT DO UPDATE, MERGE UPDATE) of a
// table sharded by keyCol. Setting the key to itself is fine; to a constant or parameter, it
// must stay in the shards the statement runs on (checked at plan time); anything else would
// move rows between shards and is rejected.
func (b *builder) assignments(list []*pg.Node, table, keyCol string) {
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil || keyCol == "" || rt.Name != keyCol {
			b.walk(n)
			continue
		}
		b.walk(rt.Val)
		if _, ok := b.keyColumn(rt.Val); ok && len(rt.Indirection) == 0 {
			continue
		}
		if v, ok := b.scalarValue(rt.Val); ok && len(rt.Indirection) == 0 {
			node := b.newLeaf(keyCol, []valueRef{v})
			b.info.checks = append(b.info.checks, b.t.nodes[node].leaf)
			continue
		}
		if b.info.staticErr == nil {
			b.info.staticErr = &RouteError{
				Code:    CodeFeatureNotSupported,
				Message: "changing the shard key " + keyCol + " of sharded table " + table + " is not supported",
				Hint:    "set " + keyCol + " to a constant or parameter in the same shard, or delete and insert the row",
			}
		}
	}
}

func (b *builder) updateStmt(s *pg.UpdateStmt) {
	mark := len(b.ctes)
	defer func() { b.ctes = b.ctes[:mark] }()
	b.withClause(s.WithClause)
	table, keyCol, _ := b.tableRef(s.Relation)
	b.setTarget("UPDATE of", table, keyCol)
	b.pushLevel()
	defer b.popLevel()
	b.addRel(relOf(s.Relation, table, keyCol))
	for _, f := range s.FromClause {
		b.fromItem(f)
	}
	b.scope(s.WhereClause)
	b.assignments(s.TargetList, table, keyCol)
	b.walkAll(s.ReturningList)
}

func (b *builder) deleteStmt(s *pg.DeleteStmt) {
	mark := len(b.ctes)
	defer func() { b.ctes = b.ctes[:mark] }()
	b.withClause(s.WithClause)
	table, keyCol, _ := b.tableRef(s.Relation)
	b.setTarget("DELETE from", table, keyCol)
	b.pushLevel()
	defer b.popLevel()
	b.addRel(relOf(s.Relation, table, keyCol))
	for _, f := range s.UsingClause {
		b.fromItem(f)
	}
	b.scope(s.WhereClause)
	b.walkAll(s.ReturningList)
}

func (b *builder) mergeStmt(s *pg.MergeStmt) {
	mark := len(b.ctes)
	defer func() { b.ctes = b.ctes[:mark] }()
	b.withClause(s.WithClause)
	table, keyCol, _ := b.tableRef(s.Relation)
	b.setTarget("MERGE into", table, keyCol)
	b.pushLevel()
	defer b.popLevel()
	b.addRel(relOf(s.Relation, table, keyCol))
	b.fromItem(s.SourceRelation)
	b.scope(s.JoinCondition)
	for _, w := range s.MergeWhenClauses {
		wc := w.GetMergeWhenClause()
		if wc == nil {
			continue
		}
		b.walk(wc.Condition)
		switch wc.CommandType {
		case pg.CmdType_CMD_UPDATE:
			b.assignments(wc.TargetList, table, keyCol)
		case pg.CmdType_CMD_INSERT:
			b.walkAll(wc.Values)
			if keyCol == "" {
				continue
			}
			idx := -1
			for i, c := range wc.TargetList {
				if c.GetResTarget().GetName() == keyCol {
					idx = i
				}
			}
			if idx < 0 || idx >= len(wc.Values) {
				b.markKeyless("MERGE inserting into sharded table " + table + " without its key column " + keyCol)
				continue
			}
			var leaf int32
			if v, ok := b.scalarValue(wc.Values[idx]); ok {
				leaf = b.newLeaf(keyCol, []valueRef{v})
			} else if _, rel, ok := b.keyRef(wc.Values[idx]); ok && rel.keyNode >= 0 {
				// The key of a source subquery or CTE with keys of its own.
				leaf = rel.keyNode
			} else {
				b.markKeyless("MERGE inserting into sharded table " + table + " a " + keyCol + " that is not a constant or parameter")
				continue
			}
			b.info.required = append(b.info.required, leaf)
			b.info.roots = append(b.info.roots, leaf)
		default:
			b.walkAll(wc.TargetList)
		}
	}
	b.walkAll(s.ReturningList)
}

// literalsOf returns the literal indexes of the constants written in the tree under m.
func (b *builder) literalsOf(m proto.Message) []int32 {
	b.nodeLits = b.nodeLits[:0]
	b.collectLits(m)
	return b.nodeLits
}

func (b *builder) collectLits(m proto.Message) {
	if m == nil {
		return
	}
	if c, ok := m.(*pg.A_Const); ok {
		if lit, _, _ := b.literalAt(c.Location); lit >= 0 {
			b.nodeLits = append(b.nodeLits, lit)
		}
		return
	}
	r := m.ProtoReflect()
	if !r.IsValid() {
		return
	}
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				b.collectLits(l.Get(i).Message().Interface())
			}
			return true
		}
		b.collectLits(v.Message().Interface())
		return true
	})
}
