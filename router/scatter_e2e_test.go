package router_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/proxy/merge"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// The end-to-end scatter test: one Postgres server holds a database "ref" with every row of
// a sharded table, and four databases "p0".."p3" standing for shard groups, each owning four
// shards and holding, besides their rows, stale copies of rows of shards they do not own (as
// after a move). Every statement runs unsharded on ref and, rewritten by ScatterSQL, on each
// part; the parts' replies go through merge.Merger; the merged reply must equal ref's byte
// for byte, in text and in binary result formats.

const e2eSchema = `CREATE TABLE inv (
	id          int8 PRIMARY KEY,
	customer_id int8 NOT NULL,
	status      text,
	amount      numeric(12,2),
	qty         int4,
	price       float8,
	created     timestamp,
	created_tz  timestamptz,
	day         date,
	tok         uuid,
	flag        bool,
	small       int2,
	dur         interval,
	code        char(4)
)`

// e2eRows generates the rows; customer ids run from -20 to 32, so that negative keys test
// the restriction's modulo.
const e2eRows = `SELECT g AS id,
	(g * 7919) % 53 - 20 AS customer_id,
	(ARRAY['open', 'paid', 'void', 'Draft', NULL])[g % 5 + 1] AS status,
	CASE WHEN g % 11 = 0 THEN NULL ELSE ((g * 37) % 2000 - 500) / 4.0 END AS amount,
	CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 13) % 97 - 30 END AS qty,
	CASE WHEN g % 17 = 0 THEN NULL WHEN g = 34 THEN 'NaN' WHEN g = 51 THEN '-Infinity' WHEN g = 61 THEN 1.5e15
		WHEN g = 62 THEN 2.5e16 WHEN g = 63 THEN 0.0000152587890625 ELSE ((g * 29) % 400 - 100) * 0.25 END AS price,
	CASE WHEN g % 19 = 0 THEN NULL ELSE timestamp '2023-01-01' + (g * 7717 % 100000) * interval '1 minute' END AS created,
	CASE WHEN g % 23 = 0 THEN NULL ELSE timestamptz '2024-03-09 00:00:00+00' + (g * 4111 % 5000) * interval '1 minute' END AS created_tz,
	CASE WHEN g % 7 = 0 THEN NULL ELSE date '2020-02-01' + (g * 31 % 900) END AS day,
	CASE WHEN g % 9 = 0 THEN NULL ELSE md5(g::text)::uuid END AS tok,
	CASE WHEN g % 8 = 0 THEN NULL ELSE g % 3 = 0 END AS flag,
	((g * 5) % 200 - 100)::int2 AS small,
	(g % 40) * interval '1 hour' + (g % 3) * interval '1 day' - (g % 2) * interval '1 mon' AS dur,
	(ARRAY['ab', 'b', 'abc', NULL])[g % 4 + 1] AS code
FROM generate_series(1, 700) g`

type e2eStatement struct {
	sql     string
	params  []string // text parameters
	ordered bool     // the statement's order is total: compare in order
}

