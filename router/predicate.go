package router

import (
	"sort"

	pg "github.com/pganalyze/pg_query_go/v6"
)

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
		continuesString(b.sql[t.end:b.toks[i+1].start]) {
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
			spec.init.merge(v.static)
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
