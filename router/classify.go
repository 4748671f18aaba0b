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
		return b.dml(KindWrite)
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
		keyless: in.keyless, checks: in.checks, fallback: TargetReject}
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
		st.merge = nil
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
	case key != "" && c.IsFrom:
		return reject(kind, &RouteError{Code: CodeFeatureNotSupported,
			Message: "COPY into a sharded table is not supported yet",
			Hint:    "insert the rows of " + table + " with INSERT statements that name " + key})
	case key != "":
		return reject(kind, &RouteError{Code: CodeFeatureNotSupported,
			Message: "COPY of sharded table " + table + " is not supported",
			Hint:    "use COPY (SELECT ... FROM " + table + " WHERE " + key + " = ...) TO STDOUT"})
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

// funcCall notes a call of a function not known to be read-only.
func (b *builder) funcCall(fc *pg.FuncCall) {
	var schema, name string
	switch names := fc.GetFuncname(); len(names) {
	case 1:
		name = names[0].GetString_().GetSval()
	case 2:
		schema, name = names[0].GetString_().GetSval(), names[1].GetString_().GetSval()
	default:
		b.info.unknownFunc = true
		return
	}
	if schema != "" && schema != "pg_catalog" || !readOnlyFunction(name) {
		b.info.unknownFunc = true
	}
}

// readOnlyFunction reports whether a built-in function is known to have no side effects and
// to work on a replica.
func readOnlyFunction(name string) bool {
	if strings.HasPrefix(name, "json_") || strings.HasPrefix(name, "jsonb_") {
		return true // every built-in JSON function is pure
	}
	_, ok := readOnlyFunctions[name]
	return ok
}

