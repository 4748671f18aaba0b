package router_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// TestSplitEndToEnd runs the router's split statements on a real server: the per-group COPY TO
// statements of four groups together copy exactly the rows of the client's COPY (a header
// from each), and the parts of a multi-row INSERT rendered for each group, bound with the
// parameters Render maps them to, write and return exactly the rows of the whole INSERT.
func TestSplitEndToEnd(t *testing.T) {
	cluster := pgtest.New(t, pgtest.Options{Groups: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, cluster.Groups[0].Writer.AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const schema = `CREATE TABLE split_inv (id int8 PRIMARY KEY, customer_id int8 NOT NULL, note text, amount numeric);
		INSERT INTO split_inv SELECT g, g % 53 - 20, 'note ' || g || E'\t,"q"\n', g * 1.5 FROM generate_series(1, 300) g`
	if _, err := conn.Exec(ctx, schema).ReadAll(); err != nil {
		t.Fatal(err)
	}
	m := &shardmap.Map{Tables: map[string]string{"split_inv": "customer_id"}, KeyIndex: map[string]int{"split_inv": 1}}
	for s := range m.Owner {
		m.Owner[s] = s / 4
	}
	groups := []shardmap.ShardSet{m.OwnedBy(0), m.OwnedBy(1), m.OwnedBy(2), m.OwnedBy(3)}
	r := router.New(router.Config{})

	copyOut := func(sql string) []byte {
		var buf bytes.Buffer
		if _, err := conn.CopyTo(ctx, &buf, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return buf.Bytes()
	}
	for _, tc := range []struct {
		sql    string
		header bool
	}{
		{"COPY split_inv TO STDOUT", false},
		{"COPY split_inv (note, customer_id) TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE *)", true},
		{"COPY split_inv TO STDOUT CSV HEADER DELIMITER '|'", true},
	} {
		p := r.Route(tc.sql, router.Session{}, m)
		if p.Target != router.TargetSplit || p.Copy == nil {
			t.Fatalf("%s: %s", tc.sql, p.JSON())
		}
		// The CSV notes hold newlines inside quotes: compare records, not lines, by splitting
		// on the record ends the data cannot hold unquoted ("\n" after the last field).
		want := records(copyOut(tc.sql))
		var got []string
		for _, g := range groups {
			part := records(copyOut(p.Copy.OutSQL(g)))
			if tc.header {
				if len(part) == 0 || part[0] != want[0] {
					t.Fatalf("%s: part of %s begins %q, want the header %q", tc.sql, g, part, want[0])
				}
				part = part[1:]
			}
			got = append(got, part...)
		}
		if tc.header {
			want = want[1:]
		}
		slices.Sort(want)
		slices.Sort(got)
		if len(want) != 300 || !slices.Equal(got, want) {
			t.Errorf("%s: the groups copied %d records, want the %d of the whole table", tc.sql, len(got), len(want))
		}
	}

	// A multi-row INSERT of parameters, with parameters in ON CONFLICT and RETURNING too.
	const insert = `INSERT INTO split_inv (id, customer_id, note, amount) VALUES ($1, $2, $3, $4 * $13::int), ($5, $6, $7, $8 * $13::int), ($9, $10, $11, $12 * $13::int)
		ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note || $14 RETURNING id, customer_id, note, amount`
	vals := []string{"1001", "3", "a", "1", "1002", "21", "b", "2", "1003", "9", "c", "3", "10", "!"}
	for round, wantNote := range []string{"a", "a!"} { // the second round conflicts
		params := make([][]byte, len(vals))
		for i, v := range vals {
			params[i] = []byte(v)
		}
		p := r.Prepare(insert, m).Plan(textParams(vals), router.Session{}, m)
		if p.Split == nil || m.GroupsOf(p.Shards) != 0b111 {
			t.Fatalf("round %d: %s, want a split over groups 0, 1 and 2", round, p.JSON())
		}
		shards, err := p.Split.RowShards(insert, textParams(vals), nil)
		if err != nil || !slices.Equal(shards, []shardmap.Shard{3, 5, 9}) {
			t.Fatalf("RowShards: %v, %v", shards, err)
		}
		var returned []string
		for g := range groups {
			var rows []int
			for i, s := range shards {
				if m.Owner[s] == g {
					rows = append(rows, i)
				}
			}
			if len(rows) == 0 {
				continue
			}
			text, order := p.Split.Render(insert, rows)
			partParams := make([][]byte, len(order))
			for i, orig := range order {
				partParams[i] = params[orig-1]
			}
			res := conn.ExecParams(ctx, text, partParams, nil, nil, nil).Read()
			if res.Err != nil {
				t.Fatalf("%s: %v", text, res.Err)
			}
			for _, row := range res.Rows {
				returned = append(returned, fmt.Sprintf("%s|%s|%s|%s", row[0], row[1], row[2], row[3]))
			}
		}
		slices.Sort(returned)
		want := []string{"1001|3|" + wantNote + "|10", "1002|21|b" + wantNote[1:] + "|20", "1003|9|c" + wantNote[1:] + "|30"}
		if !slices.Equal(returned, want) {
			t.Errorf("round %d: returned %q, want %q", round, returned, want)
		}
	}
}

// records splits COPY text or CSV output into records: lines, joined again while a CSV
// quoted field is open (an odd number of quotes so far).
func records(data []byte) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line == "" {
			continue
		}
		cur.WriteString(line)
		if strings.Count(cur.String(), `"`)%2 == 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// textParams is a router.Params of text values.
type textParams []string

func (p textParams) Len() int { return len(p) }
func (p textParams) Value(i int) ([]byte, bool, bool) {
	return []byte(p[i]), false, false
}
