package router

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// SQLSTATEs of the errors Postgres itself raises for the same mistakes, which the scatter
// analysis finds before any group sees the statement.
const (
	codeInvalidColumnReference = "42P10" // ORDER BY position out of range, DISTINCT + ORDER BY
	codeAmbiguousColumn        = "42702"
	codeInvalidRowCountLimit   = "2201W" // LIMIT must not be negative
	codeInvalidRowCountOffset  = "2201X" // OFFSET must not be negative
)

// scatterHint is the hint of every "not supported over a scatter" error.
const scatterHint = "add a customer_id condition so that the query runs on one shard group"

// planScatter analyzes a keyless read whose FROM clause names sharded tables and returns how
// the groups' replies to ScatterSQL's rewrite merge into what one database would return, or
// why the statement cannot be scattered (never a wrong answer: what the merge cannot combine
// exactly is rejected). It does not modify stmt.
//
// Supported: plain select lists (concatenated); ORDER BY on output columns, positions or
// other expressions (hidden trailing sort columns), ASC/DESC, NULLS FIRST/LAST; LIMIT and
// OFFSET as constants or parameters; COUNT(*), COUNT(x), SUM, MIN, MAX and AVG with or
// without GROUP BY on output columns, ordered and limited; SELECT DISTINCT. Rejected with
// 0A000: set operations, WITH, subqueries, window functions, HAVING, DISTINCT ON, grouping
// sets, FETCH ... WITH TIES, aggregates other than the five, DISTINCT aggregates,
// expressions over aggregates, locking clauses, SELECT INTO, joins with unsharded tables and
// joins of sharded tables not equating their shard keys.
func planScatter(stmt *pg.SelectStmt, m *shardmap.Map) (*MergeSpec, *RouteError) {
	a, err := scAnalyze(stmt, m)
	if err != nil {
		return nil, err
	}
	return &a.spec, nil
}

// scAnalysis is what the analysis of a scatter learns: the MergeSpec, and the edits the
// per-group rewrite makes (which point into the analyzed tree).
type scAnalysis struct {
	spec MergeSpec
	from *scFrom
	// hidden are the expressions of the hidden trailing columns, in order.
	hidden []*pg.Node
	// avgTargets are the select-list entries holding an AVG call, which the rewrite turns
	// into SUM under the client's column name.
	avgTargets []*pg.ResTarget
	// aggregate: the groups return partial aggregates, so the rewrite drops their ORDER BY,
	// LIMIT and OFFSET (the merge applies them).
	aggregate bool
	// limit and offset are the client's LIMIT and OFFSET expressions (nil when absent).
	limit, offset *pg.Node
}

// scTarget is one entry of the select list.
type scTarget struct {
	rt       *pg.ResTarget
	expr     *pg.Node
	name     string
	nameSure bool
	star     bool
	column   int // index in the output, -1 when after a * (unknown)
	agg      AggFunc
}

func scNotSupported(msg, hint string) *RouteError {
	return &RouteError{Code: CodeFeatureNotSupported, Message: msg, Hint: hint}
}

func scUnsupported(what string) *RouteError {
	return scNotSupported(what+" over sharded tables without a shard key is not supported", scatterHint)
}