// readOnlyFunctions are the built-in functions (other than json_* and jsonb_*) a read may call.
// nextval, setval, currval, txid_current, pg_current_wal_lsn, set_config, the advisory lock
// functions and anything unknown make a statement a write.
var readOnlyFunctions = map[string]struct{}{
	// aggregates and window functions
	"count": {}, "sum": {}, "min": {}, "max": {}, "avg": {}, "array_agg": {}, "string_agg": {},
	"bool_and": {}, "bool_or": {}, "every": {}, "bit_and": {}, "bit_or": {}, "bit_xor": {},
	"stddev": {}, "stddev_pop": {}, "stddev_samp": {}, "variance": {}, "var_pop": {}, "var_samp": {},
	"percentile_cont": {}, "percentile_disc": {}, "mode": {}, "corr": {}, "covar_pop": {},
	"covar_samp": {}, "xmlagg": {}, "row_number": {}, "rank": {}, "dense_rank": {},
	"percent_rank": {}, "cume_dist": {}, "ntile": {}, "lag": {}, "lead": {}, "first_value": {},
	"last_value": {}, "nth_value": {}, "any_value": {},
	// conditionals and comparison
	"coalesce": {}, "nullif": {}, "greatest": {}, "least": {}, "num_nulls": {}, "num_nonnulls": {},
	// math
	"abs": {}, "ceil": {}, "ceiling": {}, "floor": {}, "round": {}, "trunc": {}, "sign": {},
	"sqrt": {}, "cbrt": {}, "power": {}, "pow": {}, "exp": {}, "ln": {}, "log": {}, "log10": {},
	"mod": {}, "div": {}, "pi": {}, "degrees": {}, "radians": {}, "sin": {}, "cos": {}, "tan": {},
	"asin": {}, "acos": {}, "atan": {}, "atan2": {}, "width_bucket": {}, "gcd": {}, "lcm": {},
	"random": {}, "scale": {}, "factorial": {},
	// strings
	"lower": {}, "upper": {}, "length": {}, "char_length": {}, "character_length": {},
	"octet_length": {}, "bit_length": {}, "substr": {}, "substring": {}, "position": {},
	"strpos": {}, "trim": {}, "btrim": {}, "ltrim": {}, "rtrim": {}, "lpad": {}, "rpad": {},
	"replace": {}, "concat": {}, "concat_ws": {}, "format": {}, "left": {}, "right": {},
	"reverse": {}, "repeat": {}, "split_part": {}, "initcap": {}, "md5": {}, "sha224": {},
	"sha256": {}, "sha384": {}, "sha512": {}, "encode": {}, "decode": {}, "to_hex": {},
	"ascii": {}, "chr": {}, "regexp_replace": {}, "regexp_match": {}, "regexp_matches": {},
	"regexp_like": {}, "regexp_count": {}, "regexp_substr": {}, "regexp_instr": {},
	"regexp_split_to_array": {}, "regexp_split_to_table": {}, "starts_with": {},
	"translate": {}, "quote_ident": {}, "quote_literal": {}, "quote_nullable": {},
	"string_to_array": {}, "array_to_string": {}, "overlay": {}, "normalize": {},
	"unistr": {}, "convert_from": {}, "convert_to": {}, "to_ascii": {},
	// dates and times
	"now": {}, "clock_timestamp": {}, "statement_timestamp": {}, "transaction_timestamp": {},
	"timeofday": {}, "date_trunc": {}, "date_part": {}, "extract": {}, "age": {},
	"make_date": {}, "make_time": {}, "make_timestamp": {}, "make_timestamptz": {},
	"make_interval": {}, "to_char": {}, "to_date": {}, "to_timestamp": {}, "to_number": {},
	"isfinite": {}, "justify_days": {}, "justify_hours": {}, "justify_interval": {},
	"date_bin": {}, "timezone": {}, "date_add": {}, "date_subtract": {},
	// arrays and sets
	"array_length": {}, "array_upper": {}, "array_lower": {}, "cardinality": {}, "unnest": {},
	"array_append": {}, "array_prepend": {}, "array_cat": {}, "array_position": {},
	"array_positions": {}, "array_remove": {}, "array_replace": {}, "array_dims": {},
	"array_ndims": {}, "array_fill": {}, "array_sample": {}, "array_shuffle": {}, "trim_array": {},
	"generate_series": {}, "generate_subscripts": {},
	// JSON constructors that do not start with json_ or jsonb_
	"to_json": {}, "to_jsonb": {}, "row_to_json": {}, "array_to_json": {},
	// system information
	"pg_sleep": {}, "current_setting": {}, "version": {}, "pg_backend_pid": {},
	"current_database": {}, "current_schema": {}, "current_schemas": {}, "current_catalog": {},
	"current_user": {}, "session_user": {}, "pg_typeof": {}, "format_type": {},
	"to_regclass": {}, "to_regtype": {}, "to_regproc": {}, "to_regnamespace": {},
	"obj_description": {}, "col_description": {}, "shobj_description": {},
	"pg_get_expr": {}, "pg_get_indexdef": {}, "pg_get_constraintdef": {}, "pg_get_viewdef": {},
	"pg_get_functiondef": {}, "pg_get_userbyid": {}, "pg_get_serial_sequence": {},
	"pg_encoding_to_char": {}, "pg_table_size": {}, "pg_total_relation_size": {},
	"pg_relation_size": {}, "pg_indexes_size": {}, "pg_database_size": {}, "pg_size_pretty": {},
	"pg_column_size": {}, "has_table_privilege": {}, "has_schema_privilege": {},
	"has_database_privilege": {}, "has_column_privilege": {}, "has_function_privilege": {},
	"pg_has_role": {}, "pg_is_in_recovery": {}, "pg_last_wal_replay_lsn": {},
	"pg_postmaster_start_time": {}, "inet_client_addr": {}, "inet_server_addr": {},
	"pg_table_is_visible": {}, "pg_type_is_visible": {}, "pg_function_is_visible": {},
	"gen_random_uuid": {}, "uuidv4": {},
	// casts written as calls
	"int2": {}, "int4": {}, "int8": {}, "float4": {}, "float8": {}, "numeric": {}, "text": {},
	"varchar": {}, "bool": {}, "date": {}, "timestamp": {}, "timestamptz": {}, "interval": {},
}

