package router

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file holds generic helpers over pg_query's protobuf syntax tree used by the scatter
// analysis: a walk over every node, structural equality that ignores source locations, and
// the output column names Postgres gives select-list entries.

// scWalk calls fn for every *pg.Node under m (m itself included when it is one), depth
// first. fn returns false to skip the node's children.
func scWalk(m proto.Message, fn func(n *pg.Node) bool) {
	if m == nil {
		return
	}
	scWalkMessage(m.ProtoReflect(), fn)
}

func scWalkMessage(m protoreflect.Message, fn func(n *pg.Node) bool) {
	if !m.IsValid() {
		return
	}
	if n, ok := m.Interface().(*pg.Node); ok {
		if !fn(n) {
			return
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				scWalkMessage(l.Get(i).Message(), fn)
			}
		case fd.IsMap():
			// The syntax tree has no map fields.
		default:
			scWalkMessage(v.Message(), fn)
		}
		return true
	})
}

// scEqual reports whether two expressions are the same syntax, ignoring source locations.
// An unqualified column reference equals a qualified one with the same column name: in a
// valid query both name the same column (if they named different ones, the unqualified name
// would be ambiguous or the query would not group correctly, and Postgres rejects it).
func scEqual(a, b *pg.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	return scMessagesEqual(a.ProtoReflect(), b.ProtoReflect())
}

func scMessagesEqual(a, b protoreflect.Message) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Descriptor() != b.Descriptor() {
		return false
	}
	if ca, ok := a.Interface().(*pg.ColumnRef); ok {
		return scColumnRefsEqual(ca, b.Interface().(*pg.ColumnRef))
	}
	fields := a.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Name() == "location" {
			continue
		}
		if a.Has(fd) != b.Has(fd) {
			return false
		}
		if !a.Has(fd) {
			continue
		}
		va, vb := a.Get(fd), b.Get(fd)
		switch {
		case fd.IsList():
			la, lb := va.List(), vb.List()
			if la.Len() != lb.Len() {
				return false
			}
			for j := 0; j < la.Len(); j++ {
				if fd.Kind() == protoreflect.MessageKind {
					if !scMessagesEqual(la.Get(j).Message(), lb.Get(j).Message()) {
						return false
					}
				} else if !la.Get(j).Equal(lb.Get(j)) {
					return false
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			if !scMessagesEqual(va.Message(), vb.Message()) {
				return false
			}
		default:
			if !va.Equal(vb) {
				return false
			}
		}
	}
	return true
}

func scColumnRefsEqual(a, b *pg.ColumnRef) bool {
	fa, fb := a.GetFields(), b.GetFields()
	if len(fa) == 0 || len(fb) == 0 {
		return len(fa) == len(fb)
	}
	if len(fa) != len(fb) {
		if len(fa) != 1 && len(fb) != 1 {
			return false
		}
		// One is unqualified: compare the column names only.
		return scEqual(fa[len(fa)-1], fb[len(fb)-1])
	}
	for i := range fa {
		if !scEqual(fa[i], fb[i]) {
			return false
		}
	}
	return true
}

// scStr returns the value of a String node, and whether n is one.
func scStr(n *pg.Node) (string, bool) {
	if s := n.GetString_(); s != nil {
		return s.GetSval(), true
	}
	return "", false
}

// scLastName returns the last element of a qualified name (a list of String nodes).
func scLastName(names []*pg.Node) string {
	if len(names) == 0 {
		return ""
	}
	s, _ := scStr(names[len(names)-1])
	return s
}

// scColname returns the output column name Postgres gives an unnamed select-list
// expression (FigureColname in parse_target.c) and whether this code is sure of it. "?column?"
// is Postgres's name for expressions it cannot name.
func scColname(n *pg.Node) (string, bool) {
	switch {
	case n == nil:
		return "?column?", true
	case n.GetColumnRef() != nil:
		f := n.GetColumnRef().GetFields()
		if len(f) == 0 {
			return "?column?", true
		}
		if s, ok := scStr(f[len(f)-1]); ok {
			return s, true
		}
		return "?column?", true // t.*: expanded, never matched by name here
	case n.GetAIndirection() != nil:
		ind := n.GetAIndirection().GetIndirection()
		for i := len(ind) - 1; i >= 0; i-- {
			if s, ok := scStr(ind[i]); ok {
				return s, true
			}
			if ind[i].GetAStar() != nil {
				return "?column?", true
			}
		}
		return scColname(n.GetAIndirection().GetArg())
	case n.GetFuncCall() != nil:
		return scLastName(n.GetFuncCall().GetFuncname()), true
	case n.GetAExpr() != nil:
		if n.GetAExpr().GetKind() == pg.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif", true
		}
		return "?column?", true
	case n.GetTypeCast() != nil:
		name, sure := scColname(n.GetTypeCast().GetArg())
		if name == "?column?" && sure {
			if tn := scLastName(n.GetTypeCast().GetTypeName().GetNames()); tn != "" {
				return tn, true
			}
		}
		return name, sure
	case n.GetCollateClause() != nil:
		return scColname(n.GetCollateClause().GetArg())
	case n.GetCaseExpr() != nil:
		return "case", true
	case n.GetAArrayExpr() != nil:
		return "array", true
	case n.GetRowExpr() != nil:
		return "row", true
	case n.GetCoalesceExpr() != nil:
		return "coalesce", true
	case n.GetMinMaxExpr() != nil:
		if n.GetMinMaxExpr().GetOp() == pg.MinMaxOp_IS_GREATEST {
			return "greatest", true
		}
		return "least", true
	case n.GetSqlvalueFunction() != nil:
		if name, ok := scSQLValueNames[n.GetSqlvalueFunction().GetOp()]; ok {
			return name, true
		}
		return "?column?", false
	case n.GetAConst() != nil, n.GetParamRef() != nil, n.GetBoolExpr() != nil,
		n.GetNullTest() != nil, n.GetBooleanTest() != nil:
		return "?column?", true
	}
	return "?column?", false
}