// scAnalyze analyzes stmt (see planScatter).
func scAnalyze(stmt *pg.SelectStmt, m *shardmap.Map) (*scAnalysis, *RouteError) {
	if err := scCheckShape(stmt); err != nil {
		return nil, err
	}
	from, err := scAnalyzeFrom(stmt, m)
	if err != nil {
		return nil, err
	}
	a := &scAnalysis{from: from, limit: stmt.GetLimitCount(), offset: stmt.GetLimitOffset()}

	targets, err := scTargets(stmt)
	if err != nil {
		return nil, err
	}
	star := false
	for _, t := range targets {
		if t.star {
			star = true
		}
	}
	a.spec.Star = star
	if !star {
		a.spec.Columns = len(targets)
	}
	a.spec.Distinct = len(stmt.GetDistinctClause()) > 0

	a.aggregate = len(stmt.GetGroupClause()) > 0
	for _, t := range targets {
		if t.agg != 0 {
			a.aggregate = true
		}
	}
	for _, s := range stmt.GetSortClause() {
		if scContainsAggregate(s.GetSortBy().GetNode()) {
			a.aggregate = true
		}
	}
	if a.aggregate {
		if err := a.analyzeAggregates(stmt, targets); err != nil {
			return nil, err
		}
	}
	if err := a.analyzeOrderBy(stmt, targets); err != nil {
		return nil, err
	}
	if err := a.analyzeLimits(stmt); err != nil {
		return nil, err
	}
	a.spec.Hidden = len(a.hidden)
	if star {
		// Hidden columns sit after an unknown number of visible ones: count them from the end.
		for i := range a.spec.OrderBy {
			if c := a.spec.OrderBy[i].Column; c >= scHiddenBase {
				a.spec.OrderBy[i].Column = c - scHiddenBase - a.spec.Hidden
			}
		}
	}
	return a, nil
}

// scHiddenBase marks hidden column indexes while the select list's width is unknown (a *).
const scHiddenBase = 1 << 20

// hiddenColumn appends a hidden column and returns its index in the per-group output.
func (a *scAnalysis) hiddenColumn(expr *pg.Node) int {
	a.hidden = append(a.hidden, expr)
	if a.spec.Star {
		return scHiddenBase + len(a.hidden) - 1
	}
	return a.spec.Columns + len(a.hidden) - 1
}

// scCheckShape rejects what no merge can handle, wherever it appears.
func scCheckShape(stmt *pg.SelectStmt) *RouteError {
	switch {
	case stmt.GetOp() != pg.SetOperation_SETOP_NONE:
		return scUnsupported("UNION, INTERSECT or EXCEPT")
	case stmt.GetWithClause() != nil:
		return scUnsupported("WITH")
	case stmt.GetIntoClause() != nil:
		return scUnsupported("SELECT INTO")
	case len(stmt.GetLockingClause()) > 0:
		return scUnsupported("FOR UPDATE/SHARE")
	case len(stmt.GetValuesLists()) > 0:
		return scUnsupported("VALUES")
	case len(stmt.GetWindowClause()) > 0:
		return scUnsupported("a window function")
	case stmt.GetHavingClause() != nil:
		return scNotSupported("HAVING over a scatter is not supported; add the shard key", scatterHint)
	case stmt.GetLimitOption() == pg.LimitOption_LIMIT_OPTION_WITH_TIES:
		return scUnsupported("FETCH ... WITH TIES")
	case stmt.GetGroupDistinct():
		return scUnsupported("GROUP BY DISTINCT")
	}
	for _, d := range stmt.GetDistinctClause() {
		if d != nil && d.GetNode() != nil {
			return scUnsupported("DISTINCT ON")
		}
	}
	for _, g := range stmt.GetGroupClause() {
		if g.GetGroupingSet() != nil {
			return scUnsupported("GROUPING SETS, ROLLUP or CUBE")
		}
	}
	var err *RouteError
	scWalk(stmt, func(n *pg.Node) bool {
		if err != nil {
			return false
		}
		switch {
		case n.GetSubLink() != nil, n.GetRangeSubselect() != nil:
			err = scUnsupported("a subquery")
		case n.GetFuncCall() != nil && n.GetFuncCall().GetOver() != nil:
			err = scUnsupported("a window function")
		case n.GetGroupingFunc() != nil:
			err = scUnsupported("GROUPING()")
		case n.GetJsonArrayAgg() != nil || n.GetJsonObjectAgg() != nil:
			err = scUnsupported("JSON_ARRAYAGG/JSON_OBJECTAGG")
		case n.GetRangeTableSample() != nil:
			err = scUnsupported("TABLESAMPLE")
		case n.GetRangeTableFunc() != nil, n.GetJsonTable() != nil:
			err = scUnsupported("XMLTABLE/JSON_TABLE")
		}
		return err == nil
	})
	return err
}

