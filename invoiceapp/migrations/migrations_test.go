package migrations

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"empty", "", nil},
		{"comments only", "-- a\n  -- b\n\n", nil},
		{"one", "CREATE TABLE a (x int);\n", []string{"CREATE TABLE a (x int)"}},
		{"no final newline", "SELECT 1;", []string{"SELECT 1"}},
		{"no final semicolon", "SELECT 1;\nSELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"multi-line with comments", "-- head\nCREATE TABLE a (\n    x int, -- inline; not an end\n    y int\n);\n\n-- next\nCREATE INDEX i ON a (x);\n",
			[]string{"CREATE TABLE a (\n    x int, -- inline; not an end\n    y int\n)", "CREATE INDEX i ON a (x)"}},
		{"semicolon mid-line", "SELECT ';' AS s, 1\n;\n", []string{"SELECT ';' AS s, 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Split(tc.src); !slices.Equal(got, tc.want) {
				t.Errorf("Split =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestAll(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Version != 1 || all[0].Name != "init" {
		t.Fatalf("migrations: %+v", all)
	}
	for i, m := range all {
		if i > 0 && m.Version <= all[i-1].Version {
			t.Errorf("version %d after %d", m.Version, all[i-1].Version)
		}
		if len(m.Checksum) != 64 {
			t.Errorf("checksum %q", m.Checksum)
		}
		for _, s := range m.Statements {
			// Statements run one by one outside transactions: each must be idempotent.
			if !strings.Contains(s, "IF NOT EXISTS") {
				t.Errorf("%04d_%s: statement is not idempotent: %s", m.Version, m.Name, s)
			}
		}
	}
	// Every sharded table carries customer_id.
	init := strings.Join(all[0].Statements, "\n")
	for _, table := range []string{"customers", "invoices", "invoice_lines", "payments", "idempotency_keys"} {
		found := false
		for _, s := range all[0].Statements {
			if strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS "+table+" (") {
				found = true
				if !strings.Contains(s, "customer_id bigint") {
					t.Errorf("table %s has no customer_id", table)
				}
			}
		}
		if !found {
			t.Errorf("table %s is not created:\n%s", table, init)
		}
	}
}
