package router

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// statement analyzes one statement of a string: its kind and where it runs.
func (b *builder) statement(n *pg.Node) stmtTemplate {
	if n == nil || n.Node == nil {
		return fixed(KindOther, TargetAny)
	}
	switch x := n.Node.(type) {
	case *pg.Node_SelectStmt:
		return b.selectTop(x.SelectStmt)
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		b.walk(nodeMessage(n))
		st := b.dml(KindWrite)
		if ins := n.GetInsertStmt(); ins != nil && st.target == TargetShards {
			st.split = b.insertSplit(ins, &st)
		}
		return st
	case *pg.Node_ExplainStmt:
		return b.explain(x.ExplainStmt)
	case *pg.Node_CopyStmt:
		return b.copyStmt(x.CopyStmt)
	case *pg.Node_DeclareCursorStmt:
		b.walk(x.DeclareCursorStmt.Query)
		st := b.dml(b.queryKind())
		if st.target == TargetShards && !b.info.modifying {
			st.fallback, st.fallErr = TargetReject, b.needsKey("a cursor over sharded table")
		}
		return st
	case *pg.Node_LockStmt:
		b.walkAll(x.LockStmt.Relations)
		st := b.dml(KindWrite)
		st.fallErr = b.needsHint("LOCK of sharded table")
		return st
	case *pg.Node_TransactionStmt:
		return transaction(x.TransactionStmt)
	case *pg.Node_VariableShowStmt:
		return fixed(KindRead, TargetAny)
	case *pg.Node_VariableSetStmt, *pg.Node_DiscardStmt, *pg.Node_PrepareStmt,
		*pg.Node_DeallocateStmt, *pg.Node_ListenStmt, *pg.Node_UnlistenStmt, *pg.Node_NotifyStmt,
		*pg.Node_ClosePortalStmt, *pg.Node_FetchStmt, *pg.Node_ConstraintsSetStmt, *pg.Node_LoadStmt:
		return fixed(KindSession, TargetAny)
	case *pg.Node_ExecuteStmt, *pg.Node_CallStmt, *pg.Node_DoStmt:
		// What they run is not visible here: the session's current group, on a writer.
		return fixed(KindWrite, TargetAny)
	case *pg.Node_VacuumStmt, *pg.Node_ClusterStmt, *pg.Node_ReindexStmt:
		if r := n.GetReindexStmt(); r != nil && r.Kind != pg.ReindexObjectType_REINDEX_OBJECT_TABLE {
			return fixed(KindOther, TargetAllGroups) // an index, a schema, the database
		}
		b.walk(nodeMessage(n))
		if b.info.unsharded && !b.info.sharded {
			return fixed(KindOther, TargetDefault)
		}
		return fixed(KindOther, TargetAllGroups)
	case *pg.Node_CheckPointStmt, *pg.Node_AlterSystemStmt:
		return fixed(KindOther, TargetAllGroups)
	}
	return b.ddlStatement(n)
}

// ctasError rejects SELECT INTO, CREATE TABLE AS and materialized views over sharded tables:
// each group would hold a different table.
func ctasError() *RouteError {
	return &RouteError{Code: CodeFeatureNotSupported,
		Message: "SELECT INTO, CREATE TABLE AS and materialized views over sharded tables are not supported",
		Hint:    "create the table, then fill it with INSERT ... SELECT per customer"}
}

// fixed is a statement whose target does not depend on keys.
func fixed(k Kind, t Target) stmtTemplate { return stmtTemplate{kind: k, target: t, root: -1} }

func reject(k Kind, err *RouteError) stmtTemplate {
	return stmtTemplate{kind: k, target: TargetReject, err: err, root: -1}
}

// queryKind is the kind of the query just walked: a read, unless it locks rows, creates a
// table, modifies data or calls a function that might.
func (b *builder) queryKind() Kind {
	if b.info.lock || b.info.into || b.info.modifying || b.info.unknownFunc {
		return KindWrite
	}
	return KindRead
}

func (b *builder) selectTop(s *pg.SelectStmt) stmtTemplate {
	b.selectStmt(s, nil)
	if b.info.into && b.info.sharded {
		return reject(KindWrite, ctasError())
	}
	st := b.dml(b.queryKind())
	if st.target == TargetShards && !b.info.lock && !b.info.into && !b.info.modifying {
		// Without a key it scatters; the merge may depend on literals outside the WHERE
		// clause (LIMIT 10, ORDER BY 2), so those are part of the shape.
		b.pinMode, b.pinWhere = pinOutside, s.WhereClause
		merge, err := planScatter(s, b.m)
		if err != nil {
			st.fallback, st.fallErr = TargetReject, err
		} else {
			st.fallback, st.fallErr, st.merge = TargetScatter, nil, merge
		}
	}
	return st
}