// scTargets classifies the select list.
func scTargets(stmt *pg.SelectStmt) ([]*scTarget, *RouteError) {
	var out []*scTarget
	column := 0
	for _, n := range stmt.GetTargetList() {
		rt := n.GetResTarget()
		if rt == nil {
			return nil, scUnsupported("this select list")
		}
		t := &scTarget{rt: rt, expr: rt.GetVal(), column: column}
		if scIsStar(t.expr) {
			t.star = true
			t.column = -1
			column = -1
		} else if column >= 0 {
			column++
		}
		if rt.GetName() != "" {
			t.name, t.nameSure = rt.GetName(), true
		} else {
			t.name, t.nameSure = scColname(t.expr)
		}
		if fc := t.expr.GetFuncCall(); fc != nil && scIsAggregateCall(fc) {
			f, err := scAggregate(fc)
			if err != nil {
				return nil, err
			}
			t.agg = f
		} else if scContainsAggregate(t.expr) {
			return nil, scNotSupported("expressions over aggregates (like sum(x)/count(x) or count(*)+1) over a scatter are not supported; select the aggregates themselves", scatterHint)
		}
		out = append(out, t)
	}
	return out, nil
}

// scIsStar reports whether a select-list entry expands to several columns (*, t.*, (f()).*).
func scIsStar(n *pg.Node) bool {
	if c := n.GetColumnRef(); c != nil {
		f := c.GetFields()
		return len(f) > 0 && f[len(f)-1].GetAStar() != nil
	}
	if ind := n.GetAIndirection(); ind != nil {
		l := ind.GetIndirection()
		return len(l) > 0 && l[len(l)-1].GetAStar() != nil
	}
	return false
}

// scAggregate checks that an aggregate call is one the merge combines and returns its kind.
func scAggregate(fc *pg.FuncCall) (AggFunc, *RouteError) {
	name := scFuncName(fc)
	f, ok := scMergeable[name]
	if !ok {
		if name == "" {
			name = scLastName(fc.GetFuncname())
		}
		return 0, scUnsupported("the aggregate " + strings.ToUpper(name) + "()")
	}
	if fc.GetAggDistinct() {
		return 0, scUnsupported(strings.ToUpper(name) + "(DISTINCT ...)")
	}
	if fc.GetAggWithinGroup() {
		return 0, scUnsupported("WITHIN GROUP")
	}
	if fc.GetAggStar() && f != AggCount {
		return 0, scUnsupported(strings.ToUpper(name) + "(*)")
	}
	if !fc.GetAggStar() && len(fc.GetArgs()) != 1 {
		return 0, scUnsupported(strings.ToUpper(name) + " with other than one argument")
	}
	for _, arg := range fc.GetArgs() {
		if scContainsAggregate(arg) {
			return 0, scUnsupported("a nested aggregate")
		}
	}
	if fc.GetAggFilter() != nil && scContainsAggregate(fc.GetAggFilter()) {
		return 0, scUnsupported("a nested aggregate")
	}
	return f, nil
}

