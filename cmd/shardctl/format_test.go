package main

import (
	"strings"
	"testing"
)

func TestShardSet(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, "{}"},
		{[]int{5}, "{5}"},
		{[]int{0, 1, 2, 3}, "{0-3}"},
		{[]int{0, 1, 3}, "{0-1,3}"},
		{[]int{15, 8, 0, 1, 2, 3, 10, 11, 9}, "{0-3,8-11,15}"},
		{[]int{2, 2, 3, 3}, "{2-3}"},
		{[]int{0, 2, 4, 6}, "{0,2,4,6}"},
	} {
		if got := shardSet(tc.in); got != tc.want {
			t.Errorf("shardSet(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLag(t *testing.T) {
	v, big := 0.0123, 12.3456
	for _, tc := range []struct {
		in   *float64
		want string
	}{{nil, "-"}, {&v, "0.012s"}, {&big, "12.346s"}} {
		if got := lag(tc.in); got != tc.want {
			t.Errorf("lag(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEndpointFromDSN(t *testing.T) {
	t.Setenv("PGHOST", "")
	t.Setenv("PGPORT", "")
	for _, tc := range []struct {
		dsn     string
		want    string // "" when an error is expected
		wantErr string
	}{
		{"postgres://app:secret@127.0.0.1:5433/app?sslmode=disable", "127.0.0.1:5433", ""},
		{"postgresql://db.example/app", "db.example:5432", ""},
		{"host=10.0.0.7 port=6543 user=app dbname=app", "10.0.0.7:6543", ""},
		{"host=::1 port=5433", "[::1]:5433", ""},
		{"postgres://app@[fe80::1]:5434/app", "[fe80::1]:5434", ""},
		{"host=db sslmode=require", "db:5432", ""},
		{"", "", "invalid --writer DSN: empty"},
		{"postgres://app:secret@127.0.0.1:notaport/app", "", "invalid --writer DSN: cannot parse `postgres://app:xxxxx@127.0.0.1:notaport/app`: invalid port"},
		{"nonsense", "", "invalid --writer DSN: cannot parse `nonsense`"},
		{"host=/var/run/postgresql", "", "invalid --writer DSN: host \"/var/run/postgresql\" is a Unix socket directory"},
		{"postgres://h1:1,h2:2/app", "", "invalid --writer DSN: it lists several servers (h1:1 and h2:2)"},
	} {
		got, err := endpointFromDSN("--writer", tc.dsn)
		if tc.want != "" {
			if err != nil || got != tc.want {
				t.Errorf("endpointFromDSN(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
			t.Errorf("endpointFromDSN(%q) = %q, %v; want an error starting %q", tc.dsn, got, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("endpointFromDSN(%q): error %q shows the password", tc.dsn, err)
		}
	}
}
