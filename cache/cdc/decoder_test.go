package cdc

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/shardwire/shardwire/cache"
)

// Table configuration of the decoder tests.
var (
	testKeyColumns = map[string]string{
		"invoices": "customer_id", "lines": "customer_id", "weird": "customer_id", "events": "customer_id",
	}
	testCacheable = map[string]bool{"invoices": true, "lines": true, "weird": true, "events": true, "settings": true}
)

func testConfig() *Config {
	return &Config{
		Database: "app",
		KeyColumn: func(t string) (string, bool) {
			c, ok := testKeyColumns[t]
			return c, ok
		},
		Cacheable: func(t string) bool { return testCacheable[t] },
	}
}

// Relation ids of the decoder tests.
const (
	relInvoices uint32 = iota + 1 // customer_id in the replica identity (PRIMARY KEY (customer_id, id))
	relLines                      // replica identity is id only
	relSettings                   // unsharded
	relLogs                       // not cacheable
	relWeird                      // sharded by configuration, but has no customer_id column
	relFull                       // events, REPLICA IDENTITY FULL, identity flags unset
	relMixed                      // "Invoices" in mixed case, to be lowered
)

// relations announces every test relation.
func relations() []pglogrepl.Message {
	rel := func(id uint32, name string, ident uint8, cols ...string) pglogrepl.Message {
		m := &pglogrepl.RelationMessage{RelationID: id, Namespace: "public", RelationName: name, ReplicaIdentity: ident}
		for _, c := range cols {
			var flags uint8
			if n, ok := strings.CutPrefix(c, "*"); ok {
				c, flags = n, 1
			}
			m.Columns = append(m.Columns, &pglogrepl.RelationMessageColumn{Flags: flags, Name: c})
		}
		return m
	}
	return []pglogrepl.Message{
		rel(relInvoices, "invoices", 'd', "*customer_id", "*id", "amount"),
		rel(relLines, "lines", 'd', "*id", "customer_id", "note"),
		rel(relSettings, "settings", 'd', "*k", "v"),
		rel(relLogs, "logs", 'd', "*id", "customer_id"),
		rel(relWeird, "weird", 'd', "*id", "cust"),
		rel(relFull, "events", 'f', "customer_id", "id"),
		rel(relMixed, "Invoices", 'd', "*Customer_ID", "*id"),
	}
}

// Tuple column values: nil is NULL, toast an unchanged TOAST value, a string text.
var toast = &struct{}{}

func tup(vals ...any) *pglogrepl.TupleData {
	td := &pglogrepl.TupleData{ColumnNum: uint16(len(vals))}
	for _, v := range vals {
		c := &pglogrepl.TupleDataColumn{}
		switch v := v.(type) {
		case nil:
			c.DataType = pglogrepl.TupleDataTypeNull
		case *struct{}:
			c.DataType = pglogrepl.TupleDataTypeToast
		case string:
			c.DataType, c.Data, c.Length = pglogrepl.TupleDataTypeText, []byte(v), uint32(len(v))
		case []byte:
			c.DataType, c.Data, c.Length = pglogrepl.TupleDataTypeBinary, v, uint32(len(v))
		}
		td.Columns = append(td.Columns, c)
	}
	return td
}

func ins(rel uint32, t *pglogrepl.TupleData) pglogrepl.Message {
	return &pglogrepl.InsertMessage{RelationID: rel, Tuple: t}
}

func upd(rel uint32, oldType uint8, old, new *pglogrepl.TupleData) pglogrepl.Message {
	return &pglogrepl.UpdateMessage{RelationID: rel, OldTupleType: oldType, OldTuple: old, NewTuple: new}
}

func del(rel uint32, oldType uint8, old *pglogrepl.TupleData) pglogrepl.Message {
	return &pglogrepl.DeleteMessage{RelationID: rel, OldTupleType: oldType, OldTuple: old}
}

func trunc(rels ...uint32) pglogrepl.Message {
	return &pglogrepl.TruncateMessage{RelationNum: uint32(len(rels)), RelationIDs: rels}
}

func customers(table string, cs ...int64) cache.Touch {
	return cache.Touch{DB: "app", Table: table, Sharded: true, Customers: cs}
}

func whole(table string, sharded bool) cache.Touch {
	return cache.Touch{DB: "app", Table: table, Sharded: sharded}
}

