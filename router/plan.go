package router

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/shardwire/shardwire/shardmap"
)

// Kind classifies a statement by what it does, which decides writer or replica.
type Kind uint8

// Statement kinds.
const (
	// KindRead reads only: SELECT without a locking clause, SHOW, VALUES, EXPLAIN without
	// ANALYZE, calls of functions known to be read-only. May run on a replica.
	KindRead Kind = iota + 1
	// KindWrite changes data or may: INSERT, UPDATE, DELETE, MERGE, COPY FROM, SELECT ... FOR
	// UPDATE/SHARE, calls of functions not known to be read-only. Runs on the writer.
	KindWrite
	// KindBegin opens a transaction (BEGIN, START TRANSACTION).
	KindBegin
	// KindCommit ends one (COMMIT, END, COMMIT AND CHAIN, PREPARE TRANSACTION is KindOther).
	KindCommit
	// KindRollback ends one (ROLLBACK, ABORT).
	KindRollback
	// KindSavepoint is SAVEPOINT, RELEASE, ROLLBACK TO.
	KindSavepoint
	// KindDDL changes the schema (CREATE/ALTER/DROP of tables, indexes, ...).
	KindDDL
	// KindSession changes session state only (SET, RESET, DISCARD, PREPARE, DEALLOCATE,
	// LISTEN, ...). Runs wherever the session's current backend is.
	KindSession
	// KindOther is anything else (VACUUM, ANALYZE, CHECKPOINT, ...). Runs on a writer.
	KindOther
)

var kindNames = [...]string{"", "Read", "Write", "Begin", "Commit", "Rollback", "Savepoint", "DDL", "Session", "Other"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MarshalText writes the kind's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n != "" && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown kind %q", b)
}

// Target says where a statement runs.
type Target uint8

// Targets.
const (
	// TargetAny touches no table (SELECT 1, SET, SHOW): the session's current group if it has
	// one, else the default group.
	TargetAny Target = iota + 1
	// TargetDefault touches unsharded tables only: the default group.
	TargetDefault
	// TargetShards touches sharded tables for known keys: the groups owning Plan.Shards (one
	// group, or the statement is rejected as cross-group by the proxy).
	TargetShards
	// TargetScatter is a keyless read of sharded tables: every group, each restricted to the
	// shards it owns (ScatterSQL), the replies merged as Plan.Merge says.
	TargetScatter
	// TargetAllGroups is DDL on sharded tables: every group, one after another in group order.
	TargetAllGroups
	// TargetReject cannot run: Plan.Err says why.
	TargetReject
	// TargetSplit is a COPY on a sharded table whose rows the proxy splits over the groups
	// (Plan.Copy): COPY FROM STDIN sends each data row to the group owning its key, COPY TO
	// STDOUT runs Plan.Copy.OutSQL on every group and concatenates the rows.
	TargetSplit
)

var targetNames = [...]string{"", "Any", "Default", "Shards", "Scatter", "AllGroups", "Reject", "Split"}

func (t Target) String() string {
	if int(t) < len(targetNames) && t != 0 {
		return targetNames[t]
	}
	return fmt.Sprintf("Target(%d)", uint8(t))
}

// MarshalText writes the target's name.
func (t Target) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a target's name.
func (t *Target) UnmarshalText(b []byte) error {
	for i, n := range targetNames {
		if n != "" && n == string(b) {
			*t = Target(i)
			return nil
		}
	}
	return fmt.Errorf("unknown target %q", b)
}

// RouteError is why a statement cannot be routed, with the SQLSTATE the client gets.
type RouteError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func (e *RouteError) Error() string { return e.Message }

// SQLSTATEs the router uses.
const (
	CodeFeatureNotSupported = "0A000" // cross-group, keyless write, unmergeable scatter
	CodeSyntaxError         = "42601"
	CodeInvalidParameter    = "22023" // a shard key that is not an integer
)

// Plan is the router's decision for one statement (or one simple-query string). It is a value:
// printable, comparable in tests, and cheap to copy. Pointers in it (Merge, Err, Copy, Split)
// point at data shared by every plan of the same statement shape and must not be modified.
type Plan struct {
	Kind   Kind              `json:"kind"`
	Target Target            `json:"target"`
	Shards shardmap.ShardSet `json:"shards,omitempty"` // TargetShards: the shards the keys fall in
	// Tables are the tables the statement names, lower case, without schema (for logs, the
	// cache and fencing); shared, do not modify.
	Tables []string `json:"tables,omitempty"`
	// Merge says how to merge a scatter's replies (TargetScatter only).
	Merge *MergeSpec `json:"merge,omitempty"`
	// Err is set for TargetReject.
	Err *RouteError `json:"error,omitempty"`
	// Statements is the number of statements in a simple-query string (1 for Parse/Bind).
	Statements int `json:"statements,omitempty"`
	// TxControl holds the flags of transaction control inside a multi-statement string
	// (Begin/Commit/Rollback seen), so the proxy can track the transaction state.
	TxControl TxFlags `json:"tx_control,omitempty"`
	// NoCache says why the statement's result may not be cached, as far as the statement
	// itself decides (CacheOK when it may); it is never CacheOK for TargetReject.
	NoCache NoCacheReason `json:"no_cache,omitzero"`
	// CacheTTL is the time to live a /* cache ttl=30s */ comment asks for (0 when there is
	// none or it is malformed, and whenever NoCache is not CacheOK).
	CacheTTL time.Duration `json:"cache_ttl,omitzero"`
	// Copy describes the COPY of a sharded table (TargetSplit only): the data rows' format and
	// where their key is, and for COPY TO the per-group statement.
	Copy *CopySpec `json:"copy,omitempty"`
	// Split is set for a single multi-row INSERT ... VALUES on a sharded table routed by the
	// key values of its rows (TargetShards, Shards their union): when those shards span
	// several groups, the proxy may send each group the rows it owns (InsertSplit.Render).
	Split *InsertSplit `json:"split,omitempty"`
	// Keys, when exact, are the shard-key values the statement's rows are provably
	// restricted to (a read's rows, or the rows a write changes): set only for one statement
	// on TargetShards routed by keys it states itself (literals or bound parameters, not a
	// shard_key hint nor the session's key), naming one relation once (no join, subquery,
	// CTE, set operation), calling no function that may write (one not known read-only),
	// whose key predicates give at most MaxExactKeys values — and for an INSERT, only with
	// VALUES rows and no ON CONFLICT DO UPDATE, and for an UPDATE only when it does not set
	// the key. Whether the rows changed by triggers or cascades are restricted too, the
	// router cannot know.
	Keys KeySet `json:"keys,omitzero"`
}

