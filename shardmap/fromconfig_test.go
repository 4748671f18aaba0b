package shardmap

import (
	"reflect"
	"strings"
	"testing"

	"github.com/shardwire/shardwire/config"
)

// configWith returns a valid configuration with n groups g0..g(n-1).
func configWith(n int) config.Config {
	cfg := config.Default()
	cfg.Users = []config.User{{Name: "app", Password: "app"}}
	for i := range n {
		name := "g" + string(rune('0'+i))
		cfg.Groups = append(cfg.Groups, config.Group{
			Name:   name,
			Region: "r" + string(rune('0'+i%2)),
			Writer: "10.0.0." + string(rune('1'+i)) + ":5432",
		})
	}
	return cfg
}

// owners builds an Owner array from contiguous runs, each {count of shards, group index}.
func owners(runs ...[2]int) [NumShards]int {
	var o [NumShards]int
	s := 0
	for _, r := range runs {
		for range r[0] {
			o[s] = r[1]
			s++
		}
	}
	return o
}

func TestFromConfigOwnership(t *testing.T) {
	tests := []struct {
		name   string
		groups int
		shards map[string]string
		want   [NumShards]int
	}{
		{"one group owns everything", 1, nil, owners([2]int{16, 0})},
		{"two groups", 2, nil, owners([2]int{8, 0}, [2]int{8, 1})},
		{"three groups split contiguously", 3, nil, owners([2]int{6, 0}, [2]int{5, 1}, [2]int{5, 2})},
		{"four groups", 4, nil, owners([2]int{4, 0}, [2]int{4, 1}, [2]int{4, 2}, [2]int{4, 3})},
		{"explicit assignment", 2, map[string]string{"0-11": "g1", "12-15": "g0"},
			owners([2]int{12, 1}, [2]int{4, 0})},
		{"single shards", 2, map[string]string{"0": "g1", "1-15": "g0"},
			owners([2]int{1, 1}, [2]int{15, 0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configWith(tt.groups)
			cfg.Sharding.Shards = tt.shards
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			m, err := FromConfig(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			if m.Owner != tt.want {
				t.Errorf("Owner = %v, want %v", m.Owner, tt.want)
			}
			// Every group's run is contiguous, and together they cover all shards once.
			var all ShardSet
			for g := range m.Groups {
				owned := m.OwnedBy(g)
				if all&owned != 0 {
					t.Errorf("group %d's shards %v overlap", g, owned)
				}
				all |= owned
			}
			if all != AllShards {
				t.Errorf("groups own %v, want every shard", all)
			}
		})
	}
	// The brief's example, spelled out: 4 groups give 0–3 → g0, 4–7 → g1, 8–11 → g2, 12–15 → g3.
	cfg := configWith(4)
	m, err := FromConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	for s := range Shard(NumShards) {
		want := "g" + string(rune('0'+int(s)/4))
		if got := m.OwnerOf(s).Name; got != want {
			t.Errorf("shard %d owned by %s, want %s", s, got, want)
		}
	}
}

func TestFromConfigMap(t *testing.T) {
	cfg := configWith(3)
	cfg.Groups[1].Replicas = []string{"10.0.1.1:5432", "10.0.1.2:5432"}
	cfg.Sharding.DefaultGroup = "g2"
	cfg.Sharding.KeyColumn = "Customer_ID"
	cfg.Sharding.Tables = []config.ShardedTable{
		{Name: "PgBench_Accounts", Column: "AID"},
		{Name: "pgbench_branches", Column: "bid"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := FromConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch != 0 || m.Tables != nil {
		t.Errorf("epoch %d, tables %v: want 0 and none", m.Epoch, m.Tables)
	}
	wantGroups := []Group{
		{Name: "g0", Region: "r0", Writer: "10.0.0.1:5432"},
		{Name: "g1", Region: "r1", Writer: "10.0.0.2:5432", Replicas: []string{"10.0.1.1:5432", "10.0.1.2:5432"}},
		{Name: "g2", Region: "r0", Writer: "10.0.0.3:5432"},
	}
	if !reflect.DeepEqual(m.Groups, wantGroups) {
		t.Errorf("Groups = %+v, want %+v", m.Groups, wantGroups)
	}
	cfg.Groups[1].Replicas[0] = "changed:1"
	if m.Groups[1].Replicas[0] != "10.0.1.1:5432" {
		t.Error("the map shares its replica list with the configuration")
	}
	for s, st := range m.State {
		if st != StateActive {
			t.Errorf("shard %d is %q", s, st)
		}
	}
	if m.DefaultGroup != 2 {
		t.Errorf("DefaultGroup = %d, want 2", m.DefaultGroup)
	}
	wantRules := []TableRule{
		{Column: "customer_id"},
		{Table: "pgbench_accounts", Column: "aid"},
		{Table: "pgbench_branches", Column: "bid"},
	}
	if !reflect.DeepEqual(m.Rules, wantRules) {
		t.Errorf("Rules = %+v, want %+v", m.Rules, wantRules)
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
}

func TestFromConfigRules(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		tables  []config.ShardedTable
		defGrp  string
		want    []TableRule
		wantDef int
		wantErr string
	}{
		{name: "default key column", key: "customer_id", want: []TableRule{{Column: "customer_id"}}},
		{name: "tables only", key: "", tables: []config.ShardedTable{{Name: "t", Column: "k"}},
			want: []TableRule{{Table: "t", Column: "k"}}},
		{name: "default group by name", key: "customer_id", defGrp: "g1",
			want: []TableRule{{Column: "customer_id"}}, wantDef: 1},
		{name: "schema-qualified table", key: "customer_id",
			tables: []config.ShardedTable{{Name: "public.t", Column: "k"}}, wantErr: "without its schema"},
		{name: "a table twice", key: "customer_id",
			tables: []config.ShardedTable{{Name: "t", Column: "k"}, {Name: "T", Column: "j"}}, wantErr: "two rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configWith(2)
			cfg.Sharding.KeyColumn = tt.key
			cfg.Sharding.Tables = tt.tables
			cfg.Sharding.DefaultGroup = tt.defGrp
			m, err := FromConfig(&cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromConfig = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Rules, tt.want) || m.DefaultGroup != tt.wantDef {
				t.Errorf("Rules %+v default %d, want %+v default %d", m.Rules, m.DefaultGroup, tt.want, tt.wantDef)
			}
		})
	}
}

func TestFromConfigErrors(t *testing.T) {
	cfg := configWith(2)
	cfg.Sharding.DefaultGroup = "nope"
	if _, err := FromConfig(&cfg); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown default group: %v", err)
	}
	cfg = configWith(2)
	cfg.Sharding.Shards = map[string]string{"0-7": "g0"}
	if _, err := FromConfig(&cfg); err == nil || !strings.Contains(err.Error(), "shard 8 has no group") {
		t.Errorf("shards left without a group: %v", err)
	}
	cfg = configWith(0)
	if _, err := FromConfig(&cfg); err == nil {
		t.Error("no groups: no error")
	}
}
