package shardmap

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// NumShards is the number of logical shards. A row's shard is its key modulo NumShards.
const NumShards = 16

// Shard is a logical shard, 0..NumShards-1.
type Shard uint8

// ShardOf returns the shard of a key: the key modulo NumShards, never negative (so -1 is in
// shard 15, matching the SQL restriction ((key % 16) + 16) % 16 the router adds to scatters).
func ShardOf(key int64) Shard {
	m := key % NumShards
	if m < 0 {
		m += NumShards
	}
	return Shard(m)
}

// ShardSet is a set of logical shards, one bit per shard. The zero value is empty.
type ShardSet uint16

// AllShards holds every shard.
const AllShards ShardSet = 1<<NumShards - 1

// Of returns the set holding the given shards.
func Of(shards ...Shard) ShardSet {
	var s ShardSet
	for _, sh := range shards {
		s = s.Add(sh)
	}
	return s
}

// Add returns s with shard added.
func (s ShardSet) Add(shard Shard) ShardSet { return s | 1<<shard }

// Has reports whether shard is in s.
func (s ShardSet) Has(shard Shard) bool { return s&(1<<shard) != 0 }

// Len returns the number of shards in s.
func (s ShardSet) Len() int { return bits.OnesCount16(uint16(s)) }

// Empty reports whether s holds no shard.
func (s ShardSet) Empty() bool { return s == 0 }

// Shards returns the shards of s in ascending order.
func (s ShardSet) Shards() []Shard {
	out := make([]Shard, 0, s.Len())
	for v := uint16(s); v != 0; v &= v - 1 {
		out = append(out, Shard(bits.TrailingZeros16(v)))
	}
	return out
}

// String lists the shards, e.g. "{0,1,5}".
func (s ShardSet) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, sh := range s.Shards() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(sh)))
	}
	b.WriteByte('}')
	return b.String()
}

// MarshalText writes the set as String does.
func (s ShardSet) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the form String writes.
func (s *ShardSet) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	if !strings.HasPrefix(t, "{") || !strings.HasSuffix(t, "}") {
		return fmt.Errorf("shard set %q: want {n,m,...}", t)
	}
	var out ShardSet
	for _, f := range strings.Split(t[1:len(t)-1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n >= NumShards {
			return fmt.Errorf("shard set %q: %q is not a shard 0..%d", t, f, NumShards-1)
		}
		out = out.Add(Shard(n))
	}
	*s = out
	return nil
}

// Group is one shard group: a writer and its streaming replicas, in one region. Endpoints are
// "host:port". Which endpoint is the writer right now is the health checker's business (a
// replica may have been promoted); Writer is the configured one.
type Group struct {
	Name     string   `json:"name"`
	Region   string   `json:"region"`
	Writer   string   `json:"writer"`
	Replicas []string `json:"replicas,omitempty"`
	// ReplicaRegions are the regions of replicas outside the group's Region (address →
	// region).
	ReplicaRegions map[string]string `json:"replica_regions,omitempty"`
}

// RegionOf returns the region of one of the group's endpoints.
func (g *Group) RegionOf(addr string) string {
	if r, ok := g.ReplicaRegions[addr]; ok {
		return r
	}
	return g.Region
}

// Endpoints returns the writer followed by the replicas.
func (g *Group) Endpoints() []string {
	return append([]string{g.Writer}, g.Replicas...)
}

// TableRule says how one table is sharded: by Column. A rule with an empty Table applies to
// every table that has Column (the schema says which tables those are).
type TableRule struct {
	Table  string `json:"table,omitempty"`
	Column string `json:"column"`
}

// ShardState is a logical shard's state in the map.
type ShardState string

// Shard states. A move takes its shard from active to moving (while the copy runs) to frozen
// (while the source is fenced and the target catches up) and back to active, owned by the
// target; an abort returns it to active at the source.
const (
	// StateActive: the owner serves the shard's reads and writes.
	StateActive ShardState = "active"
	// StateMoving: a move is copying the shard to another group. The owner still serves
	// everything, but TRUNCATE and DDL on sharded tables are refused (a row-filtered
	// publication would not carry them).
	StateMoving ShardState = "moving"
	// StateFrozen: the move is about to switch the shard's owner. Proxies hold the shard's
	// new writes (buffer them) until the next epoch, and open transactions that touch it
	// get a retryable error after a short grace period; reads go on at the owner.
	StateFrozen ShardState = "frozen"
)