var e2eStatements = []e2eStatement{
	{sql: "SELECT count(*) FROM inv", ordered: true},
	{sql: "SELECT count(amount), sum(amount), min(amount), max(amount), avg(amount) FROM inv", ordered: true},
	{sql: "SELECT sum(qty), avg(qty), min(qty), max(qty), avg(small), sum(small), sum(id), avg(id) FROM inv", ordered: true},
	{sql: "SELECT avg(price), sum(price), min(price), max(price), count(price) FROM inv WHERE price > '-Infinity' AND price < 'NaN' AND id NOT IN (62, 63)", ordered: true},
	{sql: "SELECT id, price FROM inv ORDER BY price DESC, id LIMIT 10", ordered: true},
	{sql: "SELECT id, price FROM inv WHERE price > -1 ORDER BY price, id LIMIT 10", ordered: true},
	{sql: "SELECT min(price), max(price), avg(qty::float8), min(created_tz), max(tok::text), min(dur), max(code), min(flag::int) FROM inv", ordered: true},
	{sql: "SELECT count(*), sum(amount), avg(qty), max(day) FROM inv WHERE id < 0", ordered: true},
	{sql: "SELECT status, count(*), sum(amount), avg(amount) FROM inv GROUP BY status ORDER BY status NULLS FIRST", ordered: true},
	{sql: "SELECT status, count(*) AS n FROM inv GROUP BY status ORDER BY n DESC, status LIMIT 3 OFFSET 1", ordered: true},
	{sql: "SELECT customer_id % 3 AS k, sum(qty), avg(price) FROM inv WHERE price < 'NaN' AND id NOT IN (62, 63) GROUP BY 1 ORDER BY 1", ordered: true},
	{sql: "SELECT flag, count(*), min(created), max(day) FROM inv GROUP BY flag ORDER BY flag", ordered: true},
	{sql: "SELECT status, avg(amount) FROM inv GROUP BY status ORDER BY avg(amount) DESC NULLS LAST, status", ordered: true},
	{sql: "SELECT date_trunc('month', created) AS m, count(*), sum(price) FROM inv WHERE price < 'NaN' AND id NOT IN (62, 63) GROUP BY 1 ORDER BY 1 NULLS FIRST", ordered: true},
	{sql: "SELECT code, count(*) FROM inv GROUP BY code", ordered: false},
	{sql: "SELECT id, qty FROM inv ORDER BY qty DESC NULLS FIRST, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT id, status FROM inv ORDER BY status, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT id, created FROM inv ORDER BY created, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT id, created_tz FROM inv ORDER BY created_tz DESC NULLS LAST, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT id, amount FROM inv ORDER BY amount DESC NULLS FIRST, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT id, tok FROM inv ORDER BY tok, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT id FROM inv ORDER BY day DESC, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT * FROM inv ORDER BY price, id LIMIT 50 OFFSET 20", ordered: true},
	{sql: "SELECT id, dur FROM inv ORDER BY dur, id LIMIT 60", ordered: true},
	{sql: "SELECT id, code, small FROM inv ORDER BY code DESC, small, id LIMIT 40 OFFSET 5", ordered: true},
	{sql: "SELECT DISTINCT status FROM inv ORDER BY status", ordered: true},
	{sql: "SELECT DISTINCT amount FROM inv ORDER BY amount LIMIT 30 OFFSET 10", ordered: true},
	{sql: "SELECT id, customer_id FROM inv WHERE qty > $1 ORDER BY id LIMIT $2 OFFSET $3", params: []string{"10", "25", "7"}, ordered: true},
	{sql: "SELECT id FROM inv ORDER BY id OFFSET $1", params: []string{"650"}, ordered: true},
	{sql: "SELECT id, status FROM inv WHERE qty > 10", ordered: false},
	{sql: "SELECT a.id, b.id FROM inv a LEFT JOIN inv b ON b.customer_id = a.customer_id AND b.id = a.id + 53 ORDER BY a.id LIMIT 100 OFFSET 600", ordered: true},
	{sql: "SELECT count(*), count(b.id) FROM inv a FULL JOIN inv b ON b.customer_id = a.customer_id AND b.id = a.id + 53", ordered: true},
}

// e2eOwned are the shards of the four parts.
var e2eOwned = []shardmap.ShardSet{
	shardmap.Of(0, 5, 10, 15),
	shardmap.Of(1, 4, 11, 14),
	shardmap.Of(2, 7, 8, 13),
	shardmap.Of(3, 6, 9, 12),
}

// reply is a query's raw reply: a RowDescription frame and DataRow frames.
type reply struct {
	rowDesc []byte
	rows    [][]byte
}

