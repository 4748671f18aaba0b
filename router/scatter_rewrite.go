package router

import (
	"fmt"
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// ScatterSQL returns the statement a shard group owning the shards owned runs for the keyless
// read sql, whose replies merge as planScatter's MergeSpec for the same sql says:
//
//   - every sharded table reference is restricted to owned shards with
//     ((ref.key % 16) + 16) % 16 = ANY('{...}'::int[]), ANDed to WHERE, or, for a table on
//     the nullable side of an outer join, inside a subquery that replaces the table under
//     the same name (a WHERE term would turn the outer join into an inner one);
//   - AVG(x) becomes SUM(x) under the client's column name, with COUNT(x) hidden;
//   - the MergeSpec's hidden columns are appended, in order, named _sw_h1, _sw_h2, ...;
//   - LIMIT l OFFSET o becomes LIMIT l+o (parameters: LIMIT $l::bigint +
//     COALESCE($o::bigint, 0)); an aggregating select loses ORDER BY, LIMIT and OFFSET,
//     which the merge applies. A parameter that only LIMIT/OFFSET used stays referenced
//     (in a LIMIT that evaluates to NULL, no limit) so that its type is still inferred.
//
// Parameters ($n) are kept as they are, so the client's Bind values apply unchanged. The
// result is deparsed by pg_query; the error is a *RouteError when the statement cannot be
// scattered.
func ScatterSQL(sql string, owned shardmap.ShardSet, m *shardmap.Map) (string, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return "", &RouteError{Code: CodeSyntaxError, Message: err.Error()}
	}
	if len(tree.GetStmts()) != 1 || tree.GetStmts()[0].GetStmt().GetSelectStmt() == nil {
		return "", scNotSupported("a scatter runs exactly one SELECT statement", "")
	}
	stmt := tree.GetStmts()[0].GetStmt().GetSelectStmt()
	a, rerr := scAnalyze(stmt, m)
	if rerr != nil {
		return "", rerr
	}
	scRewrite(stmt, a, owned)
	out, err := pg.Deparse(tree)
	if err != nil {
		return "", fmt.Errorf("scatter rewrite: deparse: %w", err)
	}
	return out, nil
}

// scRewrite edits the analyzed statement into the per-group one.
func scRewrite(stmt *pg.SelectStmt, a *scAnalysis, owned shardmap.ShardSet) {
	shards := scShardArray(owned)
	// The restrictions join the client's WHERE terms (an AND of them stays one flat AND).
	where := scConjunctsFlat(nil, stmt.GetWhereClause())
	for _, ref := range a.from.refs {
		if !ref.nullable {
			where = append(where, scRestriction(ref.name, ref.keyCol, shards))
			continue
		}
		inner := &pg.RangeVar{
			Catalogname:    ref.rv.GetCatalogname(),
			Schemaname:     ref.rv.GetSchemaname(),
			Relname:        ref.rv.GetRelname(),
			Inh:            ref.rv.GetInh(),
			Relpersistence: ref.rv.GetRelpersistence(),
			Location:       -1,
		}
		alias := ref.rv.GetAlias()
		if alias == nil {
			alias = &pg.Alias{Aliasname: ref.rv.GetRelname()}
		}
		sub := &pg.SelectStmt{
			TargetList:  []*pg.Node{pg.MakeResTargetNodeWithVal(pg.MakeColumnRefNode([]*pg.Node{pg.MakeAStarNode()}, -1), -1)},
			FromClause:  []*pg.Node{{Node: &pg.Node_RangeVar{RangeVar: inner}}},
			WhereClause: scRestriction(ref.rv.GetRelname(), ref.keyCol, shards),
			LimitOption: pg.LimitOption_LIMIT_OPTION_DEFAULT,
			Op:          pg.SetOperation_SETOP_NONE,
		}
		ref.replace(&pg.Node{Node: &pg.Node_RangeSubselect{RangeSubselect: &pg.RangeSubselect{
			Subquery: &pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: sub}},
			Alias:    alias,
		}}})
	}
	switch len(where) {
	case 0:
	case 1:
		stmt.WhereClause = where[0]
	default:
		stmt.WhereClause = pg.MakeBoolExprNode(pg.BoolExprType_AND_EXPR, where, -1)
	}

	for _, rt := range a.avgTargets {
		fc := rt.GetVal().GetFuncCall()
		names := append([]*pg.Node(nil), fc.GetFuncname()[:len(fc.GetFuncname())-1]...)
		fc.Funcname = append(names, pg.MakeStrNode("sum"))
		if rt.GetName() == "" {
			rt.Name = "avg"
		}
	}
	for i, h := range a.hidden {
		stmt.TargetList = append(stmt.TargetList, pg.MakeResTargetNodeWithNameAndVal("_sw_h"+strconv.Itoa(i+1), h, -1))
	}

	if a.aggregate {
		stmt.SortClause = nil
	}
	scRewriteLimits(stmt, a)
}