// Valid reports whether s is a state this build knows. A map holding an unknown state (one
// written by a newer build) fails Validate rather than being routed by guesswork.
func (s ShardState) Valid() bool {
	switch s {
	case StateActive, StateMoving, StateFrozen:
		return true
	}
	return false
}

// InMove reports whether s is a state of a shard that a move is working on.
func (s ShardState) InMove() bool { return s == StateMoving || s == StateFrozen }

// CodeShardFenced is the SQLSTATE the databases raise for a write to a shard the group does
// not own or is handing over: the fence triggers a move creates (package shardmap/move) raise
// it, with a message naming the shard and the move. A write that meets it did not execute;
// the proxy reloads the map and runs it again at the owner when it can.
const CodeShardFenced = "SW001"

// Moving returns the shards whose state is moving or frozen.
func (m *Map) Moving() ShardSet {
	var s ShardSet
	for sh, st := range m.State {
		if st.InMove() {
			s = s.Add(Shard(sh))
		}
	}
	return s
}

// Frozen returns the shards whose state is frozen.
func (m *Map) Frozen() ShardSet {
	var s ShardSet
	for sh, st := range m.State {
		if st == StateFrozen {
			s = s.Add(Shard(sh))
		}
	}
	return s
}

// Map is one epoch of the shard map. A Map is immutable once published: readers share it
// without locks, and a change makes a new Map with a higher Epoch.
type Map struct {
	// Epoch numbers the map; every change in the catalog makes a new, higher epoch.
	Epoch int64 `json:"epoch"`
	// Groups in their configured order; index 0 is not special (DefaultGroup says which
	// group holds unsharded tables).
	Groups []Group `json:"groups"`
	// Owner[s] is the index in Groups of the group that owns shard s.
	Owner [NumShards]int `json:"owner"`
	// State[s] is shard s's state.
	State [NumShards]ShardState `json:"state"`
	// DefaultGroup is the index in Groups of the group that holds unsharded tables.
	DefaultGroup int `json:"default_group"`
	// Rules say which tables are sharded and by which column.
	Rules []TableRule `json:"rules"`
	// Tables is Rules resolved against the databases' schema: lower-case table name (without
	// schema) → key column, for every sharded table that exists. It is not stored in the
	// catalog; the loader fills it in (ResolveTables) when it loads a map or the schema changes.
	Tables map[string]string `json:"tables,omitempty"`
	// KeyIndex is, for sharded tables whose column order the loader knows, the 0-based
	// position of the key column among the table's columns (dropped columns skipped): what an
	// INSERT without a column list needs. Filled in with Tables (KeyIndexes), never stored.
	KeyIndex map[string]int `json:"key_index,omitempty"`
	// CopyKeyIndex is the same position among the columns a COPY without a column list
	// reads: stored generated columns are not among them. Filled in with Tables, never stored.
	CopyKeyIndex map[string]int `json:"copy_key_index,omitempty"`
	// ReadOnlyFunctions are the database's own functions (lower-case names) whose every
	// overload is STABLE or IMMUTABLE: Postgres forbids them to write, so a SELECT calling them
	// may run on a replica. Filled in with Tables, never stored.
	ReadOnlyFunctions map[string]bool `json:"read_only_functions,omitempty"`
	// ImmutableFunctions are the database's own functions (lower-case names) whose every
	// overload is IMMUTABLE: the only user functions a statement whose result may be cached
	// can call. Filled in with Tables, never stored.
	ImmutableFunctions map[string]bool `json:"immutable_functions,omitempty"`
}

// KeyIndexes returns, for each sharded table (tables: table → key column) whose columns are
// listed in order in columns, the position of its key column.
func KeyIndexes(tables map[string]string, columns map[string][]string) map[string]int {
	out := make(map[string]int, len(tables))
	for table, key := range tables {
		for i, c := range columns[table] {
			if c == key {
				out[table] = i
				break
			}
		}
	}
	return out
}

// KeyColumn returns the key column of a sharded table (lower-case name, no schema), and
// whether the table is sharded at all.
func (m *Map) KeyColumn(table string) (string, bool) {
	col, ok := m.Tables[table]
	return col, ok
}

