package shardmap

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// editBase returns a map of four groups: g0 owns shards 0-5, g1 (in the middle) owns none, g2
// owns 6-10, g3 owns 11-15 and is the default group.
func editBase() *Map {
	m := &Map{
		Epoch: 7,
		Groups: []Group{
			{Name: "g0", Region: "eu", Writer: "db0:5432", Replicas: []string{"db0r:5432"}, ReplicaRegions: map[string]string{"db0r:5432": "us"}},
			{Name: "g1", Region: "eu", Writer: "db1:5432"},
			{Name: "g2", Region: "us", Writer: "db2:5432", Replicas: []string{"db2r:5433"}},
			{Name: "g3", Region: "us", Writer: "[::1]:6432"},
		},
		DefaultGroup: 3,
		Rules:        []TableRule{{Column: "customer_id"}, {Table: "accounts", Column: "aid"}},
	}
	for s := range NumShards {
		switch {
		case s <= 5:
			m.Owner[s] = 0
		case s <= 10:
			m.Owner[s] = 2
		default:
			m.Owner[s] = 3
		}
		m.State[s] = StateActive
	}
	return m
}

// snapshot returns m's JSON, to check that an edit left it untouched.
func snapshot(t *testing.T, m *Map) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAddGroup(t *testing.T) {
	tests := []struct {
		name    string
		group   Group
		wantErr string // substring; "" means success
		is      error
	}{
		{name: "new group", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db4r:5432"}}},
		{name: "replica in another region", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db4r:5432"}, ReplicaRegions: map[string]string{"db4r:5432": "eu"}}},
		{name: "ipv6 writer", group: Group{Name: "g4", Region: "ap", Writer: "[fe80::1]:5432"}},
		{name: "no name", group: Group{Region: "ap", Writer: "db4:5432"}, wantErr: "needs a name"},
		{name: "blank name", group: Group{Name: "  ", Region: "ap", Writer: "db4:5432"}, wantErr: "needs a name"},
		{name: "name taken", group: Group{Name: "g2", Region: "ap", Writer: "db4:5432"}, wantErr: `"g2"`, is: ErrGroupExists},
		{name: "no region", group: Group{Name: "g4", Writer: "db4:5432"}, wantErr: "needs a region"},
		{name: "empty replica region", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db4r:5432"}, ReplicaRegions: map[string]string{"db4r:5432": ""}}, wantErr: "empty region"},
		{name: "region for a non-replica", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", ReplicaRegions: map[string]string{"x:1": "eu"}}, wantErr: "not one of its replicas"},
		{name: "no writer", group: Group{Name: "g4", Region: "ap"}, wantErr: "writer"},
		{name: "writer without port", group: Group{Name: "g4", Region: "ap", Writer: "db4"}, wantErr: `writer "db4": want host:port`},
		{name: "writer without host", group: Group{Name: "g4", Region: "ap", Writer: ":5432"}, wantErr: "missing host"},
		{name: "port not a number", group: Group{Name: "g4", Region: "ap", Writer: "db4:pg"}, wantErr: "not a number"},
		{name: "port zero", group: Group{Name: "g4", Region: "ap", Writer: "db4:0"}, wantErr: "not a number"},
		{name: "port too large", group: Group{Name: "g4", Region: "ap", Writer: "db4:65536"}, wantErr: "not a number"},
		{name: "bad replica", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db4r:5432", "nope"}}, wantErr: `replica 2 "nope"`},
		{name: "writer of another group", group: Group{Name: "g4", Region: "ap", Writer: "db2:5432"}, wantErr: `already an endpoint of group "g2"`},
		{name: "replica of another group", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db0r:5432"}}, wantErr: `already an endpoint of group "g0"`},
		{name: "another spelling of a used endpoint", group: Group{Name: "g4", Region: "ap", Writer: "DB2:05432"}, wantErr: `already an endpoint of group "g2"`},
		{name: "ipv6 endpoint in use", group: Group{Name: "g4", Region: "ap", Writer: "[::1]:6432"}, wantErr: `already an endpoint of group "g3"`},
		{name: "replica listed twice", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db4r:5432", "db4r:5432"}}, wantErr: "listed twice"},
		{name: "replica same as writer", group: Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db4:5432"}}, wantErr: "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := editBase()
			before := snapshot(t, m)
			got, err := AddGroup(m, tt.group)
			if after := snapshot(t, m); after != before {
				t.Errorf("AddGroup modified its map:\n%s\nwas\n%s", after, before)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AddGroup error %v, want one containing %q", err, tt.wantErr)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("AddGroup error %v does not match %v", err, tt.is)
				}
				if got != nil {
					t.Errorf("AddGroup returned a map with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("AddGroup: %v", err)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("AddGroup's map does not validate: %v", err)
			}
			if len(got.Groups) != len(m.Groups)+1 || got.Groups[len(got.Groups)-1].Name != tt.group.Name {
				t.Fatalf("AddGroup groups %+v, want the old ones and then %q", got.Groups, tt.group.Name)
			}
			for i := range m.Groups {
				if got.Groups[i].Name != m.Groups[i].Name {
					t.Errorf("group %d is %q, want %q (order kept)", i, got.Groups[i].Name, m.Groups[i].Name)
				}
			}
			if got.Epoch != m.Epoch || got.Owner != m.Owner || got.State != m.State || got.DefaultGroup != m.DefaultGroup {
				t.Errorf("AddGroup changed epoch, ownership, states or the default group: %+v", got)
			}
			if !got.OwnedBy(len(got.Groups) - 1).Empty() {
				t.Errorf("the new group owns shards")
			}
			if snapshot(t, &Map{Rules: got.Rules}) != snapshot(t, &Map{Rules: m.Rules}) {
				t.Errorf("rules %+v, want %+v", got.Rules, m.Rules)
			}
		})
	}
}

func TestAddGroupCopiesItsInput(t *testing.T) {
	m := editBase()
	g := Group{Name: "g4", Region: "ap", Writer: "db4:5432", Replicas: []string{"db4r:5432"}, ReplicaRegions: map[string]string{"db4r:5432": "eu"}}
	got, err := AddGroup(m, g)
	if err != nil {
		t.Fatal(err)
	}
	g.Replicas[0] = "changed:1"
	g.ReplicaRegions["db4r:5432"] = "changed"
	added := got.Groups[4]
	if added.Replicas[0] != "db4r:5432" || added.ReplicaRegions["db4r:5432"] != "eu" {
		t.Errorf("the caller's later changes to g reached the map: %+v", added)
	}
	got.Rules[0].Column = "changed"
	if m.Rules[0].Column != "customer_id" {
		t.Error("the new map shares its rules with the old one")
	}
}

func TestAddGroupLimit(t *testing.T) {
	m := editBase()
	for i := len(m.Groups); i < MaxGroups; i++ {
		var err error
		if m, err = AddGroup(m, Group{Name: "x" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Region: "r", Writer: "h" + strings.Repeat("x", i) + ":1"}); err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
	}
	if _, err := AddGroup(m, Group{Name: "one-too-many", Region: "r", Writer: "last:1"}); err == nil || !strings.Contains(err.Error(), "the most it can hold") {
		t.Errorf("group %d: error %v, want the limit", MaxGroups+1, err)
	}
}

func TestRemoveGroup(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Map) // applied to the base before removing
		remove  string
		wantErr string
		is      error
		owns    ShardSet // for a *GroupOwnsShardsError
	}{
		{name: "group in the middle", remove: "g1"},
		{name: "first group, after its shards moved", remove: "g0", edit: func(m *Map) {
			for s := range 6 {
				m.Owner[s] = 1
			}
		}},
		{name: "last group, not the default", remove: "g3", edit: func(m *Map) {
			m.DefaultGroup = 1
			for s := 11; s < NumShards; s++ {
				m.Owner[s] = 2
			}
		}},
		{name: "unknown group", remove: "nope", wantErr: `"nope"`, is: ErrUnknownGroup},
		{name: "default group", remove: "g3", wantErr: "unsharded tables", is: ErrDefaultGroup},
		{name: "default group owning nothing", remove: "g1", edit: func(m *Map) { m.DefaultGroup = 1 }, wantErr: "unsharded tables", is: ErrDefaultGroup},
		{name: "group owning shards", remove: "g2", wantErr: "move them to other groups first", owns: Of(6, 7, 8, 9, 10)},
		{name: "group owning one shard", remove: "g1", edit: func(m *Map) { m.Owner[15] = 1 }, wantErr: "{15}", owns: Of(15)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := editBase()
			if tt.edit != nil {
				tt.edit(m)
			}
			before := snapshot(t, m)
			got, err := RemoveGroup(m, tt.remove)
			if after := snapshot(t, m); after != before {
				t.Errorf("RemoveGroup modified its map")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RemoveGroup error %v, want one containing %q", err, tt.wantErr)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("RemoveGroup error %v does not match %v", err, tt.is)
				}
				var owns *GroupOwnsShardsError
				if isOwns, wantOwns := errors.As(err, &owns), tt.owns != 0; isOwns != wantOwns {
					t.Fatalf("RemoveGroup error %v: is a *GroupOwnsShardsError = %v, want %v", err, isOwns, wantOwns)
				}
				if owns != nil && (owns.Group != tt.remove || owns.Shards != tt.owns) {
					t.Errorf("GroupOwnsShardsError %+v, want group %q shards %s", owns, tt.remove, tt.owns)
				}
				return
			}
			if err != nil {
				t.Fatalf("RemoveGroup: %v", err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("RemoveGroup's map does not validate: %v", err)
			}
			if len(got.Groups) != len(m.Groups)-1 || got.GroupIndex(tt.remove) >= 0 {
				t.Fatalf("groups after removing %q: %+v", tt.remove, got.Groups)
			}
			// Every shard keeps its owner and the default group stays the same group, by name.
			for s := range NumShards {
				if g, w := got.OwnerOf(Shard(s)).Name, m.OwnerOf(Shard(s)).Name; g != w {
					t.Errorf("shard %d owned by %q after the removal, want %q", s, g, w)
				}
			}
			if g, w := got.Groups[got.DefaultGroup].Name, m.Groups[m.DefaultGroup].Name; g != w {
				t.Errorf("default group %q after the removal, want %q", g, w)
			}
			if got.Epoch != m.Epoch || got.State != m.State {
				t.Errorf("RemoveGroup changed the epoch or shard states")
			}
		})
	}
}

func TestUnknownGroupListsKnownGroups(t *testing.T) {
	_, err := RemoveGroup(editBase(), "g9")
	if want := `known groups: "g0", "g1", "g2", "g3"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want one listing %s", err, want)
	}
}

func TestCatalogUpdate(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	boot, admin := bootstrapped(ctx, t, srv)

	// An edit that works is published as the next epoch.
	got, err := admin.Update(ctx, "shardctl", "group add g-new", func(m *Map) (*Map, error) {
		return AddGroup(m, Group{Name: "g-new", Region: "eu", Writer: "new-host:5432"})
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.Epoch != 2 || got.GroupIndex("g-new") < 0 {
		t.Errorf("Update returned epoch %d groups %+v, want epoch 2 with g-new", got.Epoch, got.Groups)
	}
	loaded, err := admin.Load(ctx)
	if err != nil || loaded.Epoch != 2 || loaded.GroupIndex("g-new") < 0 {
		t.Fatalf("Load after Update: %+v, %v", loaded, err)
	}
	hist, err := admin.History(ctx, 1)
	if err != nil || len(hist) != 1 || hist[0].CreatedBy != "shardctl" || hist[0].Reason != "group add g-new" {
		t.Errorf("history after Update: %+v, %v", hist, err)
	}

	// A refused edit, and an edit that makes an invalid map, publish nothing.
	if _, err := admin.Update(ctx, "shardctl", "remove", func(m *Map) (*Map, error) { return RemoveGroup(m, boot.Groups[0].Name) }); !errors.Is(err, ErrDefaultGroup) {
		t.Errorf("Update with a refused edit: %v, want ErrDefaultGroup", err)
	}
	if _, err := admin.Update(ctx, "shardctl", "break", func(m *Map) (*Map, error) {
		c := *m
		c.DefaultGroup = 99
		return &c, nil
	}); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Errorf("Update with an invalid result: %v, want an invalid-map error", err)
	}
	if epoch, err := admin.Epoch(ctx); err != nil || epoch != 2 {
		t.Fatalf("epoch after refused updates: %d, %v; want 2", epoch, err)
	}

	// Two updates from the same base: one wins, the other loses the compare-and-set.
	cats := []*Catalog{admin, openCatalog(ctx, t, srv.AppDSN(), "")}
	var (
		loadedBoth sync.WaitGroup
		wg         sync.WaitGroup
		results    [2]*Map
		errs       [2]error
	)
	loadedBoth.Add(2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"g-a", "g-b"}[i]
			results[i], errs[i] = cats[i].Update(ctx, "shardctl", "race", func(m *Map) (*Map, error) {
				loadedBoth.Done()
				loadedBoth.Wait() // both have loaded the same epoch before either publishes
				return AddGroup(m, Group{Name: name, Region: "eu", Writer: name + ":5432"})
			})
		}()
	}
	wg.Wait()
	winner := -1
	for i := range 2 {
		if errs[i] == nil {
			if winner >= 0 {
				t.Fatalf("both concurrent updates won: %+v %+v", results[0], results[1])
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no concurrent update won: %v; %v", errs[0], errs[1])
	}
	loser := 1 - winner
	var conflict *EpochConflictError
	if !errors.Is(errs[loser], ErrEpochConflict) || !errors.As(errs[loser], &conflict) || conflict.Expected != 2 || conflict.Current != 3 {
		t.Errorf("the losing update: %v, want an *EpochConflictError expecting 2, finding 3", errs[loser])
	}
	final, err := admin.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	winName, loseName := []string{"g-a", "g-b"}[winner], []string{"g-a", "g-b"}[loser]
	if final.Epoch != 3 || final.GroupIndex(winName) < 0 || final.GroupIndex(loseName) >= 0 {
		t.Errorf("catalog after the race: epoch %d groups %+v; want epoch 3 with %s and without %s", final.Epoch, final.Groups, winName, loseName)
	}
}