// ddlStatement classifies schema changes and what is left.
func (b *builder) ddlStatement(n *pg.Node) stmtTemplate {
	switch x := n.Node.(type) {
	case *pg.Node_CreateStmt:
		return b.createTable(x.CreateStmt)
	case *pg.Node_CreateForeignTableStmt:
		return b.createTable(x.CreateForeignTableStmt.BaseStmt)
	case *pg.Node_IndexStmt, *pg.Node_TruncateStmt, *pg.Node_CreateTrigStmt,
		*pg.Node_CreatePolicyStmt, *pg.Node_AlterPolicyStmt, *pg.Node_RuleStmt,
		*pg.Node_CreateStatsStmt, *pg.Node_RefreshMatViewStmt:
		b.walk(nodeMessage(n))
		return b.ddl()
	case *pg.Node_AlterTableStmt:
		if st, ok := objectTarget(x.AlterTableStmt.Objtype); ok {
			return st
		}
		b.walk(x.AlterTableStmt)
		return b.ddl()
	case *pg.Node_ViewStmt:
		v := x.ViewStmt
		if v.View.GetRelpersistence() == "t" {
			return fixed(KindDDL, TargetAny)
		}
		b.tableRef(v.View)
		b.walk(v.Query)
		return b.ddl()
	case *pg.Node_CreateTableAsStmt:
		c := x.CreateTableAsStmt
		if c.Into.GetRel().GetRelpersistence() == "t" {
			return fixed(KindDDL, TargetAny)
		}
		b.walk(c.Query)
		if b.info.sharded {
			return reject(KindDDL, ctasError())
		}
		b.tableRef(c.Into.GetRel())
		return fixed(KindDDL, TargetDefault)
	case *pg.Node_DropStmt:
		return b.dropStmt(x.DropStmt)
	case *pg.Node_CommentStmt:
		return b.onObject(x.CommentStmt.Objtype, x.CommentStmt.Object)
	case *pg.Node_GrantStmt:
		g := x.GrantStmt
		if g.Objtype != pg.ObjectType_OBJECT_TABLE || g.Targtype != pg.GrantTargetType_ACL_TARGET_OBJECT {
			return fixed(KindDDL, TargetAllGroups)
		}
		b.walkAll(g.Objects)
		return b.ddl()
	case *pg.Node_RenameStmt:
		r := x.RenameStmt
		if st, ok := objectTarget(r.RelationType); ok && r.Relation != nil {
			return st
		}
		switch r.RenameType {
		case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_FOREIGN_TABLE, pg.ObjectType_OBJECT_COLUMN,
			pg.ObjectType_OBJECT_TABCONSTRAINT, pg.ObjectType_OBJECT_TRIGGER,
			pg.ObjectType_OBJECT_POLICY, pg.ObjectType_OBJECT_RULE:
			b.tableRef(r.Relation)
			return b.ddl()
		}
		st, _ := objectTarget(r.RenameType)
		return st
	case *pg.Node_AlterObjectSchemaStmt:
		return b.onRelation(x.AlterObjectSchemaStmt.ObjectType, x.AlterObjectSchemaStmt.Relation)
	case *pg.Node_AlterOwnerStmt:
		return b.onRelation(x.AlterOwnerStmt.ObjectType, x.AlterOwnerStmt.Relation)
	case *pg.Node_CreateSeqStmt:
		if x.CreateSeqStmt.Sequence.GetRelpersistence() == "t" {
			return fixed(KindDDL, TargetAny)
		}
		return fixed(KindDDL, TargetDefault)
	case *pg.Node_AlterSeqStmt:
		return fixed(KindDDL, TargetDefault)
	case *pg.Node_CreateSchemaStmt, *pg.Node_CreateExtensionStmt, *pg.Node_AlterExtensionStmt,
		*pg.Node_AlterExtensionContentsStmt, *pg.Node_CreateFunctionStmt, *pg.Node_AlterFunctionStmt,
		*pg.Node_DefineStmt, *pg.Node_CompositeTypeStmt, *pg.Node_CreateEnumStmt,
		*pg.Node_CreateRangeStmt, *pg.Node_AlterEnumStmt, *pg.Node_AlterTypeStmt,
		*pg.Node_CreateDomainStmt, *pg.Node_AlterDomainStmt, *pg.Node_CreateCastStmt,
		*pg.Node_CreateConversionStmt, *pg.Node_CreateOpClassStmt, *pg.Node_CreateOpFamilyStmt,
		*pg.Node_AlterOpFamilyStmt, *pg.Node_AlterOperatorStmt, *pg.Node_CreateRoleStmt,
		*pg.Node_AlterRoleStmt, *pg.Node_AlterRoleSetStmt, *pg.Node_DropRoleStmt,
		*pg.Node_GrantRoleStmt, *pg.Node_AlterDefaultPrivilegesStmt, *pg.Node_CreatedbStmt,
		*pg.Node_DropdbStmt, *pg.Node_AlterDatabaseStmt, *pg.Node_AlterDatabaseSetStmt,
		*pg.Node_AlterDatabaseRefreshCollStmt, *pg.Node_CreateTableSpaceStmt,
		*pg.Node_DropTableSpaceStmt, *pg.Node_AlterTableSpaceOptionsStmt,
		*pg.Node_AlterTableMoveAllStmt, *pg.Node_CreatePlangStmt, *pg.Node_CreateEventTrigStmt,
		*pg.Node_AlterEventTrigStmt, *pg.Node_CreateTransformStmt, *pg.Node_CreateAmStmt,
		*pg.Node_AlterTsdictionaryStmt, *pg.Node_AlterTsconfigurationStmt, *pg.Node_CreateFdwStmt,
		*pg.Node_AlterFdwStmt, *pg.Node_CreateForeignServerStmt, *pg.Node_AlterForeignServerStmt,
		*pg.Node_CreateUserMappingStmt, *pg.Node_AlterUserMappingStmt,
		*pg.Node_DropUserMappingStmt, *pg.Node_ImportForeignSchemaStmt,
		*pg.Node_CreatePublicationStmt, *pg.Node_AlterPublicationStmt,
		*pg.Node_CreateSubscriptionStmt, *pg.Node_AlterSubscriptionStmt,
		*pg.Node_DropSubscriptionStmt, *pg.Node_DropOwnedStmt, *pg.Node_ReassignOwnedStmt,
		*pg.Node_AlterCollationStmt, *pg.Node_SecLabelStmt, *pg.Node_AlterObjectDependsStmt,
		*pg.Node_AlterStatsStmt:
		// Schemas, types, functions, roles, extensions, ...: every group needs them.
		return fixed(KindDDL, TargetAllGroups)
	}
	return fixed(KindOther, TargetAny)
}