// ColumnRule returns the column of the rule that applies to tables having that column (a
// rule without a table), or "" when there is none. The router uses it for tables the schema
// snapshot does not know yet (a CREATE TABLE in the same request).
func (m *Map) ColumnRule() string {
	for _, r := range m.Rules {
		if r.Table == "" {
			return r.Column
		}
	}
	return ""
}

// ResolveTables applies rules to a schema (table name → its column names, all lower case)
// and returns table → key column for every sharded table. A rule naming a table wins over a
// column rule and applies whether or not the schema has the table yet; a column rule applies
// to each table of the schema having that column, the first such rule winning when a table
// has several of the columns. Names and columns in the result are lower case.
func ResolveTables(rules []TableRule, columns map[string][]string) map[string]string {
	out := make(map[string]string)
	for _, r := range rules {
		if r.Table != "" {
			out[strings.ToLower(r.Table)] = strings.ToLower(r.Column)
		}
	}
	for _, r := range rules {
		if r.Table != "" {
			continue
		}
		col := strings.ToLower(r.Column)
		for table, cols := range columns {
			if _, named := out[table]; named {
				continue
			}
			for _, c := range cols {
				if c == col {
					out[table] = col
					break
				}
			}
		}
	}
	return out
}

// OwnerOf returns the group that owns shard.
func (m *Map) OwnerOf(shard Shard) *Group { return &m.Groups[m.Owner[shard]] }

// GroupIndex returns the index of the named group, or -1.
func (m *Map) GroupIndex(name string) int {
	for i := range m.Groups {
		if m.Groups[i].Name == name {
			return i
		}
	}
	return -1
}

// OwnedBy returns the shards group index g owns.
func (m *Map) OwnedBy(g int) ShardSet {
	var s ShardSet
	for sh, owner := range m.Owner {
		if owner == g {
			s = s.Add(Shard(sh))
		}
	}
	return s
}

// GroupsOf returns the indexes of the groups owning any shard of s, in group order, as a bit
// set over group indexes (a map has at most 64 groups).
func (m *Map) GroupsOf(s ShardSet) uint64 {
	var g uint64
	for v := uint16(s); v != 0; v &= v - 1 {
		g |= 1 << m.Owner[bits.TrailingZeros16(v)]
	}
	return g
}

// MaxGroups bounds the number of groups in a map.
const MaxGroups = 64

// Validate checks the map's internal consistency.
func (m *Map) Validate() error {
	if m.Epoch < 0 {
		return fmt.Errorf("shard map epoch %d: epoch must not be negative", m.Epoch)
	}
	if len(m.Groups) == 0 {
		return fmt.Errorf("shard map epoch %d: no groups", m.Epoch)
	}
	if len(m.Groups) > MaxGroups {
		return fmt.Errorf("shard map epoch %d: %d groups, at most %d", m.Epoch, len(m.Groups), MaxGroups)
	}
	seen := make(map[string]bool, len(m.Groups))
	for i, g := range m.Groups {
		if g.Name == "" || g.Writer == "" {
			return fmt.Errorf("shard map epoch %d: group %d needs a name and a writer", m.Epoch, i)
		}
		if seen[g.Name] {
			return fmt.Errorf("shard map epoch %d: group %q appears twice", m.Epoch, g.Name)
		}
		seen[g.Name] = true
	}
	for s, owner := range m.Owner {
		if owner < 0 || owner >= len(m.Groups) {
			return fmt.Errorf("shard map epoch %d: shard %d owned by group index %d of %d", m.Epoch, s, owner, len(m.Groups))
		}
		if !m.State[s].Valid() {
			return fmt.Errorf("shard map epoch %d: shard %d has unknown state %q", m.Epoch, s, m.State[s])
		}
	}
	if m.DefaultGroup < 0 || m.DefaultGroup >= len(m.Groups) {
		return fmt.Errorf("shard map epoch %d: default group index %d of %d", m.Epoch, m.DefaultGroup, len(m.Groups))
	}
	named := make(map[string]bool, len(m.Rules))
	for _, r := range m.Rules {
		if r.Column == "" {
			return fmt.Errorf("shard map epoch %d: a table rule needs a column", m.Epoch)
		}
		if r.Table == "" {
			continue
		}
		t := strings.ToLower(r.Table)
		if named[t] {
			return fmt.Errorf("shard map epoch %d: table %q has two rules", m.Epoch, t)
		}
		named[t] = true
	}
	return nil
}