// analyzeAggregates records the aggregates and the GROUP BY columns of an aggregating select.
func (a *scAnalysis) analyzeAggregates(stmt *pg.SelectStmt, targets []*scTarget) *RouteError {
	for _, t := range targets {
		if t.star {
			return scUnsupported("* in an aggregating select")
		}
	}
	// Visible aggregates first (their hidden AVG counts come first among the hidden columns).
	for i, t := range targets {
		switch t.agg {
		case 0:
			continue
		case AggAvg:
			a.avgTargets = append(a.avgTargets, t.rt)
			count := a.hiddenColumn(scRenamedCall(t.expr.GetFuncCall(), "count"))
			a.spec.Aggregates = append(a.spec.Aggregates, Aggregate{Func: AggAvg, Column: i, CountColumn: count, ClientType: scAvgType(t.expr.GetFuncCall())})
		default:
			a.spec.Aggregates = append(a.spec.Aggregates, Aggregate{Func: t.agg, Column: i})
		}
	}
	grouped := make(map[int]bool)
	for _, g := range stmt.GetGroupClause() {
		col := -1
		if c := g.GetAConst(); c != nil {
			iv, ok := c.GetVal().(*pg.A_Const_Ival)
			if !ok || c.GetIsnull() {
				return scNotSupported("GROUP BY a non-integer constant over a scatter is not supported", "")
			}
			p := int(iv.Ival.GetIval())
			if p < 1 || p > len(targets) {
				return &RouteError{Code: codeInvalidColumnReference, Message: fmt.Sprintf("GROUP BY position %d is not in select list", p)}
			}
			col = p - 1
		} else {
			for i, t := range targets {
				if t.agg == 0 && scEqual(t.expr, g) {
					col = i
					break
				}
			}
			if col < 0 {
				if c := g.GetColumnRef(); c != nil && len(c.GetFields()) == 1 {
					name, _ := scStr(c.GetFields()[0])
					for _, t := range targets {
						if t.name == name {
							return scNotSupported(fmt.Sprintf("GROUP BY %s over a scatter names an output alias; group by the expression or its position", scQuoteIdent(name)), "")
						}
					}
				}
				return scNotSupported("GROUP BY expressions that are not in the select list are not supported over a scatter; select them too", scatterHint)
			}
		}
		if targets[col].agg != 0 {
			return &RouteError{Code: "42803", Message: "aggregate functions are not allowed in GROUP BY"}
		}
		if !grouped[col] {
			grouped[col] = true
			a.spec.GroupBy = append(a.spec.GroupBy, col)
		}
	}
	for i, t := range targets {
		if t.agg == 0 && !grouped[i] {
			return scNotSupported(fmt.Sprintf("select-list entry %d of an aggregating scatter must be an aggregate or appear in GROUP BY", i+1), scatterHint)
		}
	}
	return nil
}

// scRenamedCall returns a copy of an aggregate call under another function name, keeping
// its schema qualification, arguments and FILTER.
func scRenamedCall(fc *pg.FuncCall, name string) *pg.Node {
	c := &pg.FuncCall{
		Args:       fc.GetArgs(),
		AggOrder:   fc.GetAggOrder(),
		AggFilter:  fc.GetAggFilter(),
		AggStar:    fc.GetAggStar(),
		Funcformat: fc.GetFuncformat(),
		Location:   -1,
	}
	for _, n := range fc.GetFuncname()[:len(fc.GetFuncname())-1] {
		c.Funcname = append(c.Funcname, n)
	}
	c.Funcname = append(c.Funcname, pg.MakeStrNode(name))
	return &pg.Node{Node: &pg.Node_FuncCall{FuncCall: c}}
}

// scAvgType returns the type OID of AVG's result when the argument's type is visible (an
// explicit cast), else 0: the merge decides from the type of the groups' sums.
func scAvgType(fc *pg.FuncCall) uint32 {
	if len(fc.GetArgs()) != 1 || fc.GetArgs()[0].GetTypeCast() == nil {
		return 0
	}
	tn := fc.GetArgs()[0].GetTypeCast().GetTypeName()
	if len(tn.GetArrayBounds()) > 0 {
		return 0
	}
	switch scLastName(tn.GetNames()) {
	case "int2", "int4", "int8", "numeric":
		return 1700
	case "float4", "float8":
		return 701
	}
	return 0
}

