package router

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shardwire/shardwire/shardmap"
)

// builder turns the parse tree of one SQL string into a template: for each statement its
// kind, where it runs, and where its shard keys are (as literal and parameter positions).
// It runs once per statement shape, so it favours clarity over speed.
type builder struct {
	m    *shardmap.Map
	sql  string
	toks []shapeToken
	t    *template
	// version is the parse tree's Postgres version, which a deparsed tree must carry.
	version int32

	info    stmtInfo  // the statement being analyzed
	levels  []level   // query levels, innermost last
	ctes    []cteInfo // CTEs in scope, innermost last
	keyCols []string  // key columns of the sharded tables named so far

	pinMode  int           // which literals of the statement the template pins
	pinWhere proto.Message // pinOutside: the tree whose literals are not pinned

	keyLits  map[int32]bool            // literal indexes used as key values
	colErrs  map[string][2]*RouteError // per key column: not an integer, NULL
	nodeLits []int32                   // scratch for literalsOf
}

// stmtInfo is what the walk of one statement learns.
type stmtInfo struct {
	sharded, unsharded bool
	shardedTable       string // first sharded table named, and its key column (for messages)
	shardedKey         string
	unshardedTable     string
	writeTable         string // sharded table an INSERT/UPDATE/DELETE/MERGE writes, and its key
	writeKey           string
	writeVerb          string
	lock               bool // locking clause (FOR UPDATE/SHARE)
	into               bool // SELECT INTO
	modifying          bool // INSERT/UPDATE/DELETE/MERGE, also inside a CTE
	unknownFunc        bool // calls a function not known to be read-only
	volatile           bool // calls a function not known to be immutable, or samples a table
	system             bool // names a catalog or temporary relation
	relRefs            int  // relation references (tables, CTE names) named
	inexact            bool // the rows are not those of one relation restricted by its keys
	roots              []int32
	required           []int32
	keyless            bool // a part that must have a key has none (INSERT without the key)
	keylessWhy         string
	checks             []int32
	staticErr          *RouteError
	// The INSERT ... VALUES walked last with a key in every row, its key column, and where
	// each row's key comes from (for InsertSplit).
	valuesStmt *pg.InsertStmt
	valuesCol  string
	valuesKeys []valueRef
}

// level is one query level (a SELECT, or the target of an INSERT/UPDATE/DELETE/MERGE): the
// relations its column references may name.
type level struct{ rels []relRef }

// relRef is one relation of a level: a table, or a derived one (subquery, function, CTE).
type relRef struct {
	name   string // the name columns qualify it by: the alias, else the table name
	keyCol string // a sharded table's key column, or the key column a derived relation passes on
	// keyNode is, for a derived relation, the key tree node of its own query (-1 when it
	// has none, and for tables): the keys of the rows it yields.
	keyNode int32
}

// cteInfo is a CTE in scope, as a relation.
type cteInfo struct {
	name    string
	keyCol  string
	keyNode int32
}

func (b *builder) pushLevel() { b.levels = append(b.levels, level{}) }

func (b *builder) popLevel() { b.levels = b.levels[:len(b.levels)-1] }

func (b *builder) addRel(r relRef) {
	if len(b.levels) > 0 {
		l := &b.levels[len(b.levels)-1]
		l.rels = append(l.rels, r)
	}
}

// walk visits a parse tree node and everything below it, handling the nodes that matter to
// routing and recursing generically through the rest.
func (b *builder) walk(m proto.Message) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return
	}
	switch x := m.(type) {
	case *pg.Node:
		if x.Node == nil {
			return
		}
	case *pg.SelectStmt:
		b.selectStmt(x, nil)
		return
	case *pg.InsertStmt:
		b.insertStmt(x)
		return
	case *pg.UpdateStmt:
		b.updateStmt(x)
		return
	case *pg.DeleteStmt:
		b.deleteStmt(x)
		return
	case *pg.MergeStmt:
		b.mergeStmt(x)
		return
	case *pg.RangeVar:
		b.tableRef(x)
		return
	case *pg.FuncCall:
		b.funcCall(x)
	case *pg.SQLValueFunction:
		b.info.volatile = true // CURRENT_USER, CURRENT_DATE, LOCALTIME, ...
	case *pg.SubLink:
		b.info.inexact = true
	case *pg.JoinExpr, *pg.RangeSubselect, *pg.RangeFunction, *pg.RangeTableSample:
		b.fromItemMsg(x)
		return
	case *pg.LockingClause:
		b.info.lock = true
	case *pg.IntoClause:
		b.info.into = true
	}
	b.children(m.ProtoReflect())
}

// children walks every message-valued field of r.
func (b *builder) children(r protoreflect.Message) { eachChild(r, b.walk) }

// eachChild calls fn with every message held by a field of r, list elements included.
func eachChild(r protoreflect.Message, fn func(proto.Message)) {
	if !r.IsValid() {
		return
	}
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				fn(l.Get(i).Message().Interface())
			}
			return true
		}
		fn(v.Message().Interface())
		return true
	})
}

func (b *builder) walkAll(ns []*pg.Node) {
	for _, n := range ns {
		b.walk(n)
	}
}

// tableRef notes a table a statement names and returns its key column when it is sharded.
// isTable is false for a reference to a CTE.
func (b *builder) tableRef(rv *pg.RangeVar) (name, keyCol string, isTable bool) {
	if rv == nil {
		return "", "", false
	}
	b.info.relRefs++
	if cacheSystemTable(strings.ToLower(rv.Schemaname), strings.ToLower(rv.Relname)) {
		b.info.system = true
	}
	if rv.Schemaname == "" && rv.Catalogname == "" {
		if _, ok := b.cte(rv.Relname); ok {
			return rv.Relname, "", false
		}
	}
	name = strings.ToLower(rv.Relname)
	b.t.addTable(name)
	if col, ok := b.m.KeyColumn(name); ok {
		if !b.info.sharded {
			b.info.sharded, b.info.shardedTable, b.info.shardedKey = true, name, col
		}
		b.keyCols = append(b.keyCols, col)
		return name, col, true
	}
	if !systemTable(strings.ToLower(rv.Schemaname), name) {
		if !b.info.unsharded {
			b.info.unsharded, b.info.unshardedTable = true, name
		}
	}
	return name, "", true
}

// systemTable reports whether a table is a system catalog, which every group has.
func systemTable(schema, name string) bool {
	switch schema {
	case "pg_catalog", "information_schema":
		return true
	case "":
		return strings.HasPrefix(name, "pg_")
	}
	return false
}

// literalsOf returns the literal indexes of the constants written in the tree under m.
func (b *builder) literalsOf(m proto.Message) []int32 {
	b.nodeLits = b.nodeLits[:0]
	b.collectLits(m)
	return b.nodeLits
}

func (b *builder) collectLits(m proto.Message) {
	if m == nil {
		return
	}
	if c, ok := m.(*pg.A_Const); ok {
		if lit, _, _ := b.literalAt(c.Location); lit >= 0 {
			b.nodeLits = append(b.nodeLits, lit)
		}
		return
	}
	eachChild(m.ProtoReflect(), b.collectLits)
}