// scRewriteLimits sets the groups' LIMIT: enough rows for the merge to apply the client's
// LIMIT and OFFSET, none for an aggregating select.
func scRewriteLimits(stmt *pg.SelectStmt, a *scAnalysis) {
	lim, off := a.spec.Limit, a.spec.Offset
	var limit *pg.Node
	switch {
	case a.aggregate || !lim.Set:
		// No limit; keep the parameters referenced in a NULL one.
		var params []*pg.Node
		if lim.Param > 0 {
			params = append(params, scBigint(a.limit))
		}
		if off.Param > 0 {
			params = append(params, scBigint(a.offset))
		}
		if len(params) > 0 {
			limit = scBigint(&pg.Node{Node: &pg.Node_AConst{AConst: &pg.A_Const{Isnull: true, Location: -1}}})
			for _, p := range params {
				limit = pg.MakeAExprNode(pg.A_Expr_Kind_AEXPR_OP, []*pg.Node{pg.MakeStrNode("+")}, limit, p, -1)
			}
		}
	case !off.Set || (off.Param == 0 && off.Const == 0):
		limit = a.limit
	case lim.Param == 0 && off.Param == 0:
		if sum, ok := scAddLimits(lim.Const, off.Const); ok {
			limit = pg.MakeAConstIntNode(sum, -1)
		}
	default:
		l := a.limit
		if lim.Param > 0 {
			l = scBigint(l)
		}
		o := a.offset
		if off.Param > 0 {
			o = &pg.Node{Node: &pg.Node_CoalesceExpr{CoalesceExpr: &pg.CoalesceExpr{
				Args: []*pg.Node{scBigint(o), pg.MakeAConstIntNode(0, -1)}, Location: -1}}}
		}
		limit = pg.MakeAExprNode(pg.A_Expr_Kind_AEXPR_OP, []*pg.Node{pg.MakeStrNode("+")}, l, o, -1)
	}
	stmt.LimitCount = limit
	stmt.LimitOffset = nil
	if limit == nil {
		stmt.LimitOption = pg.LimitOption_LIMIT_OPTION_DEFAULT
	} else {
		stmt.LimitOption = pg.LimitOption_LIMIT_OPTION_COUNT
	}
}

// scBigint casts n to bigint.
func scBigint(n *pg.Node) *pg.Node {
	return &pg.Node{Node: &pg.Node_TypeCast{TypeCast: &pg.TypeCast{
		Arg:      n,
		TypeName: &pg.TypeName{Names: []*pg.Node{pg.MakeStrNode("pg_catalog"), pg.MakeStrNode("int8")}, Typemod: -1, Location: -1},
		Location: -1,
	}}}
}

// scShardArray is the array literal of a shard set, e.g. "{0,1,2,3}" (ShardSet's own text
// form is that literal).
func scShardArray(s shardmap.ShardSet) string { return s.String() }

// scRestriction is ((ref.key % 16) + 16) % 16 = ANY('{...}'::int[]): the row's shard (never
// negative, as shardmap.ShardOf computes it) is one of shards.
func scRestriction(ref, key, shards string) *pg.Node {
	op := func(name string, l, r *pg.Node) *pg.Node {
		return pg.MakeAExprNode(pg.A_Expr_Kind_AEXPR_OP, []*pg.Node{pg.MakeStrNode(name)}, l, r, -1)
	}
	n := func() *pg.Node { return pg.MakeAConstIntNode(shardmap.NumShards, -1) }
	col := pg.MakeColumnRefNode([]*pg.Node{pg.MakeStrNode(ref), pg.MakeStrNode(key)}, -1)
	shard := op("%", op("+", op("%", col, n()), n()), n())
	arr := &pg.Node{Node: &pg.Node_TypeCast{TypeCast: &pg.TypeCast{
		Arg: pg.MakeAConstStrNode(shards, -1),
		TypeName: &pg.TypeName{
			Names:       []*pg.Node{pg.MakeStrNode("pg_catalog"), pg.MakeStrNode("int4")},
			Typemod:     -1,
			ArrayBounds: []*pg.Node{pg.MakeIntNode(-1)},
			Location:    -1,
		},
		Location: -1,
	}}}
	return pg.MakeAExprNode(pg.A_Expr_Kind_AEXPR_OP_ANY, []*pg.Node{pg.MakeStrNode("=")}, shard, arr, -1)
}

// scConjunctsFlat appends the terms of e's top-level AND (e itself when it is no AND).
func scConjunctsFlat(dst []*pg.Node, e *pg.Node) []*pg.Node {
	if e == nil {
		return dst
	}
	if b := e.GetBoolExpr(); b != nil && b.GetBoolop() == pg.BoolExprType_AND_EXPR {
		return append(dst, b.GetArgs()...)
	}
	return append(dst, e)
}