func runQuery(ctx context.Context, conn *pgconn.PgConn, sql string, params [][]byte, paramFormats, resultFormats []int16) (*reply, error) {
	rr := conn.ExecParams(ctx, sql, params, nil, paramFormats, resultFormats)
	var rd pgproto3.RowDescription
	for _, f := range rr.FieldDescriptions() {
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{
			Name: []byte(f.Name), TableOID: f.TableOID, TableAttributeNumber: f.TableAttributeNumber,
			DataTypeOID: f.DataTypeOID, DataTypeSize: f.DataTypeSize, TypeModifier: f.TypeModifier, Format: f.Format,
		})
	}
	out := &reply{}
	var err error
	if out.rowDesc, err = rd.Encode(nil); err != nil {
		return nil, err
	}
	for rr.NextRow() {
		frame, err := (&pgproto3.DataRow{Values: rr.Values()}).Encode(nil)
		if err != nil {
			return nil, err
		}
		out.rows = append(out.rows, frame)
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", sql, err)
	}
	return out, nil
}

// frameSource yields a reply's rows.
type frameSource struct {
	rows [][]byte
	i    int
}

func (s *frameSource) Next() ([]byte, error) {
	if s.i == len(s.rows) {
		return nil, nil
	}
	s.i++
	return s.rows[s.i-1], nil
}

// describeFields prints the client-visible parts of a RowDescription (table OIDs differ
// between the databases).
func describeFields(t *testing.T, frame []byte) string {
	t.Helper()
	var rd pgproto3.RowDescription
	if err := rd.Decode(frame[5:]); err != nil {
		t.Fatalf("RowDescription: %v", err)
	}
	var b strings.Builder
	for _, f := range rd.Fields {
		fmt.Fprintf(&b, "%s:%d:%d:%d:%d ", f.Name, f.DataTypeOID, f.DataTypeSize, f.TypeModifier, f.Format)
	}
	return b.String()
}

