package shardmap

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestShardOf(t *testing.T) {
	tests := []struct {
		key  int64
		want Shard
	}{
		{0, 0},
		{1, 1},
		{15, 15},
		{16, 0},
		{42, 10},
		{-1, 15},
		{-16, 0},
		{-17, 15},
		{-42, 6},
		{math.MaxInt64, 15},
		{math.MinInt64, 0},
	}
	for _, tt := range tests {
		if got := ShardOf(tt.key); got != tt.want {
			t.Errorf("ShardOf(%d) = %d, want %d", tt.key, got, tt.want)
		}
		// The same rule as the SQL restriction the router adds: ((key % 16) + 16) % 16.
		if sql := ((tt.key % 16) + 16) % 16; int64(ShardOf(tt.key)) != sql {
			t.Errorf("ShardOf(%d) = %d, SQL gives %d", tt.key, ShardOf(tt.key), sql)
		}
	}
}

func TestShardSet(t *testing.T) {
	tests := []struct {
		name   string
		set    ShardSet
		len    int
		shards []Shard
		str    string
	}{
		{"empty", 0, 0, []Shard{}, "{}"},
		{"one", Of(5), 1, []Shard{5}, "{5}"},
		{"unordered and repeated", Of(15, 0, 3, 0), 3, []Shard{0, 3, 15}, "{0,3,15}"},
		{"all", AllShards, 16, []Shard{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
			"{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Len(); got != tt.len {
				t.Errorf("Len = %d, want %d", got, tt.len)
			}
			if got := tt.set.Empty(); got != (tt.len == 0) {
				t.Errorf("Empty = %v with %d shards", got, tt.len)
			}
			if got := tt.set.Shards(); !reflect.DeepEqual(got, tt.shards) {
				t.Errorf("Shards = %v, want %v", got, tt.shards)
			}
			for sh := range Shard(NumShards) {
				want := false
				for _, s := range tt.shards {
					want = want || s == sh
				}
				if tt.set.Has(sh) != want {
					t.Errorf("Has(%d) = %v, want %v", sh, !want, want)
				}
			}
			if got := tt.set.String(); got != tt.str {
				t.Errorf("String = %q, want %q", got, tt.str)
			}
			text, err := tt.set.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back ShardSet = 0xffff // must be overwritten, not merged
			if err := back.UnmarshalText(text); err != nil {
				t.Fatalf("UnmarshalText(%q): %v", text, err)
			}
			if back != tt.set {
				t.Errorf("round trip of %q gave %v", text, back)
			}
			// Also as a JSON value, the way plans print it.
			data, err := json.Marshal(map[string]ShardSet{"s": tt.set})
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]ShardSet
			if err := json.Unmarshal(data, &m); err != nil || m["s"] != tt.set {
				t.Errorf("JSON round trip of %s gave %v, %v", data, m["s"], err)
			}
		})
	}
	if got := Of(1).Add(2).Add(1); got != Of(1, 2) {
		t.Errorf("Add: got %v", got)
	}
}

func TestShardSetUnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    ShardSet
		wantErr string
	}{
		{in: "{}", want: 0},
		{in: " { 1 , 2 } ", want: Of(1, 2)},
		{in: "{15,0}", want: Of(0, 15)},
		{in: "1,2", wantErr: "want {n,m,...}"},
		{in: "{1,2", wantErr: "want {n,m,...}"},
		{in: "{16}", wantErr: `"16" is not a shard`},
		{in: "{-1}", wantErr: `"-1" is not a shard`},
		{in: "{a}", wantErr: `"a" is not a shard`},
	}
	for _, tt := range tests {
		var got ShardSet
		err := got.UnmarshalText([]byte(tt.in))
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("UnmarshalText(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("UnmarshalText(%q): %v", tt.in, err)
		case got != tt.want:
			t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// testMap returns a valid map of n groups with shards split contiguously.
func testMap(n int) *Map {
	m := &Map{Rules: []TableRule{{Column: "customer_id"}, {Table: "pgbench_accounts", Column: "aid"}}}
	for i := range n {
		name := string(rune('a' + i))
		m.Groups = append(m.Groups, Group{Name: "g" + name, Writer: "db-" + name + ":5432"})
	}
	for s := range m.Owner {
		m.Owner[s] = s * n / NumShards
		m.State[s] = StateActive
	}
	return m
}

func TestOwnedByAndGroupsOf(t *testing.T) {
	m := testMap(3) // 0-5 → 0, 6-10 → 1, 11-15 → 2
	owned := []ShardSet{Of(0, 1, 2, 3, 4, 5), Of(6, 7, 8, 9, 10), Of(11, 12, 13, 14, 15)}
	for g, want := range owned {
		if got := m.OwnedBy(g); got != want {
			t.Errorf("OwnedBy(%d) = %v, want %v", g, got, want)
		}
	}
	if got := m.OwnedBy(3); !got.Empty() {
		t.Errorf("OwnedBy(3) = %v, want empty", got)
	}
	tests := []struct {
		shards ShardSet
		want   uint64
	}{
		{0, 0},
		{Of(0), 0b001},
		{Of(0, 5), 0b001},
		{Of(5, 6), 0b011},
		{Of(15), 0b100},
		{Of(0, 15), 0b101},
		{AllShards, 0b111},
	}
	for _, tt := range tests {
		if got := m.GroupsOf(tt.shards); got != tt.want {
			t.Errorf("GroupsOf(%v) = %b, want %b", tt.shards, got, tt.want)
		}
	}
	// The highest group index a map may have still has its bit.
	big := testMap(MaxGroups)
	big.Owner[7] = MaxGroups - 1
	if got := big.GroupsOf(Of(7)); got != 1<<(MaxGroups-1) {
		t.Errorf("GroupsOf with group %d = %b", MaxGroups-1, got)
	}
	if g := m.OwnerOf(7); g.Name != "gb" {
		t.Errorf("OwnerOf(7) = %s, want gb", g.Name)
	}
	if i := m.GroupIndex("gc"); i != 2 {
		t.Errorf("GroupIndex(gc) = %d", i)
	}
	if i := m.GroupIndex("nope"); i != -1 {
		t.Errorf("GroupIndex(nope) = %d", i)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(m *Map)
		wantErr string // "" = valid
	}{
		{"valid", func(*Map) {}, ""},
		{"valid with replicas and default group", func(m *Map) {
			m.Groups[1].Replicas = []string{"r:1"}
			m.DefaultGroup = 1
		}, ""},
		{"negative epoch", func(m *Map) { m.Epoch = -1 }, "must not be negative"},
		{"no groups", func(m *Map) { m.Groups = nil }, "no groups"},
		{"too many groups", func(m *Map) { m.Groups = testMap(MaxGroups + 1).Groups }, "at most 64"},
		{"group without name", func(m *Map) { m.Groups[0].Name = "" }, "needs a name and a writer"},
		{"group without writer", func(m *Map) { m.Groups[1].Writer = "" }, "needs a name and a writer"},
		{"duplicate group", func(m *Map) { m.Groups[1].Name = m.Groups[0].Name }, "appears twice"},
		{"owner out of range", func(m *Map) { m.Owner[3] = 2 }, "shard 3 owned by group index 2 of 2"},
		{"negative owner", func(m *Map) { m.Owner[0] = -1 }, "group index -1"},
		{"missing state", func(m *Map) { m.State[9] = "" }, `shard 9 has unknown state ""`},
		{"unknown state", func(m *Map) { m.State[2] = "teleporting" }, `unknown state "teleporting"`},
		{"default group out of range", func(m *Map) { m.DefaultGroup = 2 }, "default group index 2"},
		{"negative default group", func(m *Map) { m.DefaultGroup = -1 }, "default group index -1"},
		{"rule without column", func(m *Map) { m.Rules = append(m.Rules, TableRule{Table: "x"}) }, "needs a column"},
		{"two rules for a table", func(m *Map) {
			m.Rules = append(m.Rules, TableRule{Table: "PGBENCH_ACCOUNTS", Column: "bid"})
		}, `table "pgbench_accounts" has two rules`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMap(2)
			m.Epoch = 4
			tt.change(m)
			err := m.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestResolveTables(t *testing.T) {
	schema := map[string][]string{
		"invoices":         {"id", "customer_id", "total"},
		"customers":        {"customer_id", "name"},
		"pgbench_accounts": {"aid", "bid", "abalance"},
		"pgbench_branches": {"bid", "bbalance"},
		"settings":         {"key", "value"},
		"events":           {"tenant_id", "customer_id"},
	}
	tests := []struct {
		name  string
		rules []TableRule
		want  map[string]string
	}{
		{"no rules", nil, map[string]string{}},
		{"column rule", []TableRule{{Column: "customer_id"}},
			map[string]string{"invoices": "customer_id", "customers": "customer_id", "events": "customer_id"}},
		{"column rule is lower-cased", []TableRule{{Column: "Customer_ID"}},
			map[string]string{"invoices": "customer_id", "customers": "customer_id", "events": "customer_id"}},
		{"named tables only", []TableRule{{Table: "pgbench_accounts", Column: "aid"}},
			map[string]string{"pgbench_accounts": "aid"}},
		{"named table wins over a column rule before it", []TableRule{
			{Column: "customer_id"}, {Table: "Events", Column: "Tenant_ID"},
		}, map[string]string{"invoices": "customer_id", "customers": "customer_id", "events": "tenant_id"}},
		{"named table wins over a column rule after it", []TableRule{
			{Table: "events", Column: "tenant_id"}, {Column: "customer_id"},
		}, map[string]string{"invoices": "customer_id", "customers": "customer_id", "events": "tenant_id"}},
		{"named table applies before it exists", []TableRule{{Table: "later", Column: "k"}},
			map[string]string{"later": "k"}},
		{"first column rule wins", []TableRule{{Column: "tenant_id"}, {Column: "customer_id"}},
			map[string]string{"invoices": "customer_id", "customers": "customer_id", "events": "tenant_id"}},
		{"column and named rules", []TableRule{
			{Table: "pgbench_accounts", Column: "aid"}, {Column: "bid"},
		}, map[string]string{"pgbench_accounts": "aid", "pgbench_branches": "bid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ResolveTables(tt.rules, schema)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveTables = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeyColumnAndColumnRule(t *testing.T) {
	m := testMap(1)
	if got := m.ColumnRule(); got != "customer_id" {
		t.Errorf("ColumnRule = %q", got)
	}
	m.Tables = ResolveTables(m.Rules, map[string][]string{"invoices": {"customer_id"}})
	if col, ok := m.KeyColumn("invoices"); !ok || col != "customer_id" {
		t.Errorf("KeyColumn(invoices) = %q, %v", col, ok)
	}
	if col, ok := m.KeyColumn("pgbench_accounts"); !ok || col != "aid" {
		t.Errorf("KeyColumn(pgbench_accounts) = %q, %v", col, ok)
	}
	if _, ok := m.KeyColumn("settings"); ok {
		t.Error("settings is sharded")
	}
	m.Rules = []TableRule{{Table: "t", Column: "k"}}
	if got := m.ColumnRule(); got != "" {
		t.Errorf("ColumnRule without a column rule = %q", got)
	}
}

func TestMapJSONRoundTrip(t *testing.T) {
	m := testMap(3)
	m.Groups[0].Region = "us-east-1"
	m.Groups[2].Replicas = []string{"r1:5432", "r2:5432"}
	m.Owner[0], m.Owner[15] = 2, 0
	m.DefaultGroup = 1
	m.Tables = map[string]string{"invoices": "customer_id"}
	stored, data, err := encodeMap(m, 7)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Epoch != 7 || stored.Tables != nil || m.Epoch != 0 || m.Tables == nil {
		t.Fatalf("encodeMap changed the wrong map: stored %+v, given %+v", stored, m)
	}
	if strings.Contains(string(data), "tables") {
		t.Errorf("stored JSON holds Tables: %s", data)
	}
	back, err := decodeMap(data, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := *m
	want.Epoch = 7
	want.Tables = nil
	if !reflect.DeepEqual(back, &want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, &want)
	}
	// The epoch column wins over the JSON's.
	if again, err := decodeMap(data, 9); err != nil || again.Epoch != 9 {
		t.Errorf("decodeMap with epoch 9: %v, %v", again, err)
	}
	// A stored map that fails validation is refused.
	bad := strings.Replace(string(data), `"active"`, `"bogus"`, 1)
	if _, err := decodeMap([]byte(bad), 7); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("decodeMap of a map with an unknown state: %v", err)
	}
	if _, err := decodeMap([]byte("{"), 7); err == nil {
		t.Error("decodeMap of broken JSON succeeded")
	}
	if _, _, err := encodeMap(&Map{}, 1); err == nil {
		t.Error("encodeMap of an invalid map succeeded")
	}
}
