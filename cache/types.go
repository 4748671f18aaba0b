package cache

import "github.com/shardwire/shardwire/shardmap"

// GenKind says what a generation counter covers.
type GenKind uint8

// Generation kinds. A read's key includes the generations of what it reads; a write bumps
// the generations of what it wrote, so that keys built before the write are never built
// again after it.
const (
	// GenCustomer covers one customer's rows of one sharded table: Gen.N is the customer
	// (shard-key value).
	GenCustomer GenKind = iota + 1
	// GenShard covers one logical shard's rows of one sharded table: Gen.N is the shard.
	// Every write to a customer bumps its shard's generation too, so scattered reads key on
	// these.
	GenShard
	// GenTable covers all of one table's rows on one shard group: Gen.Group names the group.
	// Writes whose customers are not known exactly, TRUNCATE, DDL, and every write to an
	// unsharded table bump it; every read of the table includes it.
	GenTable
	// GenGlobal covers everything in one database (Gen.Table and Gen.N unused): a flush of
	// the whole cache bumps it; every read includes it.
	GenGlobal
)

// Gen names one generation counter.
type Gen struct {
	Kind  GenKind
	DB    string // backend database name
	Table string // lower case, without schema (GenCustomer, GenShard, GenTable)
	Group string // GenTable only
	N     int64  // GenCustomer: customer; GenShard: shard
}

// GenValue is a generation's current value.
type GenValue struct {
	// V changes with every bump. A counter that is created (first use, or after the store
	// lost its data) starts at a random value, so a key built from an older value is never
	// built again.
	V uint64
	// Group is the shard group whose writer committed the write that last bumped it ("" when
	// no write has bumped it since it was created).
	Group string
	// LSN is that writer's WAL position at or after the write's commit; 0 when unknown.
	// A fill for a read that includes this generation may be stored only from a backend of
	// Group that had replayed LSN before the read started; with LSN 0, or a backend of
	// another group, only from that group's writer.
	LSN uint64
}

// Touch is what one write changed in one table, for bumping generations.
type Touch struct {
	DB    string
	Table string // lower case, without schema
	// Sharded says the table is sharded; Customers, when set, is the exact set of customers
	// whose rows were written. An unsharded table, or a sharded one without Customers, bumps
	// GenTable.
	Sharded   bool
	Customers []int64
}

// Gens appends the generations a write described by t bumps on group, and returns the
// extended slice: for exact customers their GenCustomer and GenShard, otherwise the table's
// GenTable on group (which every read of the table on that group includes).
func (t *Touch) Gens(group string, dst []Gen) []Gen {
	if t.Sharded && len(t.Customers) > 0 {
		for _, c := range t.Customers {
			dst = append(dst,
				Gen{Kind: GenCustomer, DB: t.DB, Table: t.Table, N: c},
				Gen{Kind: GenShard, DB: t.DB, Table: t.Table, N: int64(shardmap.ShardOf(c))})
		}
		return dst
	}
	return append(dst, Gen{Kind: GenTable, DB: t.DB, Table: t.Table, Group: group})
}

// Layer names where a hit came from.
type Layer uint8

// Cache layers.
const (
	LayerNone Layer = iota
	LayerL1         // this node's memory (ristretto)
	LayerL2         // Redis
)

func (l Layer) String() string {
	switch l {
	case LayerL1:
		return "l1"
	case LayerL2:
		return "l2"
	}
	return "none"
}
