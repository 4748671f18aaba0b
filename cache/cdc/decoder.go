package cdc

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/shardwire/shardwire/cache"
)

// replicaIdentityFull is RelationMessage.ReplicaIdentity of a table whose UPDATE and DELETE
// messages carry the whole old row.
const replicaIdentityFull = 'f'

// relation is what a Relation message says about a table, as far as the feed needs it.
type relation struct {
	name    string         // lower case, without schema (the partition root's name)
	columns map[string]int // column name -> position in tuples
	// identity holds the positions of the replica identity columns: an UPDATE sends the
	// old values of these only when one of them changed.
	identity map[int]bool
	full     bool // REPLICA IDENTITY FULL: UPDATE and DELETE always send the old row
}

// commit is a decoded committed transaction.
type commit struct {
	endLSN  pglogrepl.LSN // end of the transaction's commit record
	time    time.Time     // commit timestamp on the writer
	touches []cache.Touch // nil when nothing cacheable was written
}

// decoder turns pgoutput (protocol version 1) messages into committed transactions. It
// keeps the relations announced on the current stream, so a new stream needs a new
// decoder. Not safe for concurrent use.
type decoder struct {
	db        string
	keyColumn func(string) (string, bool)
	cacheable func(string) bool

	relations map[uint32]*relation
	inTxn     bool
	changes   changeSet
}

func newDecoder(cfg *Config) *decoder {
	return &decoder{
		db:        cfg.Database,
		keyColumn: cfg.KeyColumn,
		cacheable: cfg.Cacheable,
		relations: make(map[uint32]*relation),
	}
}

// inTransaction reports whether a Begin was decoded whose Commit was not yet.
func (d *decoder) inTransaction() bool { return d.inTxn }

// decode decodes one pgoutput message (the WAL data of one XLogData) and returns the
// transaction it completes, or nil.
func (d *decoder) decode(data []byte) (c *commit, err error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty pgoutput message")
	}
	// pglogrepl's decoders index without bounds checks and allocate what lengths in the
	// message say; a malformed message from the server must end the stream with an error,
	// not the process.
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("decode pgoutput message %q: malformed: %v", data[0], r)
		}
	}()
	if err := checkBounds(data); err != nil {
		return nil, err
	}
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("decode pgoutput message %q: %w", data[0], err)
	}
	return d.handle(msg)
}

// handle applies one decoded message.
func (d *decoder) handle(msg pglogrepl.Message) (*commit, error) {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		d.relations[m.RelationID] = newRelation(m)
	case *pglogrepl.BeginMessage:
		d.changes.reset()
		d.inTxn = true
	case *pglogrepl.CommitMessage:
		if !d.inTxn {
			return nil, fmt.Errorf("commit at %s without begin", m.CommitLSN)
		}
		d.inTxn = false
		c := &commit{endLSN: m.TransactionEndLSN, time: m.CommitTime, touches: d.changes.touches(d.db)}
		d.changes.reset()
		return c, nil
	case *pglogrepl.InsertMessage:
		return nil, d.row(m.RelationID, "insert", m.Tuple, nil, false)
	case *pglogrepl.UpdateMessage:
		return nil, d.row(m.RelationID, "update", m.NewTuple, m.OldTuple, true)
	case *pglogrepl.DeleteMessage:
		return nil, d.row(m.RelationID, "delete", nil, m.OldTuple, false)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := d.relation(id, "truncate")
			if err != nil {
				return nil, err
			}
			d.table(rel).addWhole()
		}
	default:
		// Type, Origin and logical decoding messages say nothing about rows written.
	}
	return nil, nil
}

// relation returns the announced relation id.
func (d *decoder) relation(id uint32, op string) (*relation, error) {
	rel, ok := d.relations[id]
	if !ok {
		return nil, fmt.Errorf("%s on relation %d, which was never announced", op, id)
	}
	if !d.inTxn {
		return nil, fmt.Errorf("%s on %s outside a transaction", op, rel.name)
	}
	return rel, nil
}

// table returns the change entry of rel in the current transaction.
func (d *decoder) table(rel *relation) *tableChange {
	return d.changes.table(rel.name, d.keyColumn, d.cacheable)
}

// row records one changed row: newTuple is the row after an INSERT or UPDATE, oldTuple the
// old key or row of an UPDATE or DELETE (nil when not sent). isUpdate marks an UPDATE,
// whose old row is sent only when its replica identity changed.
func (d *decoder) row(id uint32, op string, newTuple, oldTuple *pglogrepl.TupleData, isUpdate bool) error {
	rel, err := d.relation(id, op)
	if err != nil {
		return err
	}
	t := d.table(rel)
	if !t.cacheable || t.whole {
		return nil
	}
	col, ok := rel.columns[t.keyColumn]
	if !ok {
		t.addWhole() // the configured key column is not in the table
		return nil
	}
	if isUpdate && oldTuple == nil && !rel.full && !rel.identity[col] {
		// The key column is not part of the replica identity, so an UPDATE that changed
		// it sends no old value: the customer the row left is unknown.
		t.addWhole()
		return nil
	}
	for _, tuple := range []*pglogrepl.TupleData{newTuple, oldTuple} {
		if tuple == nil {
			continue
		}
		c, ok := keyValue(tuple, col)
		if !ok {
			t.addWhole()
			return nil
		}
		t.addCustomer(c)
	}
	if newTuple == nil && oldTuple == nil {
		t.addWhole()
	}
	return nil
}

// keyValue returns the integer in column col of tuple; ok is false when the column is
// missing, NULL, unchanged TOAST data (not sent), not text, or not an integer.
func keyValue(tuple *pglogrepl.TupleData, col int) (int64, bool) {
	if col >= len(tuple.Columns) || tuple.Columns[col] == nil {
		return 0, false
	}
	c := tuple.Columns[col]
	if c.DataType != pglogrepl.TupleDataTypeText {
		return 0, false
	}
	v, err := strconv.ParseInt(string(c.Data), 10, 64)
	return v, err == nil
}

// newRelation keeps what the feed needs of a Relation message.
func newRelation(m *pglogrepl.RelationMessage) *relation {
	rel := &relation{
		name:     strings.ToLower(m.RelationName),
		columns:  make(map[string]int, len(m.Columns)),
		identity: make(map[int]bool),
		full:     m.ReplicaIdentity == replicaIdentityFull,
	}
	for i, c := range m.Columns {
		rel.columns[strings.ToLower(c.Name)] = i
		if c.Flags&1 != 0 {
			rel.identity[i] = true
		}
	}
	return rel
}