func TestDecoderTransactions(t *testing.T) {
	many := make([]pglogrepl.Message, 0, maxCustomersPerTable+1)
	for i := range maxCustomersPerTable + 1 {
		many = append(many, ins(relInvoices, tup(strconv.Itoa(i), "1", "0")))
	}
	cases := []struct {
		name string
		msgs []pglogrepl.Message
		want []cache.Touch
	}{
		{"insert dedupes customers", []pglogrepl.Message{
			ins(relInvoices, tup("5", "1", "10")), ins(relInvoices, tup("3", "2", "10")), ins(relInvoices, tup("5", "3", "10")),
		}, []cache.Touch{customers("invoices", 3, 5)}},
		{"negative and large keys", []pglogrepl.Message{
			ins(relInvoices, tup("-7", "1", nil)), ins(relInvoices, tup("9223372036854775807", "1", nil)),
		}, []cache.Touch{customers("invoices", -7, 9223372036854775807)}},
		{"table not cacheable", []pglogrepl.Message{ins(relLogs, tup("1", "5"))}, nil},
		{"unsharded table", []pglogrepl.Message{ins(relSettings, tup("a", "b"))}, []cache.Touch{whole("settings", false)}},
		{"update keeping the key", []pglogrepl.Message{
			upd(relInvoices, 0, nil, tup("4", "1", "11")),
		}, []cache.Touch{customers("invoices", 4)}},
		{"update moving the key", []pglogrepl.Message{
			upd(relInvoices, pglogrepl.UpdateMessageTupleTypeKey, tup("4", "1", nil), tup("8", "1", "11")),
		}, []cache.Touch{customers("invoices", 4, 8)}},
		{"update with an unchanged toasted column", []pglogrepl.Message{
			upd(relInvoices, 0, nil, tup("4", "1", toast)),
		}, []cache.Touch{customers("invoices", 4)}},
		{"update, key outside the identity, no old row", []pglogrepl.Message{
			upd(relLines, 0, nil, tup("1", "4", "x")),
		}, []cache.Touch{whole("lines", true)}},
		{"update, identity changed, old key lacks the key column", []pglogrepl.Message{
			upd(relLines, pglogrepl.UpdateMessageTupleTypeKey, tup("1", nil, nil), tup("2", "4", "x")),
		}, []cache.Touch{whole("lines", true)}},
		{"update, replica identity full", []pglogrepl.Message{
			upd(relFull, pglogrepl.UpdateMessageTupleTypeOld, tup("6", "1"), tup("7", "1")),
		}, []cache.Touch{customers("events", 6, 7)}},
		{"update, replica identity full, old row unsent", []pglogrepl.Message{
			upd(relFull, 0, nil, tup("7", "1")),
		}, []cache.Touch{customers("events", 7)}},
		{"delete by key", []pglogrepl.Message{
			del(relInvoices, pglogrepl.DeleteMessageTupleTypeKey, tup("12", "1", nil)),
		}, []cache.Touch{customers("invoices", 12)}},
		{"delete, key outside the identity", []pglogrepl.Message{
			del(relLines, pglogrepl.DeleteMessageTupleTypeKey, tup("1", nil, nil)),
		}, []cache.Touch{whole("lines", true)}},
		{"delete, old row", []pglogrepl.Message{
			del(relFull, pglogrepl.DeleteMessageTupleTypeOld, tup("13", "2")),
		}, []cache.Touch{customers("events", 13)}},
		{"insert without the key column's value", []pglogrepl.Message{
			ins(relInvoices, tup("3", "1", "1")), ins(relInvoices, tup(nil, "1", "1")),
		}, []cache.Touch{whole("invoices", true)}},
		{"key not an integer", []pglogrepl.Message{ins(relInvoices, tup("abc", "1", "1"))}, []cache.Touch{whole("invoices", true)}},
		{"key in binary format", []pglogrepl.Message{ins(relInvoices, tup([]byte{0, 1}, "1", "1"))}, []cache.Touch{whole("invoices", true)}},
		{"short tuple", []pglogrepl.Message{ins(relInvoices, tup())}, []cache.Touch{whole("invoices", true)}},
		{"whole table absorbs customers", []pglogrepl.Message{
			ins(relInvoices, tup(nil, "1", "1")), ins(relInvoices, tup("3", "1", "1")),
		}, []cache.Touch{whole("invoices", true)}},
		{"configured key column missing from the table", []pglogrepl.Message{
			ins(relWeird, tup("1", "2")),
		}, []cache.Touch{whole("weird", true)}},
		{"mixed-case names are lowered", []pglogrepl.Message{
			ins(relMixed, tup("21", "1")),
		}, []cache.Touch{customers("invoices", 21)}},
		{"truncate", []pglogrepl.Message{
			ins(relInvoices, tup("3", "1", "1")), trunc(relInvoices, relSettings, relLogs),
		}, []cache.Touch{whole("invoices", true), whole("settings", false)}},
		{"several tables, sorted by name", []pglogrepl.Message{
			ins(relSettings, tup("a", "b")), ins(relLines, tup("1", "2", "x")), ins(relInvoices, tup("2", "1", "1")),
			ins(relLogs, tup("1", "2")),
		}, []cache.Touch{customers("invoices", 2), customers("lines", 2), whole("settings", false)}},
		{"too many customers", many, []cache.Touch{whole("invoices", true)}},
		{"empty transaction", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecoder(testConfig())
			for _, m := range relations() {
				mustHandle(t, d, m)
			}
			commitTime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
			mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 100, Xid: 7})
			if !d.inTransaction() {
				t.Fatal("inTransaction() = false after Begin")
			}
			for _, m := range tc.msgs {
				mustHandle(t, d, m)
			}
			c := mustHandle(t, d, &pglogrepl.CommitMessage{CommitLSN: 100, TransactionEndLSN: 120, CommitTime: commitTime})
			if c == nil {
				t.Fatal("Commit returned no transaction")
			}
			if d.inTransaction() {
				t.Error("inTransaction() = true after Commit")
			}
			if c.endLSN != 120 || !c.time.Equal(commitTime) {
				t.Errorf("commit = (%s, %v), want (0/78, %v)", c.endLSN, c.time, commitTime)
			}
			if !reflect.DeepEqual(c.touches, tc.want) {
				t.Errorf("touches = %+v\nwant      %+v", c.touches, tc.want)
			}
		})
	}
}