// TxFlags records transaction-control statements inside one simple-query string.
type TxFlags uint8

// Transaction-control flags.
const (
	TxBegin TxFlags = 1 << iota
	TxCommit
	TxRollback
)

// String prints the plan compactly for logs and golden files, e.g. "Read Shards{5}".
func (p Plan) String() string {
	var b strings.Builder
	b.WriteString(p.Kind.String())
	b.WriteByte(' ')
	b.WriteString(p.Target.String())
	if p.Target == TargetShards {
		b.WriteString(p.Shards.String())
	}
	if p.Err != nil {
		fmt.Fprintf(&b, " %s: %s", p.Err.Code, p.Err.Message)
	}
	return b.String()
}

// JSON returns the plan as indented JSON (for EXPLAIN-like admin output).
func (p Plan) JSON() string {
	b, _ := json.MarshalIndent(p, "", "  ")
	return string(b)
}

// SortKey is one ORDER BY key of a scatter, by position in each group's output row.
type SortKey struct {
	Column     int  `json:"column"` // 0-based index in the per-group output
	Desc       bool `json:"desc,omitempty"`
	NullsFirst bool `json:"nulls_first,omitempty"` // Postgres default: NULLS LAST for ASC, FIRST for DESC
}

// AggFunc is an aggregate the merge can combine across groups.
type AggFunc uint8

// Aggregates.
const (
	AggCount AggFunc = iota + 1 // sum of the groups' counts
	AggSum                      // sum of the groups' sums (NULL when all are NULL)
	AggMin                      // least non-NULL
	AggMax                      // greatest non-NULL
	AggAvg                      // sum of sums / sum of counts; the per-group query returns both
)

// Aggregate is one aggregate output column of a scatter.
type Aggregate struct {
	Func   AggFunc `json:"func"`
	Column int     `json:"column"` // index in the per-group output (AVG: its sum)
	// CountColumn is AVG's hidden count column in the per-group output.
	CountColumn int `json:"count_column,omitempty"`
	// ClientType is the type OID the client sees for AVG (numeric 1700 or float8 701), as the
	// unsharded query would return; 0 for the others (same type as per group).
	ClientType uint32 `json:"client_type,omitempty"`
}

// LimitValue is a LIMIT or OFFSET: a constant, a bound parameter, or absent.
type LimitValue struct {
	Set   bool  `json:"set,omitempty"`
	Const int64 `json:"const,omitempty"`
	Param int   `json:"param,omitempty"` // 1-based parameter number, 0 when Const
}

// MergeSpec says how to merge a scatter's per-group replies into what the unsharded query
// would return. Each group runs ScatterSQL's rewrite: the same columns as the client's query,
// then Hidden extra trailing columns (sort keys not in the output, AVG counts) which the merge
// uses and drops.
type MergeSpec struct {
	// Columns is the number of columns the client sees.
	Columns int `json:"columns"`
	// Hidden is the number of extra trailing columns in each group's output.
	Hidden int `json:"hidden,omitempty"`
	// OrderBy, when set, makes the merge a k-way merge of the groups' sorted outputs.
	OrderBy []SortKey `json:"order_by,omitempty"`
	// Limit and Offset apply to the merged rows (each group got LIMIT limit+offset, no OFFSET).
	Limit  LimitValue `json:"limit,omitempty"`
	Offset LimitValue `json:"offset,omitempty"`
	// Aggregates, when set, make the merge combine rows with equal GroupBy columns (all rows
	// into one when GroupBy is empty). Output columns that are neither are GroupBy columns.
	Aggregates []Aggregate `json:"aggregates,omitempty"`
	GroupBy    []int       `json:"group_by,omitempty"`
	// Distinct removes duplicate rows (SELECT DISTINCT), after aggregation.
	Distinct bool `json:"distinct,omitempty"`
	// Star is set when the select list expands a * (*, t.*, (f()).*): the router cannot count
	// the client's columns, so Columns is 0 and the merge takes the count from a group's
	// RowDescription (its fields minus Hidden). A negative SortKey.Column then counts from
	// the end of the per-group row (-1 is the last hidden column). Never set with Aggregates.
	Star bool `json:"star,omitempty"`
}