// analyzeOrderBy resolves the ORDER BY items as Postgres does (an output column name, a
// position, or an expression) and records the sort keys.
func (a *scAnalysis) analyzeOrderBy(stmt *pg.SelectStmt, targets []*scTarget) *RouteError {
	for _, item := range stmt.GetSortClause() {
		sb := item.GetSortBy()
		if sb == nil {
			return scUnsupported("this ORDER BY")
		}
		if len(sb.GetUseOp()) > 0 || sb.GetSortbyDir() == pg.SortByDir_SORTBY_USING {
			return scUnsupported("ORDER BY ... USING")
		}
		key := SortKey{Desc: sb.GetSortbyDir() == pg.SortByDir_SORTBY_DESC}
		switch sb.GetSortbyNulls() {
		case pg.SortByNulls_SORTBY_NULLS_FIRST:
			key.NullsFirst = true
		case pg.SortByNulls_SORTBY_NULLS_LAST:
			key.NullsFirst = false
		default:
			key.NullsFirst = key.Desc
		}
		col, err := a.sortColumn(sb.GetNode(), targets)
		if err != nil {
			return err
		}
		key.Column = col
		a.spec.OrderBy = append(a.spec.OrderBy, key)
	}
	return nil
}

// sortColumn returns the per-group column an ORDER BY expression sorts on, adding a hidden
// column when it is not in the output.
func (a *scAnalysis) sortColumn(n *pg.Node, targets []*scTarget) (int, *RouteError) {
	match := -1
	// A bare name is an output column name first (SQL92).
	if c := n.GetColumnRef(); c != nil && len(c.GetFields()) == 1 {
		if name, ok := scStr(c.GetFields()[0]); ok {
			unsure := false
			for i, t := range targets {
				if !t.nameSure {
					unsure = true
				}
				if t.star || t.name != name {
					continue
				}
				if match >= 0 && !scEqual(targets[match].expr, t.expr) {
					return 0, &RouteError{Code: codeAmbiguousColumn, Message: fmt.Sprintf("ORDER BY %q is ambiguous", name)}
				}
				if match < 0 {
					match = i
				}
			}
			if match < 0 && unsure {
				return 0, scNotSupported(fmt.Sprintf("ORDER BY %s over a scatter cannot be resolved; order by the position of the output column", scQuoteIdent(name)), "")
			}
		}
	}
	if c := n.GetAConst(); c != nil && match < 0 {
		iv, ok := c.GetVal().(*pg.A_Const_Ival)
		if !ok || c.GetIsnull() {
			return 0, &RouteError{Code: CodeSyntaxError, Message: "non-integer constant in ORDER BY"}
		}
		p := int(iv.Ival.GetIval())
		if p < 1 || (!a.spec.Star && p > len(targets)) {
			return 0, &RouteError{Code: codeInvalidColumnReference, Message: fmt.Sprintf("ORDER BY position %d is not in select list", p)}
		}
		// Visible columns come first in every group's output, in the client's order.
		return p - 1, nil
	}
	if match < 0 {
		// An expression: an equal output expression, else a hidden column (SQL99).
		for i, t := range targets {
			if !t.star && scEqual(t.expr, n) {
				match = i
				break
			}
		}
	}
	if match >= 0 && targets[match].column >= 0 {
		return targets[match].column, nil
	}
	if a.spec.Distinct {
		if a.spec.Star {
			// The expression may be one of the columns * expands to; this code cannot tell.
			return 0, scNotSupported("SELECT DISTINCT * with ORDER BY over a scatter is not supported; list the columns", scatterHint)
		}
		return 0, &RouteError{Code: codeInvalidColumnReference, Message: "for SELECT DISTINCT, ORDER BY expressions must appear in select list"}
	}
	expr := n
	if match >= 0 {
		expr = targets[match].expr // an output column after a *: copy its expression
	}
	if !a.aggregate {
		return a.hiddenColumn(expr), nil
	}
	// An aggregating select sorts on aggregates and group columns only.
	fc := expr.GetFuncCall()
	if fc == nil || !scIsAggregateCall(fc) {
		return 0, scNotSupported("ORDER BY of an aggregating scatter must use output columns or aggregates", scatterHint)
	}
	f, err := scAggregate(fc)
	if err != nil {
		return 0, err
	}
	if f == AggAvg {
		sum := a.hiddenColumn(scRenamedCall(fc, "sum"))
		count := a.hiddenColumn(scRenamedCall(fc, "count"))
		a.spec.Aggregates = append(a.spec.Aggregates, Aggregate{Func: AggAvg, Column: sum, CountColumn: count, ClientType: scAvgType(fc)})
		return sum, nil
	}
	col := a.hiddenColumn(expr)
	a.spec.Aggregates = append(a.spec.Aggregates, Aggregate{Func: f, Column: col})
	return col, nil
}

