package cache

import (
	"sort"
	"testing"
)

func TestPendingBumps(t *testing.T) {
	key := func(db, table string, n int64) string {
		k, err := genKey(Gen{Kind: GenCustomer, DB: db, Table: table, N: n})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	global := func(db string) string {
		k, _ := genKey(Gen{Kind: GenGlobal, DB: db})
		return k
	}
	item := func(db string, n int64, group string, lsn uint64) bumpItem {
		return bumpItem{key: key(db, "t", n), db: db, group: group, lsn: lsn}
	}
	cases := []struct {
		name    string
		limit   int
		add     [][]bumpItem
		restore []bumpItem // after the adds
		want    []bumpItem
	}{
		{
			name:  "bumps of one key merge in order",
			limit: 10,
			add:   [][]bumpItem{{item("a", 1, "g0", 100)}, {item("a", 1, "g0", 50)}, {item("a", 2, "g0", 7)}},
			want:  []bumpItem{item("a", 1, "g0", 100), item("a", 2, "g0", 7)},
		},
		{
			name:  "another group's bump replaces the LSN",
			limit: 10,
			add:   [][]bumpItem{{item("a", 1, "g0", 100)}, {item("a", 1, "g1", 5)}},
			want:  []bumpItem{item("a", 1, "g1", 5)},
		},
		{
			name:  "an unknown LSN stays unknown",
			limit: 10,
			add:   [][]bumpItem{{item("a", 1, "g0", 100)}, {item("a", 1, "g0", 0)}, {item("a", 1, "g0", 200)}},
			want:  []bumpItem{item("a", 1, "g0", UnknownLSN)},
		},
		{
			name:  "beyond the limit a key becomes its database's global generation",
			limit: 1,
			add:   [][]bumpItem{{item("a", 1, "g0", 100), item("a", 2, "g0", 100), item("b", 3, "g1", 9)}},
			want: []bumpItem{item("a", 1, "g0", 100), {key: global("a"), db: "a", group: "g0"},
				{key: global("b"), db: "b", group: "g1"}},
		},
		{
			name:    "restored items are older than those held",
			limit:   10,
			add:     [][]bumpItem{{item("a", 1, "g0", 100)}},
			restore: []bumpItem{item("a", 1, "g0", 300), item("a", 2, "g0", 1)},
			want:    []bumpItem{item("a", 1, "g0", 300), item("a", 2, "g0", 1)},
		},
		{
			name:    "restored item of another group yields to the newer one",
			limit:   10,
			add:     [][]bumpItem{{item("a", 1, "g1", 100)}},
			restore: []bumpItem{item("a", 1, "g0", 300)},
			want:    []bumpItem{item("a", 1, "g1", 100)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPendingBumps(tc.limit)
			for _, items := range tc.add {
				p.add(items)
			}
			p.restore(tc.restore)
			if p.len() != len(tc.want) {
				t.Fatalf("len = %d, want %d", p.len(), len(tc.want))
			}
			got := p.take()
			byKey := func(s []bumpItem) { sort.Slice(s, func(i, j int) bool { return s[i].key < s[j].key }) }
			byKey(got)
			want := append([]bumpItem(nil), tc.want...)
			byKey(want)
			if len(got) != len(want) {
				t.Fatalf("take = %+v, want %+v", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("take = %+v, want %+v", got, want)
				}
			}
			if p.len() != 0 || p.take() != nil {
				t.Fatal("take did not empty the list")
			}
		})
	}
}

func TestPendingBumpsGlobalHeldTwice(t *testing.T) {
	p := newPendingBumps(1)
	g, _ := genKey(Gen{Kind: GenGlobal, DB: "a"})
	p.add([]bumpItem{{key: g, db: "a", group: "g0", lsn: 50}})
	p.add([]bumpItem{item2(t, "a", 1)})
	got := p.take()
	if len(got) != 1 || got[0].key != g || got[0].lsn != 0 {
		t.Fatalf("take = %+v, want one bump of the global generation with an unknown LSN", got)
	}
}

func item2(t *testing.T, db string, n int64) bumpItem {
	k, err := genKey(Gen{Kind: GenCustomer, DB: db, Table: "t", N: n})
	if err != nil {
		t.Fatal(err)
	}
	return bumpItem{key: k, db: db, group: "g0", lsn: 60}
}