// ddl is the target of a schema change on the tables walked: every group when one of them is
// sharded, else the default group.
func (b *builder) ddl() stmtTemplate {
	if b.info.sharded {
		return fixed(KindDDL, TargetAllGroups)
	}
	return fixed(KindDDL, TargetDefault)
}

// objectTarget is the target of DDL on an object that is not a table: indexes and views may
// belong to sharded tables, so every group; sequences are unsharded objects; other objects
// (schemas, types, functions) exist on every group. ok is false for tables.
func objectTarget(t pg.ObjectType) (stmtTemplate, bool) {
	switch t {
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_FOREIGN_TABLE, pg.ObjectType_OBJECT_COLUMN,
		pg.ObjectType_OBJECT_TABCONSTRAINT, pg.ObjectType_OBJECT_TRIGGER, pg.ObjectType_OBJECT_POLICY,
		pg.ObjectType_OBJECT_RULE, pg.ObjectType_OBJECT_TYPE_UNDEFINED:
		return stmtTemplate{}, false
	case pg.ObjectType_OBJECT_SEQUENCE:
		return fixed(KindDDL, TargetDefault), true
	}
	return fixed(KindDDL, TargetAllGroups), true
}

func (b *builder) onRelation(t pg.ObjectType, rel *pg.RangeVar) stmtTemplate {
	if st, ok := objectTarget(t); ok || rel == nil {
		if !ok {
			st = fixed(KindDDL, TargetAllGroups)
		}
		return st
	}
	b.tableRef(rel)
	return b.ddl()
}

