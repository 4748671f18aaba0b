package move

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/shardmap"
)

func TestNames(t *testing.T) {
	cases := []struct {
		move          int64
		forward, back string
	}{
		{1, "shardwire_move_1", "shardwire_move_1_rev"},
		{123456789, "shardwire_move_123456789", "shardwire_move_123456789_rev"},
	}
	for _, c := range cases {
		f, r := Names(c.move)
		if f != c.forward || r != c.back {
			t.Errorf("Names(%d) = %q, %q; want %q, %q", c.move, f, r, c.forward, c.back)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	good := Spec{Move: 3, Shard: 15, Tables: []Table{{"a", "k"}, {"s.b", "k"}}, Name: "shardwire_move_3"}
	cases := []struct {
		name   string
		mutate func(*Spec)
		errHas string // "" for valid
	}{
		{"valid", func(*Spec) {}, ""},
		{"shard 16", func(s *Spec) { s.Shard = 16 }, "shard 16 out of range"},
		{"move 0", func(s *Spec) { s.Move = 0 }, "not positive"},
		{"foreign name", func(s *Spec) { s.Name = "mine" }, "must start with"},
		{"long name", func(s *Spec) { s.Name = NamePrefix + strings.Repeat("x", 60) }, "at most 63"},
		{"no tables", func(s *Spec) { s.Tables = nil }, "no tables"},
		{"table twice", func(s *Spec) { s.Tables = append(s.Tables, Table{"a", "k"}) }, "listed twice"},
		{"no key", func(s *Spec) { s.Tables = []Table{{"a", ""}} }, "both must be set"},
	}
	for _, c := range cases {
		s := good
		s.Tables = slices.Clone(good.Tables)
		c.mutate(&s)
		err := s.validate()
		if (c.errHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.errHas)) {
			t.Errorf("%s: validate() = %v, want %q", c.name, err, c.errHas)
		}
	}
}

func TestDescription(t *testing.T) {
	s := Spec{Move: 12, Shard: 7, Tables: []Table{{"customers", "customer_id"}, {"pgbench_accounts", "aid"}}}
	d := s.description()
	if want := "shardwire move 12 shard 7 v2: customers(customer_id), pgbench_accounts(aid)"; d != want {
		t.Errorf("description = %q, want %q", d, want)
	}
	cases := []struct {
		in    string
		move  int64
		shard int
		ok    bool
	}{
		{in: d, move: 12, shard: 7, ok: true},
		{in: "shardwire move 1 shard 15 v9: x(k)", move: 1, shard: 15, ok: true},
		{in: "shardwire move 1 shard 15x", ok: false},
		{in: "", ok: false},
		{in: "made by hand", ok: false},
	}
	for _, c := range cases {
		m, sh, ok := parseDescription(c.in)
		if ok != c.ok || (ok && (m != c.move || sh != c.shard)) {
			t.Errorf("parseDescription(%q) = %d, %d, %v; want %d, %d, %v", c.in, m, sh, ok, c.move, c.shard, c.ok)
		}
	}
}

func TestQuoteLiteral(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "''"},
		{"host=a port=5432", "'host=a port=5432'"},
		{"password='x'", "'password=''x'''"},
		{`pass\word`, `E'pass\\word'`},
		{`it's \ here`, `E'it''s \\ here'`},
	}
	for _, c := range cases {
		if got := quoteLiteral(c.in); got != c.want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestShardFilterAndTriggerNames(t *testing.T) {
	if got, want := shardFilter(`NEW."aid"`, 5), `((NEW."aid" % 16) + 16) % 16 = 5`; got != want {
		t.Errorf("shardFilter = %s, want %s", got, want)
	}
	if got := fenceTriggers(5); !slices.Equal(got, []string{"shardwire_fence_k5_ins", "shardwire_fence_k5_upd", "shardwire_fence_k5_del", "shardwire_fence_k5_trunc"}) {
		t.Errorf("fenceTriggers(5) = %q", got)
	}
	if got := publicationTables(Spec{Move: 9, Shard: 2, Tables: []Table{{"billing.invoices", "customer_id"}}}); got !=
		`"billing"."invoices" WHERE ((("customer_id" % 16) + 16) % 16 = 2), shardwire_move.markers WHERE (((shard_key % 16) + 16) % 16 = 2 AND move_id >= 9)` {
		t.Errorf("publicationTables = %s", got)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{50, 100, 200, 400, 800, 1000, 1000, 1000}
	for i, w := range want {
		if got := backoff(i + 1); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

func TestChildrenFirst(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		edges [][2]int // {child, parent}
		want  []int
	}{
		{"no keys", 3, nil, []int{0, 1, 2}},
		{"child after parent", 2, [][2]int{{1, 0}}, []int{1, 0}},
		{"chain", 3, [][2]int{{1, 0}, {2, 1}}, []int{2, 1, 0}},
		{"two children", 3, [][2]int{{1, 0}, {2, 0}}, []int{1, 2, 0}},
		{"self reference", 2, [][2]int{{0, 0}}, []int{0, 1}},
		{"cycle", 3, [][2]int{{0, 1}, {1, 0}}, []int{2, 0, 1}},
	}
	for _, c := range cases {
		if got := childrenFirst(c.n, c.edges); !slices.Equal(got, c.want) {
			t.Errorf("%s: childrenFirst = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOrphanSyncSlots(t *testing.T) {
	const sysid = "7300000000000000001"
	slots := []string{
		"pg_16400_sync_16390_" + sysid, // subscription 16400 gone: orphan
		"pg_16401_sync_16390_" + sysid, // subscription 16401 exists
		"pg_16400_sync_16390_999",      // another subscriber's
		"shardwire_move_1",             // not a table-copy slot
		"pg_16400_sync_x_" + sysid,     // not well formed
	}
	got := orphanSyncSlots(slots, sysid, []uint32{16401})
	if !slices.Equal(got, slots[:1]) {
		t.Errorf("orphanSyncSlots = %q, want %q", got, slots[:1])
	}
}

func TestSyncStateString(t *testing.T) {
	for s, want := range map[SyncState]string{SyncMissing: "missing", SyncDataCopy: "copying", SyncReady: "ready", "z": "unknown(z)"} {
		if got := s.String(); got != want {
			t.Errorf("%q.String() = %q, want %q", string(s), got, want)
		}
	}
}

func TestReasons(t *testing.T) {
	for got, want := range map[string]string{
		ReasonMovingTo("g2"):     "moving to group g2",
		ReasonArrivingFrom("g0"): "arriving from group g0, not owned yet",
		ReasonMovedTo("g2"):      "moved to group g2",
	} {
		if got != want {
			t.Errorf("reason %q, want %q", got, want)
		}
	}
	if triggerName(shardmap.Shard(12), "trunc") != "shardwire_fence_k12_trunc" {
		t.Error("triggerName")
	}
}