// analyzeLimits records LIMIT and OFFSET.
func (a *scAnalysis) analyzeLimits(stmt *pg.SelectStmt) *RouteError {
	var err *RouteError
	if a.spec.Limit, err = scLimitValue(stmt.GetLimitCount(), "LIMIT", codeInvalidRowCountLimit); err != nil {
		return err
	}
	if a.spec.Offset, err = scLimitValue(stmt.GetLimitOffset(), "OFFSET", codeInvalidRowCountOffset); err != nil {
		return err
	}
	return nil
}

// scLimitValue reads a LIMIT or OFFSET expression: absent or NULL (LIMIT ALL), an integer
// constant, or a parameter (possibly cast).
func scLimitValue(n *pg.Node, what, negCode string) (LimitValue, *RouteError) {
	if n == nil {
		return LimitValue{}, nil
	}
	if tc := n.GetTypeCast(); tc != nil {
		switch scLastName(tc.GetTypeName().GetNames()) {
		case "int2", "int4", "int8":
			n = tc.GetArg()
		}
	}
	if c := n.GetAConst(); c != nil {
		if c.GetIsnull() {
			return LimitValue{}, nil
		}
		if iv, ok := c.GetVal().(*pg.A_Const_Ival); ok {
			v := int64(iv.Ival.GetIval())
			if v < 0 {
				return LimitValue{}, &RouteError{Code: negCode, Message: what + " must not be negative"}
			}
			return LimitValue{Set: true, Const: v}, nil
		}
		if sv, ok := c.GetVal().(*pg.A_Const_Sval); ok {
			// A quoted integer ('25'), as drivers' client-side parameter interpolation writes.
			v, err := strconv.ParseInt(strings.TrimSpace(sv.Sval.GetSval()), 10, 64)
			if err == nil && v < 0 {
				return LimitValue{}, &RouteError{Code: negCode, Message: what + " must not be negative"}
			}
			if err == nil {
				return LimitValue{Set: true, Const: v}, nil
			}
		}
		if fv, ok := c.GetVal().(*pg.A_Const_Fval); ok {
			// Integers beyond int32 parse as "float" constants.
			if v, err := strconv.ParseInt(fv.Fval.GetFval(), 10, 64); err == nil && v >= 0 {
				return LimitValue{Set: true, Const: v}, nil
			}
		}
	}
	if p := n.GetParamRef(); p != nil && p.GetNumber() > 0 {
		return LimitValue{Set: true, Param: int(p.GetNumber())}, nil
	}
	return LimitValue{}, scNotSupported(what+" over a scatter must be an integer constant or a parameter", "")
}

// scAddLimits returns limit+offset for the groups' LIMIT, saturating at no limit.
func scAddLimits(limit, offset int64) (int64, bool) {
	if offset > math.MaxInt64-limit {
		return 0, false
	}
	return limit + offset, true
}

// scQuoteIdent quotes an identifier for messages when it is not a plain lower-case one.
func scQuoteIdent(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (i > 0 && (r >= '0' && r <= '9' || r == '$'))) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