func TestScatterEndToEnd(t *testing.T) {
	cluster := pgtest.New(t, pgtest.Options{Groups: 1})
	server := cluster.Groups[0].Writer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := pgconn.Connect(ctx, server.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	dbs := []string{"ref", "p0", "p1", "p2", "p3"}
	conns := make(map[string]*pgconn.PgConn)
	for i, db := range dbs {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+db).ReadAll(); err != nil {
			t.Fatal(err)
		}
		conn, err := pgconn.Connect(ctx, server.SuperDSN(db)+"&timezone=America/Los_Angeles")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		conns[db] = conn
		fill := "INSERT INTO inv " + e2eRows
		if i > 0 {
			// Owned shards, plus stale copies of every fifth row of the others.
			fill = fmt.Sprintf("INSERT INTO inv SELECT * FROM (%s) s WHERE ((customer_id %% 16) + 16) %% 16 = ANY('%s'::int[]) OR id %% 5 = 0",
				e2eRows, e2eOwned[i-1])
		}
		if _, err := conn.Exec(ctx, e2eSchema+";"+fill).ReadAll(); err != nil {
			t.Fatalf("%s: %v", db, err)
		}
	}
	m := &shardmap.Map{Tables: map[string]string{"inv": "customer_id"}}

	for _, st := range e2eStatements {
		for _, format := range []int16{0, 1} {
			name := fmt.Sprintf("%s/format%d", st.sql, format)
			resultFormats := []int16{format}
			var params [][]byte
			for _, p := range st.params {
				params = append(params, []byte(p))
			}
			want, err := runQuery(ctx, conns["ref"], st.sql, params, nil, resultFormats)
			if err != nil {
				t.Fatalf("%s: ref: %v", name, err)
			}
			spec, err := router.PlanScatterSQL(st.sql, m)
			if err != nil {
				t.Fatalf("%s: plan: %v", name, err)
			}
			var parts []*reply
			for i, owned := range e2eOwned {
				sql, err := router.ScatterSQL(st.sql, owned, m)
				if err != nil {
					t.Fatalf("%s: rewrite: %v", name, err)
				}
				r, err := runQuery(ctx, conns[dbs[i+1]], sql, params, nil, merge.BackendResultFormats(spec, resultFormats))
				if err != nil {
					t.Fatalf("%s: part %d: %v\n%s", name, i, err, sql)
				}
				parts = append(parts, r)
			}
			got := mergeParts(t, name, spec, params, resultFormats, parts)
			if w, g := describeFields(t, want.rowDesc), describeFields(t, got.rowDesc); w != g {
				t.Errorf("%s: RowDescription\n got %s\nwant %s", name, g, w)
			}
			wantRows, gotRows := hexRows(want.rows), hexRows(got.rows)
			if !st.ordered {
				slices.Sort(wantRows)
				slices.Sort(gotRows)
			}
			if !slices.Equal(gotRows, wantRows) {
				t.Errorf("%s: %d rows, want %d\n got %.600q\nwant %.600q", name, len(gotRows), len(wantRows), gotRows, wantRows)
			}
			if len(want.rows) == 0 && !strings.Contains(st.sql, "OFFSET $1") {
				t.Errorf("%s: the reference returned no rows; the statement tests nothing", name)
			}
		}
	}

	// Binary parameters (int4 for qty, int8 for LIMIT/OFFSET) bind the same way.
	sql := "SELECT id, customer_id FROM inv WHERE qty > $1 ORDER BY id LIMIT $2 OFFSET $3"
	params := [][]byte{binary.BigEndian.AppendUint32(nil, 10), binary.BigEndian.AppendUint64(nil, 25), binary.BigEndian.AppendUint64(nil, 7)}
	want, err := runQuery(ctx, conns["ref"], sql, params, []int16{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := router.PlanScatterSQL(sql, m)
	if err != nil {
		t.Fatal(err)
	}
	var parts []*reply
	for i, owned := range e2eOwned {
		psql, err := router.ScatterSQL(sql, owned, m)
		if err != nil {
			t.Fatal(err)
		}
		r, err := runQuery(ctx, conns[dbs[i+1]], psql, params, []int16{1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, r)
	}
	limit, err := merge.ResolveLimit(spec.Limit, false, params, []int16{1})
	if err != nil || limit != 25 {
		t.Fatalf("binary LIMIT parameter: %d %v", limit, err)
	}
	got := mergePartsResolved(t, sql, spec, limit, 7, nil, parts)
	if w, g := hexRows(want.rows), hexRows(got.rows); !slices.Equal(w, g) || len(w) != 25 {
		t.Errorf("binary parameters: got %q, want %q", g, w)
	}
}

func mergeParts(t *testing.T, name string, spec *router.MergeSpec, params [][]byte, formats []int16, parts []*reply) *reply {
	t.Helper()
	limit, err := merge.ResolveLimit(spec.Limit, false, params, nil)
	if err != nil {
		t.Fatalf("%s: limit: %v", name, err)
	}
	offset, err := merge.ResolveLimit(spec.Offset, true, params, nil)
	if err != nil {
		t.Fatalf("%s: offset: %v", name, err)
	}
	return mergePartsResolved(t, name, spec, limit, offset, formats, parts)
}

func mergePartsResolved(t *testing.T, name string, spec *router.MergeSpec, limit, offset int64, formats []int16, parts []*reply) *reply {
	t.Helper()
	mg, err := merge.New(spec, limit, offset, parts[0].rowDesc, formats)
	if err != nil {
		t.Fatalf("%s: merge.New: %v", name, err)
	}
	sources := make([]merge.Source, len(parts))
	for i, p := range parts {
		sources[i] = &frameSource{rows: p.rows}
	}
	out := &reply{rowDesc: mg.RowDescription(nil)}
	n, err := mg.Run(sources, func(frame []byte) error {
		out.rows = append(out.rows, slices.Clone(frame))
		return nil
	})
	if err != nil {
		t.Fatalf("%s: merge: %v", name, err)
	}
	if n != int64(len(out.rows)) {
		t.Errorf("%s: Run reports %d rows, emitted %d", name, n, len(out.rows))
	}
	return out
}

func hexRows(rows [][]byte) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%x", r)
	}
	return out
}