func mustHandle(t *testing.T, d *decoder, m pglogrepl.Message) *commit {
	t.Helper()
	c, err := d.handle(m)
	if err != nil {
		t.Fatalf("handle %T: %v", m, err)
	}
	return c
}

// TestDecoderResetsBetweenTransactions checks that a transaction reports only its own rows.
func TestDecoderResetsBetweenTransactions(t *testing.T) {
	d := newDecoder(testConfig())
	for _, m := range relations() {
		mustHandle(t, d, m)
	}
	txn := func(msgs ...pglogrepl.Message) []cache.Touch {
		mustHandle(t, d, &pglogrepl.BeginMessage{})
		for _, m := range msgs {
			mustHandle(t, d, m)
		}
		return mustHandle(t, d, &pglogrepl.CommitMessage{}).touches
	}
	if got := txn(ins(relInvoices, tup(nil, "1", "1"))); !reflect.DeepEqual(got, []cache.Touch{whole("invoices", true)}) {
		t.Fatalf("first transaction: %+v", got)
	}
	if got, want := txn(ins(relInvoices, tup("9", "1", "1"))), []cache.Touch{customers("invoices", 9)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("second transaction: %+v, want %+v", got, want)
	}
	if got := txn(); got != nil {
		t.Fatalf("empty transaction: %+v", got)
	}
}

// TestDecoderConfigPerTransaction checks that a changed configuration applies from the next
// transaction on.
func TestDecoderConfigPerTransaction(t *testing.T) {
	cacheable := false
	cfg := testConfig()
	cfg.Cacheable = func(string) bool { return cacheable }
	d := newDecoder(cfg)
	for _, m := range relations() {
		mustHandle(t, d, m)
	}
	mustHandle(t, d, &pglogrepl.BeginMessage{})
	mustHandle(t, d, ins(relInvoices, tup("1", "1", "1")))
	if c := mustHandle(t, d, &pglogrepl.CommitMessage{}); c.touches != nil {
		t.Fatalf("not cacheable: touches %+v", c.touches)
	}
	cacheable = true
	mustHandle(t, d, &pglogrepl.BeginMessage{})
	mustHandle(t, d, ins(relInvoices, tup("1", "1", "1")))
	if c := mustHandle(t, d, &pglogrepl.CommitMessage{}); !reflect.DeepEqual(c.touches, []cache.Touch{customers("invoices", 1)}) {
		t.Fatalf("cacheable: touches %+v", c.touches)
	}
}

