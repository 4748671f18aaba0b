package router

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

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