// dml decides where a walked statement on tables runs: nowhere when it mixes sharded and
// unsharded tables, the default group for unsharded ones, any group for none; for sharded
// tables its keys decide at plan time, and without them it is rejected (callers replace the
// fallback for reads that scatter).
func (b *builder) dml(kind Kind) stmtTemplate {
	in := &b.info
	switch {
	case in.sharded && in.unsharded:
		return reject(kind, &RouteError{
			Code:    CodeFeatureNotSupported,
			Message: "joins between sharded and unsharded tables are not supported",
			Hint: in.shardedTable + " is sharded by " + in.shardedKey + " and " + in.unshardedTable +
				" is not: query them separately",
		})
	case in.unsharded:
		return fixed(kind, TargetDefault)
	case !in.sharded:
		return fixed(kind, TargetAny)
	case in.staticErr != nil:
		return reject(kind, in.staticErr)
	}
	st := stmtTemplate{kind: kind, target: TargetShards, root: -1, required: in.required,
		keyless: in.keyless, checks: in.checks, fallback: TargetReject,
		exact: in.relRefs == 1 && !in.inexact && !in.unknownFunc}
	if len(in.roots) > 0 {
		st.root = b.t.combineAll(keyAny, in.roots)
	}
	switch {
	case in.writeTable != "":
		hint := "add WHERE " + in.writeKey + " = ... or /* shard_key=N */"
		switch in.writeVerb {
		case "INSERT into":
			hint = "give " + in.writeKey + " a constant or parameter in every row, or add /* shard_key=N */"
		case "MERGE into":
			hint = "add " + in.writeKey + " = ... to ON, give every INSERT action a constant or parameter " +
				in.writeKey + ", or add /* shard_key=N */"
		}
		st.fallErr = &RouteError{Code: CodeFeatureNotSupported,
			Message: in.writeVerb + " sharded table " + in.writeTable + " needs the shard key " + in.writeKey,
			Hint:    hint}
	case in.lock:
		st.fallErr = b.needsKey("SELECT ... FOR UPDATE/SHARE on sharded table")
	default:
		st.fallErr = b.needsKey("a write to sharded table")
	}
	if len(in.checks) > 0 {
		key := in.writeKey
		st.moveErr = &RouteError{Code: CodeFeatureNotSupported,
			Message: "setting " + key + " to a value in another shard than the rows' is not supported",
			Hint:    "delete the rows and insert them with the new " + key}
		st.unknownErr = &RouteError{Code: CodeFeatureNotSupported,
			Message: "setting " + key + " to a value unknown to the router is not supported",
			Hint:    "bind the new " + key + " as a parameter of the extended protocol"}
	}
	return st
}

// needsKey is the error of a statement on sharded tables that needs a key and has none.
func (b *builder) needsKey(what string) *RouteError {
	return &RouteError{Code: CodeFeatureNotSupported,
		Message: what + " " + b.info.shardedTable + " needs the shard key " + b.info.shardedKey,
		Hint:    "add WHERE " + b.info.shardedKey + " = ... or /* shard_key=N */"}
}

// needsHint is the error of a statement on sharded tables that only a hint can route.
func (b *builder) needsHint(what string) *RouteError {
	return &RouteError{Code: CodeFeatureNotSupported,
		Message: what + " " + b.info.shardedTable + " needs a shard key",
		Hint:    "add /* shard_key=N */ or SET shardwire.shard_key = N"}
}

func (b *builder) explain(e *pg.ExplainStmt) stmtTemplate {
	st := b.statement(e.Query)
	// Options (ANALYZE 0) and the inner statement's literals decide the plan.
	b.pinMode, b.pinWhere = pinAll, nil
	if !explainAnalyze(e.Options) {
		st.kind = KindRead
	}
	if st.target == TargetShards {
		st.merge, st.split = nil, nil
		st.fallback, st.fallErr = TargetReject, &RouteError{Code: CodeFeatureNotSupported,
			Message: "EXPLAIN of a statement without a shard key on sharded tables is not supported",
			Hint:    "add /* shard_key=N */ to explain it on the group of that key"}
	}
	return st
}

// explainAnalyze reports whether EXPLAIN options hold ANALYZE (which runs the statement).
func explainAnalyze(opts []*pg.Node) bool {
	on := false
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || d.Defname != "analyze" {
			continue
		}
		switch a := d.Arg; {
		case a == nil:
			on = true
		case a.GetBoolean() != nil:
			on = a.GetBoolean().Boolval
		case a.GetInteger() != nil:
			on = a.GetInteger().Ival != 0
		case a.GetString_() != nil:
			switch strings.ToLower(a.GetString_().Sval) {
			case "off", "false", "no", "0":
				on = false
			default:
				on = true
			}
		default:
			on = true
		}
	}
	return on
}

func (b *builder) copyStmt(c *pg.CopyStmt) stmtTemplate {
	if c.Query != nil {
		b.walk(c.Query)
		st := b.dml(b.queryKind())
		if st.target == TargetShards && !b.info.modifying {
			st.fallback, st.fallErr = TargetReject, b.needsKey("COPY of a query on sharded table")
		}
		return st
	}
	kind := KindRead
	if c.IsFrom {
		kind = KindWrite
	}
	table, key, _ := b.tableRef(c.Relation)
	b.walk(c.WhereClause)
	switch {
	case key != "":
		return b.copyTable(c, kind, table, key)
	case b.info.unsharded:
		return fixed(kind, TargetDefault)
	}
	return fixed(kind, TargetAny)
}

func transaction(t *pg.TransactionStmt) stmtTemplate {
	switch t.Kind {
	case pg.TransactionStmtKind_TRANS_STMT_BEGIN, pg.TransactionStmtKind_TRANS_STMT_START:
		st := fixed(KindBegin, TargetAny)
		st.tx = TxBegin
		return st
	case pg.TransactionStmtKind_TRANS_STMT_COMMIT:
		st := fixed(KindCommit, TargetAny)
		st.tx = TxCommit
		return st
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		st := fixed(KindRollback, TargetAny)
		st.tx = TxRollback
		return st
	case pg.TransactionStmtKind_TRANS_STMT_PREPARE:
		st := fixed(KindOther, TargetAny) // ends the session's transaction, like COMMIT
		st.tx = TxCommit
		return st
	case pg.TransactionStmtKind_TRANS_STMT_SAVEPOINT, pg.TransactionStmtKind_TRANS_STMT_RELEASE,
		pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return fixed(KindSavepoint, TargetAny)
	}
	return fixed(KindOther, TargetAny) // COMMIT PREPARED, ROLLBACK PREPARED
}