func TestDecoderErrors(t *testing.T) {
	cases := []struct {
		name string
		msgs []pglogrepl.Message
		want string
	}{
		{"commit without begin", []pglogrepl.Message{&pglogrepl.CommitMessage{}}, "without begin"},
		{"unknown relation", []pglogrepl.Message{&pglogrepl.BeginMessage{}, ins(99, tup("1"))}, "never announced"},
		{"truncate of unknown relation", []pglogrepl.Message{&pglogrepl.BeginMessage{}, trunc(99)}, "never announced"},
		{"change outside a transaction", []pglogrepl.Message{ins(relInvoices, tup("1", "1", "1"))}, "outside a transaction"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecoder(testConfig())
			for _, m := range relations() {
				mustHandle(t, d, m)
			}
			var err error
			for _, m := range tc.msgs {
				if _, err = d.handle(m); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestDecodeWire decodes real pgoutput bytes, and malformed ones without panicking.
func TestDecodeWire(t *testing.T) {
	d := newDecoder(testConfig())
	relationMsg := []byte{'R', 0, 0, 0, 1, 'p', 'u', 'b', 'l', 'i', 'c', 0, 'i', 'n', 'v', 'o', 'i', 'c', 'e', 's', 0, 'd', 0, 1,
		1, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r', '_', 'i', 'd', 0, 0, 0, 0, 20, 0xff, 0xff, 0xff, 0xff}
	begin := []byte{'B', 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}
	insert := []byte{'I', 0, 0, 0, 1, 'N', 0, 1, 't', 0, 0, 0, 2, '4', '2'}
	commitMsg := []byte{'C', 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 120, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, m := range [][]byte{relationMsg, begin, insert} {
		if c, err := d.decode(m); err != nil || c != nil {
			t.Fatalf("decode %q: %v, %v", m[0], c, err)
		}
	}
	c, err := d.decode(commitMsg)
	if err != nil || c == nil {
		t.Fatalf("decode commit: %v, %v", c, err)
	}
	if want := []cache.Touch{customers("invoices", 42)}; c.endLSN != 120 || !reflect.DeepEqual(c.touches, want) {
		t.Fatalf("commit = %s %+v, want 0/78 %+v", c.endLSN, c.touches, want)
	}
	for _, bad := range [][]byte{
		{},
		{'I', 0, 0, 0, 1, 'N', 0, 1, 't', 0, 0, 0, 9, '4'},    // value shorter than its length
		{'I', 0, 0, 0, 1, 'N', 0, 1, 'b', 0x70, 0, 0, 0, '4'}, // 1.8 GB value
		{'U', 0, 0, 0, 1, 'K', 0, 2, 'n'},                     // old key cut short
		{'D', 0, 0, 0, 1, 'K', 0xff, 0xff},                    // 65535 columns announced
		{'T', 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0, 1},          // 808 million relations
		{'Z', 1, 2},            // unknown message
		{'R', 0, 0, 0, 1, 'x'}, // relation cut short
		{'R', 0, 0, 0, 1, 'p', 0, 'r', 0, 'd', 0, 2, 1, 'a', 0, 0, 0}, // column cut short
	} {
		if _, err := d.decode(bad); err == nil {
			t.Errorf("decode %q: no error", bad)
		}
	}
}

// FuzzDecode checks that no message, however malformed, panics the decoder.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{'I', 0, 0, 0, 1, 'N', 0, 1, 't', 0, 0, 0, 2, '4', '2'})
	f.Add([]byte{'U', 0, 0, 0, 1, 'K', 0, 1, 'n', 'N', 0, 1, 't', 0, 0, 0, 1, '1'})
	f.Add([]byte{'D', 0, 0, 0, 1, 'O', 0, 1, 'u'})
	f.Add([]byte{'T', 0, 0, 0, 1, 0, 0, 0, 0, 1})
	f.Add([]byte{'B', 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDecoder(testConfig())
		for _, m := range relations() {
			if _, err := d.handle(m); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.handle(&pglogrepl.BeginMessage{}); err != nil {
			t.Fatal(err)
		}
		_, _ = d.decode(data)
	})
}
