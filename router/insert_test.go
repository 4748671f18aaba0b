package router

import (
	"testing"

	"github.com/shardwire/shardwire/shardmap"
)

// TestInsertWithoutColumnList: an INSERT without a column list finds its key by the table's
// column order when the map knows it, and is refused as keyless when it does not.
func TestInsertWithoutColumnList(t *testing.T) {
	withOrder := routeTestMap()
	withOrder.KeyIndex = map[string]int{"customers": 0, "invoices": 1}
	cases := []struct {
		m    *shardmap.Map
		sql  string
		want string
	}{
		{withOrder, "INSERT INTO customers VALUES (5, 'x')", "Write Shards{5}"},
		{withOrder, "INSERT INTO customers VALUES (5, 'x'), (21, 'y')", "Write Shards{5}"},
		{withOrder, "INSERT INTO customers VALUES (5, 'x'), (6, 'y')", "Write Shards{5,6}"},
		{withOrder, "INSERT INTO invoices VALUES (1, 42, 'n')", "Write Shards{10}"},
		{withOrder, "INSERT INTO invoices SELECT 1, 42", "Write Shards{10}"},
		{withOrder, "INSERT INTO customers (name, customer_id) VALUES ('x', 7)", "Write Shards{7}"},
		{routeTestMap(), "INSERT INTO customers VALUES (5, 'x')", "Reject"},
	}
	for _, c := range cases {
		r := New(Config{})
		got := r.Route(c.sql, Session{}, c.m)
		if s := got.String(); s != c.want && !(c.want == "Reject" && got.Target == TargetReject) {
			t.Errorf("%s: got %s, want %s", c.sql, s, c.want)
		}
		// The same statement again comes from the cache and plans the same.
		if again := r.Route(c.sql, Session{}, c.m); again.String() != got.String() {
			t.Errorf("%s: cached plan %s differs from %s", c.sql, again, got)
		}
	}
	// A map that learns the column order later replans the same text.
	r := New(Config{})
	sql := "INSERT INTO customers VALUES (9, 'z')"
	if p := r.Route(sql, Session{}, routeTestMap()); p.Target != TargetReject {
		t.Fatalf("without column order: %s", p)
	}
	if p := r.Route(sql, Session{}, withOrder); p.String() != "Write Shards{9}" {
		t.Fatalf("with column order: %s", p)
	}
}