// nameTable notes a table given as a list of name parts (schema, table).
func (b *builder) nameTable(parts []*pg.Node) {
	if len(parts) == 0 {
		return
	}
	rv := &pg.RangeVar{Relname: parts[len(parts)-1].GetString_().GetSval()}
	if len(parts) > 1 {
		rv.Schemaname = parts[len(parts)-2].GetString_().GetSval()
	}
	b.tableRef(rv)
}

// onObject is the target of COMMENT (and the like) on an object named by obj.
func (b *builder) onObject(t pg.ObjectType, obj *pg.Node) stmtTemplate {
	items := obj.GetList().GetItems()
	switch t {
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_FOREIGN_TABLE:
		b.nameTable(items)
	case pg.ObjectType_OBJECT_COLUMN, pg.ObjectType_OBJECT_TABCONSTRAINT,
		pg.ObjectType_OBJECT_TRIGGER, pg.ObjectType_OBJECT_POLICY, pg.ObjectType_OBJECT_RULE:
		if len(items) > 1 {
			b.nameTable(items[:len(items)-1])
		}
	default:
		st, _ := objectTarget(t)
		return st
	}
	return b.ddl()
}

func (b *builder) dropStmt(d *pg.DropStmt) stmtTemplate {
	switch d.RemoveType {
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_FOREIGN_TABLE:
		for _, o := range d.Objects {
			b.nameTable(o.GetList().GetItems())
		}
		return b.ddl()
	case pg.ObjectType_OBJECT_TRIGGER, pg.ObjectType_OBJECT_POLICY, pg.ObjectType_OBJECT_RULE:
		for _, o := range d.Objects {
			if items := o.GetList().GetItems(); len(items) > 1 {
				b.nameTable(items[:len(items)-1])
			}
		}
		return b.ddl()
	}
	st, _ := objectTarget(d.RemoveType)
	return st
}

// createTable decides CREATE TABLE: every group when the table is sharded (the map names it,
// a rule names it, it has the rule's key column, or it is a partition, child or copy of a
// sharded table); a temporary table stays with the session.
func (b *builder) createTable(c *pg.CreateStmt) stmtTemplate {
	if c == nil {
		return fixed(KindDDL, TargetDefault)
	}
	if c.Relation.GetRelpersistence() == "t" {
		b.t.addTable(strings.ToLower(c.Relation.GetRelname()))
		return fixed(KindDDL, TargetAny)
	}
	name, _, _ := b.tableRef(c.Relation)
	b.walkAll(c.InhRelations)
	b.walkAll(c.TableElts)
	if b.info.sharded || b.namedRule(name) || b.hasRuleColumn(c.TableElts) {
		return fixed(KindDDL, TargetAllGroups)
	}
	return fixed(KindDDL, TargetDefault)
}

func (b *builder) namedRule(table string) bool {
	for _, r := range b.m.Rules {
		t := strings.ToLower(r.Table)
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			t = t[i+1:]
		}
		if t != "" && t == table {
			return true
		}
	}
	return false
}

func (b *builder) hasRuleColumn(elts []*pg.Node) bool {
	col := strings.ToLower(b.m.ColumnRule())
	if col == "" {
		return false
	}
	for _, e := range elts {
		if e.GetColumnDef().GetColname() == col {
			return true
		}
	}
	return false
}
