package router

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

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
		if pos, known := b.keyIndex(table); known && len(s.Cols) == 0 {
			idx = pos // no column list: the key's place in the table's column order
		}
		switch {
		case len(s.Cols) == 0 && idx < 0 && s.SelectStmt != nil:
			b.walk(s.SelectStmt)
			b.markKeyless("INSERT into sharded table " + table + " without a column list")
		case idx < 0:
			b.walk(s.SelectStmt)
			b.markKeyless("INSERT into sharded table " + table + " without its key column " + keyCol)
		default:
			if r, rows, ok := b.insertSource(s.SelectStmt, idx, keyCol); ok {
				b.info.required = append(b.info.required, r)
				b.info.roots = append(b.info.roots, r)
				if rows != nil {
					b.info.valuesStmt, b.info.valuesCol, b.info.valuesKeys = s, keyCol, rows
				}
			} else {
				b.markKeyless("INSERT into sharded table " + table + " whose " + keyCol + " values are not all constants or parameters")
			}
		}
	}
	b.pushLevel()
	defer b.popLevel()
	b.addRel(relOf(s.Relation, table, keyCol))
	if oc := s.OnConflictClause; oc != nil {
		if oc.Action == pg.OnConflictAction_ONCONFLICT_UPDATE {
			// The conflicting row may be another customer's.
			b.info.inexact = true
		}
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
// select's constant or its keys. For VALUES, rows are where each row's key comes from, in row
// order. ok is false when a row's key cannot be known.
func (b *builder) insertSource(n *pg.Node, idx int, keyCol string) (node int32, rows []valueRef, ok bool) {
	sel := n.GetSelectStmt()
	if sel == nil {
		b.walk(n)
		return -1, nil, false
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
			return -1, nil, false
		}
		return b.newLeaf(keyCol, vals), vals, true
	}
	b.info.inexact = true // INSERT ... SELECT: the rows come from a query
	if sel.Op != pg.SetOperation_SETOP_NONE || len(sel.ValuesLists) > 0 {
		b.walk(n)
		return -1, nil, false
	}
	start := len(b.info.roots)
	node, from := int32(-1), int32(-1)
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
		return -1, nil, false
	}
	if node >= 0 {
		return node, nil, true
	}
	kids := append([]int32(nil), b.info.roots[start:]...)
	if from >= 0 {
		kids = append(kids, from)
	}
	return b.t.combineAll(keyAny, kids), nil, true
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
		b.info.inexact = true // rows may move to another customer
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
				// The key of a source subquery or CTE with keys of its own: the source
				// yields only rows of those keys (an ON condition filters nothing).
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

// keyIndex returns the position of a sharded table's key column in its column order, when the
// map knows it.
func (b *builder) keyIndex(table string) (int, bool) {
	if b.m == nil {
		return 0, false
	}
	i, ok := b.m.KeyIndex[table]
	return i, ok
}

// copyKeyIndex is keyIndex for a COPY without a column list, which skips generated columns.
func (b *builder) copyKeyIndex(table string) (int, bool) {
	if b.m == nil {
		return 0, false
	}
	if b.m.CopyKeyIndex == nil {
		return b.keyIndex(table) // a map whose loader does not tell generated columns apart
	}
	i, ok := b.m.CopyKeyIndex[table]
	return i, ok
}
