package router

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

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
	if len(w.Ctes) > 0 {
		b.info.inexact = true
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
		b.info.inexact = true
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
		b.info.inexact = true
		keyCol, keyNode := b.derived(x.Subquery, len(x.GetAlias().GetColnames()) > 0)
		b.addRel(relRef{name: x.GetAlias().GetAliasname(), keyCol: keyCol, keyNode: keyNode})
	case *pg.RangeFunction:
		b.info.inexact = true
		b.children(x.ProtoReflect())
		b.addRel(relRef{name: x.GetAlias().GetAliasname(), keyNode: -1})
	case *pg.RangeTableSample:
		b.info.volatile = true // which rows a sample holds is not a function of the rows
		b.fromItem(x.Relation)
		b.walkAll(x.Args)
		b.walk(x.Repeatable)
	default: // XMLTABLE, JSON_TABLE: relations of their own
		b.info.inexact = true
		b.children(m.ProtoReflect())
	}
}
