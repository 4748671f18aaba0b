package cache

import "testing"

func TestGenKey(t *testing.T) {
	cases := []struct {
		gen  Gen
		want string
	}{
		{Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: 42}, "sw:{gen}:app:c:invoices:42"},
		{Gen{Kind: GenCustomer, DB: "app", Table: "invoices", N: -3}, "sw:{gen}:app:c:invoices:-3"},
		{Gen{Kind: GenShard, DB: "app", Table: "invoices", N: 7}, "sw:{gen}:app:s:invoices:7"},
		{Gen{Kind: GenTable, DB: "app", Table: "plans", Group: "g1"}, "sw:{gen}:app:t:plans:g1"},
		{Gen{Kind: GenGlobal, DB: "app", Table: "ignored", N: 9}, "sw:{gen}:app:g::"},
		{Gen{Kind: GenTable, DB: "a:b", Table: "x%y", Group: "{g} 1"}, "sw:{gen}:a%3Ab:t:x%25y:%7Bg%7D%201"},
		{Gen{Kind: GenCustomer, DB: "d\nb", Table: "tä", N: 1}, "sw:{gen}:d%0Ab:c:t%C3%A4:1"},
	}
	for _, tc := range cases {
		got, err := genKey(tc.gen)
		if err != nil {
			t.Fatalf("genKey(%+v): %v", tc.gen, err)
		}
		if got != tc.want {
			t.Errorf("genKey(%+v) = %q, want %q", tc.gen, got, tc.want)
		}
	}
	if _, err := genKey(Gen{Kind: 0, DB: "app"}); err == nil {
		t.Error("genKey accepted kind 0")
	}
}

func TestGenKeyNoCollisions(t *testing.T) {
	// Pairs that a naive join with ':' would map to one key.
	gens := []Gen{
		{Kind: GenCustomer, DB: "x:c", Table: "y", N: 1},
		{Kind: GenCustomer, DB: "x", Table: "c:y", N: 1},
		{Kind: GenTable, DB: "x", Table: "y:z", Group: "g"},
		{Kind: GenTable, DB: "x", Table: "y", Group: "z:g"},
		{Kind: GenGlobal, DB: "x"},
		{Kind: GenGlobal, DB: "x:g:"},
		{Kind: GenTable, DB: "x", Table: "", Group: ""},
		{Kind: GenShard, DB: "x", Table: "y", N: 1},
		{Kind: GenCustomer, DB: "x", Table: "y", N: 1},
		{Kind: GenTable, DB: "x", Table: "y", Group: "1"},
		{Kind: GenTable, DB: "x", Table: "y%3A", Group: "g"},
		{Kind: GenTable, DB: "x", Table: "y:", Group: "g"},
	}
	seen := map[string]Gen{}
	for _, g := range gens {
		k, err := genKey(g)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[k]; ok {
			t.Errorf("%+v and %+v share key %q", prev, g, k)
		}
		seen[k] = g
	}
}

func TestLSNField(t *testing.T) {
	for _, lsn := range []uint64{0, 1, 0x16B3748, 1 << 53, 1<<53 + 1, ^uint64(0)} {
		s := formatLSN(lsn)
		if len(s) != 16 {
			t.Fatalf("formatLSN(%d) = %q, want 16 digits", lsn, s)
		}
		got, err := parseLSN(s)
		if err != nil || got != lsn {
			t.Fatalf("parseLSN(%q) = %d, %v; want %d", s, got, err, lsn)
		}
	}
	// The Lua script compares the fields as strings.
	if !(formatLSN(0xff) < formatLSN(0x100)) || !(formatLSN(1<<53) < formatLSN(1<<53+1)) {
		t.Fatal("LSN fields do not sort like the numbers")
	}
	if _, err := parseLSN("zz"); err == nil {
		t.Fatal("parseLSN accepted garbage")
	}
}

func TestMergeBump(t *testing.T) {
	cases := []struct {
		name      string
		oldGroup  string
		oldLSN    uint64
		group     string
		lsn       uint64
		wantGroup string
		want      uint64
	}{
		{"same group, newer", "g0", 100, "g0", 200, "g0", 200},
		{"same group, older (bumps raced)", "g0", 300, "g0", 200, "g0", 300},
		{"same group, new unknown: only the writer from now on", "g0", 300, "g0", 0, "g0", UnknownLSN},
		{"same group, old unknown stays", "g0", UnknownLSN, "g0", 200, "g0", UnknownLSN},
		{"other group", "g1", 900, "g0", 200, "g0", 200},
		{"other group, unknown", "g1", 900, "g0", 0, "g0", UnknownLSN},
		{"fresh counter", "", 0, "g0", 5, "g0", 5},
		{"flush keeps the last write's", "g0", 300, "", 0, "g0", 300},
		{"flush of a fresh counter", "", 0, "", 0, "", 0},
	}
	for _, tc := range cases {
		g, l := mergeBump(tc.oldGroup, tc.oldLSN, tc.group, tc.lsn)
		if g != tc.wantGroup || l != tc.want {
			t.Errorf("%s: mergeBump = %q %d, want %q %d", tc.name, g, l, tc.wantGroup, tc.want)
		}
	}
}