// scSQLValueNames are the output names of the SQL-standard value functions.
var scSQLValueNames = map[pg.SQLValueFunctionOp]string{
	pg.SQLValueFunctionOp_SVFOP_CURRENT_DATE:        "current_date",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIME:        "current_time",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIME_N:      "current_time",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP:   "current_timestamp",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N: "current_timestamp",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIME:           "localtime",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIME_N:         "localtime",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP:      "localtimestamp",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP_N:    "localtimestamp",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_ROLE:        "current_role",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_USER:        "current_user",
	pg.SQLValueFunctionOp_SVFOP_USER:                "user",
	pg.SQLValueFunctionOp_SVFOP_SESSION_USER:        "session_user",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG:     "current_catalog",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_SCHEMA:      "current_schema",
}

// scFuncName returns a function call's name when it is unqualified or qualified with
// pg_catalog (the built-in functions), else "".
func scFuncName(fc *pg.FuncCall) string {
	names := fc.GetFuncname()
	switch len(names) {
	case 1:
		s, _ := scStr(names[0])
		return s
	case 2:
		if schema, _ := scStr(names[0]); schema == "pg_catalog" {
			s, _ := scStr(names[1])
			return s
		}
	}
	return ""
}

// scBuiltinAggregates are Postgres's built-in aggregate functions. A call of one that the merge
// cannot combine must be rejected, never concatenated as if it were a plain function.
var scBuiltinAggregates = map[string]bool{
	"array_agg": true, "avg": true, "bit_and": true, "bit_or": true, "bit_xor": true,
	"bool_and": true, "bool_or": true, "count": true, "every": true, "json_agg": true,
	"json_agg_strict": true, "json_object_agg": true, "json_object_agg_strict": true,
	"json_object_agg_unique": true, "json_object_agg_unique_strict": true, "jsonb_agg": true,
	"jsonb_agg_strict": true, "jsonb_object_agg": true, "jsonb_object_agg_strict": true,
	"jsonb_object_agg_unique": true, "jsonb_object_agg_unique_strict": true, "max": true,
	"min": true, "range_agg": true, "range_intersect_agg": true, "string_agg": true,
	"sum": true, "xmlagg": true, "any_value": true, "corr": true, "covar_pop": true,
	"covar_samp": true, "regr_avgx": true, "regr_avgy": true, "regr_count": true,
	"regr_intercept": true, "regr_r2": true, "regr_slope": true, "regr_sxx": true,
	"regr_sxy": true, "regr_syy": true, "stddev": true, "stddev_pop": true,
	"stddev_samp": true, "variance": true, "var_pop": true, "var_samp": true, "mode": true,
	"percentile_cont": true, "percentile_disc": true, "rank": true, "dense_rank": true,
	"percent_rank": true, "cume_dist": true,
}

// scMergeable maps the aggregates the merge combines to their AggFunc.
var scMergeable = map[string]AggFunc{
	"count": AggCount, "sum": AggSum, "min": AggMin, "max": AggMax, "avg": AggAvg,
}

// scIsAggregateCall reports whether fc is (or looks like) an aggregate call: a built-in
// aggregate's name, or aggregate-only syntax (*, DISTINCT, ORDER BY inside, FILTER, WITHIN
// GROUP). Window calls (OVER) are reported by the caller before this matters.
func scIsAggregateCall(fc *pg.FuncCall) bool {
	if fc.GetAggStar() || fc.GetAggDistinct() || len(fc.GetAggOrder()) > 0 ||
		fc.GetAggFilter() != nil || fc.GetAggWithinGroup() {
		return true
	}
	return scBuiltinAggregates[scFuncName(fc)]
}

// scContainsAggregate reports whether an aggregate call occurs anywhere in n.
func scContainsAggregate(n *pg.Node) bool {
	found := false
	scWalk(n, func(x *pg.Node) bool {
		if found {
			return false
		}
		if fc := x.GetFuncCall(); fc != nil && fc.GetOver() == nil && scIsAggregateCall(fc) {
			found = true
			return false
		}
		if x.GetJsonArrayAgg() != nil || x.GetJsonObjectAgg() != nil || x.GetGroupingFunc() != nil {
			found = true
			return false
		}
		return true
	})
	return found
}
