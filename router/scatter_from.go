package router

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// scRef is one reference to a sharded table in a scatter's FROM clause.
type scRef struct {
	rv     *pg.RangeVar
	name   string // the name columns are qualified with: the alias, else the table name
	keyCol string
	// nullable is set when the table is on the nullable side of an outer join. Its
	// restriction cannot go into WHERE (that would turn the join into an inner one), so the
	// rewrite replaces the table by a restricted subquery with the same name.
	nullable bool
	// replace puts a node where the RangeVar was (for the nullable case).
	replace func(*pg.Node)
}

// scFrom is what the FROM clause of a scatter holds.
type scFrom struct {
	refs []*scRef
}

// scAnalyzeFrom collects the sharded table references of a scatter's FROM clause and checks
// that a per-group execution restricted to owned shards, concatenated over the groups,
// returns what one database would: every table is sharded (or a function), sharded tables are
// joined on their shard keys, and every outer join keeps rows of a sharded table only.
func scAnalyzeFrom(stmt *pg.SelectStmt, m *shardmap.Map) (*scFrom, *RouteError) {
	fa := &scFrom{}
	uf := scNewUnionFind()
	var conjuncts []*pg.Node
	conjuncts = scConjuncts(conjuncts, stmt.GetWhereClause())

	// visit returns the refs under item.
	var visit func(item *pg.Node, nullable bool, replace func(*pg.Node)) ([]*scRef, *RouteError)
	visit = func(item *pg.Node, nullable bool, replace func(*pg.Node)) ([]*scRef, *RouteError) {
		switch {
		case item.GetRangeVar() != nil:
			rv := item.GetRangeVar()
			key, ok := m.KeyColumn(rv.GetRelname())
			if !ok {
				return nil, scNotSupported("a keyless query joining the sharded and unsharded table "+scQuoteIdent(rv.GetRelname())+" is not supported",
					"add a customer_id condition so that the query runs on one shard group")
			}
			ref := &scRef{rv: rv, name: rv.GetRelname(), keyCol: key, nullable: nullable, replace: replace}
			if rv.GetAlias() != nil {
				ref.name = rv.GetAlias().GetAliasname()
			}
			uf.add(ref)
			fa.refs = append(fa.refs, ref)
			return []*scRef{ref}, nil
		case item.GetJoinExpr() != nil:
			j := item.GetJoinExpr()
			// lOuter/rOuter: this join makes that side nullable.
			var lOuter, rOuter bool
			switch j.GetJointype() {
			case pg.JoinType_JOIN_INNER:
			case pg.JoinType_JOIN_LEFT:
				rOuter = true
			case pg.JoinType_JOIN_RIGHT:
				lOuter = true
			case pg.JoinType_JOIN_FULL:
				lOuter, rOuter = true, true
			default:
				return nil, scNotSupported("this join type over a scatter is not supported", "")
			}
			left, err := visit(j.GetLarg(), nullable || lOuter, func(n *pg.Node) { j.Larg = n })
			if err != nil {
				return nil, err
			}
			right, err := visit(j.GetRarg(), nullable || rOuter, func(n *pg.Node) { j.Rarg = n })
			if err != nil {
				return nil, err
			}
			// Rows that an outer join keeps without a match must belong to one group: the
			// preserved side must hold a sharded table.
			if (rOuter && len(left) == 0) || (lOuter && len(right) == 0) {
				return nil, scNotSupported("an outer join that keeps rows of a table function over a scatter is not supported", "")
			}
			conjuncts = scConjuncts(conjuncts, j.GetQuals())
			// USING and NATURAL equate same-named columns of both sides.
			var using []string
			for _, u := range j.GetUsingClause() {
				if s, ok := scStr(u); ok {
					using = append(using, s)
				}
			}
			for _, l := range left {
				for _, r := range right {
					if l.keyCol != r.keyCol {
						continue
					}
					if j.GetIsNatural() {
						uf.union(l, r)
					}
					for _, u := range using {
						if u == l.keyCol {
							uf.union(l, r)
						}
					}
				}
			}
			return append(left, right...), nil
		case item.GetRangeFunction() != nil:
			return nil, nil
		}
		return nil, scNotSupported("this FROM item in a keyless query over sharded tables is not supported",
			"add a customer_id condition so that the query runs on one shard group")
	}

	for i, item := range stmt.GetFromClause() {
		if _, err := visit(item, false, func(n *pg.Node) { stmt.FromClause[i] = n }); err != nil {
			return nil, err
		}
	}
	if len(fa.refs) == 0 {
		return nil, scNotSupported("keyless query without a sharded table", "")
	}

	// Equalities between shard keys join references into co-located sets.
	byName := make(map[string][]*scRef, len(fa.refs))
	for _, r := range fa.refs {
		byName[r.name] = append(byName[r.name], r)
	}
	keyRef := func(n *pg.Node) *scRef {
		f := n.GetColumnRef().GetFields()
		if len(f) != 2 {
			return nil
		}
		tbl, ok1 := scStr(f[0])
		col, ok2 := scStr(f[1])
		if !ok1 || !ok2 || len(byName[tbl]) != 1 || byName[tbl][0].keyCol != col {
			return nil
		}
		return byName[tbl][0]
	}
	for _, c := range conjuncts {
		e := c.GetAExpr()
		if e == nil || e.GetKind() != pg.A_Expr_Kind_AEXPR_OP || scLastName(e.GetName()) != "=" || len(e.GetName()) != 1 {
			continue
		}
		if l, r := keyRef(e.GetLexpr()), keyRef(e.GetRexpr()); l != nil && r != nil {
			uf.union(l, r)
		}
	}
	root := uf.find(fa.refs[0])
	for _, r := range fa.refs[1:] {
		if uf.find(r) != root {
			return nil, scNotSupported("a keyless join of sharded tables must match their shard keys (for example a.customer_id = b.customer_id)", "")
		}
	}
	return fa, nil
}

// scConjuncts appends the top-level AND terms of e.
func scConjuncts(dst []*pg.Node, e *pg.Node) []*pg.Node {
	if e == nil {
		return dst
	}
	if b := e.GetBoolExpr(); b != nil && b.GetBoolop() == pg.BoolExprType_AND_EXPR {
		for _, a := range b.GetArgs() {
			dst = scConjuncts(dst, a)
		}
		return dst
	}
	return append(dst, e)
}

// scUnionFind groups sharded references that are joined on their keys.
type scUnionFind struct{ parent map[*scRef]*scRef }

func scNewUnionFind() *scUnionFind { return &scUnionFind{parent: make(map[*scRef]*scRef)} }

func (u *scUnionFind) add(r *scRef) { u.parent[r] = r }

func (u *scUnionFind) find(r *scRef) *scRef {
	for u.parent[r] != r {
		u.parent[r] = u.parent[u.parent[r]]
		r = u.parent[r]
	}
	return r
}

func (u *scUnionFind) union(a, b *scRef) { u.parent[u.find(a)] = u.find(b) }
