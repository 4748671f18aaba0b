package proxy

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/lib/pq"

	"github.com/shardwire/shardwire/config"
)

// The driver suites below run the same operations direct and through the proxy and compare
// what the application sees (acceptance point 3 of issue 2). Each suite returns a transcript:
// one line per observable result, with the run's table suffix stripped, so that a direct run
// and a proxied run must produce identical slices. Timing assertions (cancel latency) are made
// on the side with t.Errorf, never through the transcript.

// driverProxyRuns is how many copies of a suite run at once through the proxy; with a pool of
// driverPoolSize backends they must share, so every transaction may land on another backend.
const (
	driverProxyRuns = 3
	driverPoolSize  = 3
)

// driverSuite runs one driver's operations against dsn with tables suffixed by sfx.
type driverSuite func(t *testing.T, dsn, sfx string) []string

func TestDriverPgx(t *testing.T) { runDriverSuite(t, pgxSuite) }

func TestDriverLibPQ(t *testing.T) { runDriverSuite(t, pqSuite) }

// runDriverSuite runs suite direct once, then driverProxyRuns times concurrently through a
// proxy with a small transaction pool, and requires every proxied transcript to equal the
// direct one.
func runDriverSuite(t *testing.T, suite driverSuite) {
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = driverPoolSize })
	want := suite(t, p.directDSN(), "_drv_direct")
	if t.Failed() {
		t.FailNow()
	}
	got := make([][]string, driverProxyRuns)
	var wg sync.WaitGroup
	for i := range driverProxyRuns {
		wg.Go(func() { got[i] = suite(t, p.dsn(""), fmt.Sprintf("_drv_proxy%d", i)) })
	}
	wg.Wait()
	for i, g := range got {
		if d := transcriptDiff(want, g); d != "" {
			t.Errorf("proxy run %d differs from direct (-direct +proxy):\n%s", i, d)
		}
	}
	if testing.Verbose() {
		t.Logf("direct transcript:\n%s", strings.Join(want, "\n"))
	}
}

// transcript collects result lines; safe for concurrent use.
type transcript struct {
	mu    sync.Mutex
	sfx   string
	lines []string
}

func (tr *transcript) add(format string, args ...any) {
	s := strings.ReplaceAll(fmt.Sprintf(format, args...), tr.sfx, "")
	tr.mu.Lock()
	tr.lines = append(tr.lines, s)
	tr.mu.Unlock()
}

// transcriptDiff returns "" when a and b are equal, else a line diff (longest common
// subsequence) with "-" for lines only in a and "+" for lines only in b.
func transcriptDiff(a, b []string) string {
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	same := true
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			fmt.Fprintf(&sb, "  %s\n", a[i])
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&sb, "+ %s\n", b[j])
			j, same = j+1, false
		default:
			fmt.Fprintf(&sb, "- %s\n", a[i])
			i, same = i+1, false
		}
	}
	if same {
		return ""
	}
	return sb.String()
}

// errText describes an error the way the application sees it: SQLSTATE and message for a
// server error, else the error text, or "ok".
func errText(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "ERROR " + pe.Code + " " + pe.Message
	}
	var qe *pq.Error
	if errors.As(err, &qe) {
		return "ERROR " + string(qe.Code) + " " + qe.Message
	}
	return "go error: " + err.Error()
}

// fmtValue prints a scanned value in a form that does not depend on time zone or on the
// wire format.
func fmtValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return strconv.Quote(x)
	case []byte:
		return `\x` + hex.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case pgtype.Numeric:
		if !x.Valid {
			return "NULL"
		}
		dv, err := x.Value()
		if err != nil {
			return "numeric error: " + err.Error()
		}
		return fmt.Sprintf("numeric(%v)", dv)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmtValue(e)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case sql.NullString:
		if !x.Valid {
			return "NULL"
		}
		return strconv.Quote(x.String)
	case sql.NullInt64:
		if !x.Valid {
			return "NULL"
		}
		return fmt.Sprint(x.Int64)
	}
	return fmt.Sprintf("%v", v)
}

// pgxRows reads all rows of a pgx query into one transcript line.
func pgxRows(rows pgx.Rows, err error) string {
	if err != nil {
		return errText(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return errText(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmtValue(v)
		}
		out = append(out, "["+strings.Join(parts, " ")+"]")
	}
	if err := rows.Err(); err != nil {
		return strings.Join(out, " ") + " " + errText(err)
	}
	return strings.Join(out, " ")
}

// pgxSuite is the pgx/v5 suite: 8 shared connections, statement cache and named prepared statements in
// transactions, CopyFrom, batches, a multi-Sync pipeline, sticky SET, cancel, an aborted
// transaction and type round-trips in text and binary.
func pgxSuite(t *testing.T, dsn, sfx string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := &transcript{sfx: sfx}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Error(err)
		return nil
	}
	// Cancel through a CancelRequest (pgx's default only sets a socket deadline, which
	// closes the connection instead of cancelling the query).
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	pool, err := newPgxConns(ctx, cfg, 8)
	if err != nil {
		t.Errorf("%s: pool: %v", sfx, err)
		return nil
	}
	defer pool.close()
	tbl := "items" + sfx
	exec := func(label, q string, args ...any) {
		var tag pgconn.CommandTag
		var err error
		pool.with(func(c *pgx.Conn) { tag, err = c.Exec(ctx, q, args...) })
		if err != nil {
			tr.add("%s: %s", label, errText(err))
			return
		}
		tr.add("%s: %s", label, tag.String())
	}
	query := func(label, q string, args ...any) {
		pool.with(func(c *pgx.Conn) { tr.add("%s: %s", label, pgxRows(c.Query(ctx, q, args...))) })
	}

	exec("drop", "drop table if exists "+tbl)
	exec("create", "create table "+tbl+" (id int primary key, name text, n numeric, at timestamptz)")

	// Concurrent queries on the pool; results are recorded in submission order.
	const workers = 16
	res := make([]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			pool.with(func(c *pgx.Conn) {
				var s int64
				if err := c.QueryRow(ctx, "select sum(x)::int8 from generate_series(1, $1::int) x", (i+1)*1000).Scan(&s); err != nil {
					res[i] = errText(err)
					return
				}
				res[i] = fmt.Sprint(s)
			})
			pool.with(func(c *pgx.Conn) {
				if _, err := c.Exec(ctx, "insert into "+tbl+" (id, name) values ($1, $2)", i, fmt.Sprintf("w%d", i)); err != nil {
					res[i] += " " + errText(err)
				}
			})
		})
	}
	wg.Wait()
	tr.add("concurrent: %v", res)
	query("concurrent rows", "select count(*), string_agg(name, ',' order by id) from "+tbl)
	exec("clear", "delete from "+tbl)

	// Statement cache (pgx's default mode) and an explicitly prepared name inside
	// transactions, on one connection whose transactions may each land on another backend.
	func() {
		conn := pool.acquire()
		defer pool.release(conn)
		c := conn
		for i := range 3 {
			var v int64
			err := c.QueryRow(ctx, "select $1::int8 * 2", pgx.QueryExecModeCacheStatement, i).Scan(&v)
			tr.add("cached %d: %d %s", i, v, errText(err))
		}
		sd, err := c.Prepare(ctx, "ins_item", "insert into "+tbl+" (id, name) values ($1, $2)")
		if err != nil {
			tr.add("prepare: %s", errText(err))
			return
		}
		tr.add("prepare: params %v", sd.ParamOIDs)
		for _, end := range []string{"rollback", "commit"} {
			tx, err := c.Begin(ctx)
			if err != nil {
				tr.add("begin: %s", errText(err))
				return
			}
			for i := range 3 {
				tag, err := tx.Exec(ctx, "ins_item", 100+i, end)
				tr.add("%s exec %d: %s %s", end, i, tag, errText(err))
			}
			if end == "rollback" {
				tr.add("rollback: %s", errText(tx.Rollback(ctx)))
			} else {
				tr.add("commit: %s", errText(tx.Commit(ctx)))
			}
		}
		// The prepared name must still work outside a transaction, on yet another backend.
		tag, err := c.Exec(ctx, "ins_item", 200, "after")
		tr.add("prepared after tx: %s %s", tag, errText(err))
		tr.add("deallocate: %s", errText(c.Deallocate(ctx, "ins_item")))
		_, err = c.Exec(ctx, "ins_item", 201, "gone")
		tr.add("exec deallocated: %s", pgCodeOrText(err))
	}()
	query("prepared rows", "select id, name from "+tbl+" order by id")
	exec("clear", "delete from "+tbl)

	// CopyFrom of 10,000 rows.
	rows := make([][]any, 10000)
	for i := range rows {
		rows[i] = []any{i, fmt.Sprintf("c%d", i)}
	}
	var n int64
	pool.with(func(c *pgx.Conn) {
		n, err = c.CopyFrom(ctx, pgx.Identifier{tbl}, []string{"id", "name"}, pgx.CopyFromRows(rows))
	})
	tr.add("copyfrom: %d %s", n, errText(err))
	query("copyfrom check", "select count(*), sum(id), max(name) from "+tbl)
	exec("clear", "delete from "+tbl)

	// A batch (one pipeline, one Sync) with a failing statement in the middle: Postgres runs
	// it as one implicit transaction, so the inserts before the error are rolled back too.
	func() {
		b := &pgx.Batch{}
		b.Queue("insert into "+tbl+" (id, name) values ($1, $2)", 1, "b1")
		b.Queue("select count(*) from " + tbl)
		b.Queue("insert into "+tbl+" (id, name) values ($1, $2)", 1, "dup")
		b.Queue("select 'after error'")
		conn := pool.acquire()
		defer pool.release(conn)
		br := conn.SendBatch(ctx, b)
		tag, err := br.Exec()
		tr.add("batch insert: %s %s", tag, errText(err))
		var cnt int64
		err = br.QueryRow().Scan(&cnt)
		tr.add("batch count: %d %s", cnt, errText(err))
		tag, err = br.Exec()
		tr.add("batch dup: %s %s", tag, errText(err))
		_, err = br.Exec()
		tr.add("batch after error: %s", pgCodeOrText(err))
		tr.add("batch close: %s", pgCodeOrText(br.Close()))
	}()
	query("batch kept", "select count(*) from "+tbl)
	// A batch without errors, mixing writes and reads.
	func() {
		b := &pgx.Batch{}
		for i := range 5 {
			b.Queue("insert into "+tbl+" (id, name) values ($1, $2)", i, fmt.Sprintf("b%d", i))
			b.Queue("select count(*) from " + tbl)
		}
		conn := pool.acquire()
		defer pool.release(conn)
		br := conn.SendBatch(ctx, b)
		for i := range 5 {
			tag, err := br.Exec()
			var cnt int64
			err2 := br.QueryRow().Scan(&cnt)
			tr.add("batch2 %d: %s %s count %d %s", i, tag, errText(err), cnt, errText(err2))
		}
		tr.add("batch2 close: %s", errText(br.Close()))
	}()
	query("batch2 rows", "select id, name from "+tbl+" order by id")
	exec("clear", "delete from "+tbl)

	// A raw pipeline with several Syncs: an error ends only its own Sync's segment.
	func() {
		conn := pool.acquire()
		defer pool.release(conn)
		pl := conn.PgConn().StartPipeline(ctx)
		pl.SendQueryParams("insert into "+tbl+" (id, name) values (1, 'p1')", nil, nil, nil, nil)
		pl.SendPipelineSync()
		pl.SendQueryParams("select 1/0", nil, nil, nil, nil)
		pl.SendQueryParams("select 'skipped'", nil, nil, nil, nil)
		pl.SendPipelineSync()
		pl.SendQueryParams("select count(*) from "+tbl, nil, nil, nil, nil)
		pl.SendPipelineSync()
		if err := pl.Flush(); err != nil {
			tr.add("pipeline flush: %s", errText(err))
		}
		for i := 0; i < 20; i++ {
			r, err := pl.GetResults()
			if err != nil {
				tr.add("pipeline result: %s", errText(err))
				continue
			}
			if r == nil {
				break
			}
			switch x := r.(type) {
			case *pgconn.ResultReader:
				rr := x.Read()
				var vals []string
				for _, row := range rr.Rows {
					for _, v := range row {
						vals = append(vals, string(v))
					}
				}
				tr.add("pipeline rows: %s %v %s", rr.CommandTag, vals, errText(rr.Err))
			case *pgconn.PipelineSync:
				tr.add("pipeline sync")
			default:
				tr.add("pipeline %T", r)
			}
		}
		tr.add("pipeline close: %s", errText(pl.Close()))
	}()
	query("pipeline kept", "select id, name from "+tbl+" order by id")
	exec("clear", "delete from "+tbl)

	// SET on a connection sticks across its later transactions.
	func() {
		conn := pool.acquire()
		defer pool.release(conn)
		c := conn
		for _, q := range []string{"set application_name = 'drv_app'", "set search_path = drv_none, public", "set statement_timeout = '55s'"} {
			_, err := c.Exec(ctx, q)
			tr.add("%s: %s", q, errText(err))
		}
		for i := range 4 {
			tx, err := c.Begin(ctx)
			if err != nil {
				tr.add("begin: %s", errText(err))
				return
			}
			var app, sp, st string
			err = tx.QueryRow(ctx, "select current_setting('application_name'), current_setting('search_path'), current_setting('statement_timeout')").Scan(&app, &sp, &st)
			tr.add("tx %d settings: %s %s %s %s", i, app, sp, st, errText(err))
			_, err = tx.Exec(ctx, "insert into "+tbl+" (id, name) values ($1, 's')", i)
			tr.add("tx %d insert: %s", i, errText(err))
			tr.add("tx %d commit: %s", i, errText(tx.Commit(ctx)))
			var show string
			err = c.QueryRow(ctx, "show application_name").Scan(&show)
			tr.add("show %d: %s %s", i, show, errText(err))
		}
		tr.add("param status application_name: %s", c.PgConn().ParameterStatus("application_name"))
		// RESET restores the client's own startup value (none here), not the backend's.
		for _, q := range []string{"reset application_name", "reset all"} {
			_, err = c.Exec(ctx, q)
			tr.add("%s: %s", q, errText(err))
			var app, sp string
			err = c.QueryRow(ctx, "select current_setting('application_name'), current_setting('search_path')").Scan(&app, &sp)
			tr.add("after %s: %q %q %s", q, app, sp, errText(err))
		}
	}()
	exec("clear", "delete from "+tbl)

	// Context cancel of a long query: 57014 well within a second, connection usable after.
	func() {
		conn := pool.acquire()
		defer pool.release(conn)
		c := conn
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		start := time.Now()
		_, err = c.Exec(cctx, "select pg_sleep(10)")
		took := time.Since(start)
		ccancel()
		tr.add("cancel: %s", pgCodeOrText(err))
		if took >= time.Second {
			t.Errorf("%s: cancel of pg_sleep(10) with a 300ms context took %s, want < 1s", sfx, took)
		}
		var one int
		err = c.QueryRow(ctx, "select 1").Scan(&one)
		tr.add("after cancel: %d %s", one, errText(err))
	}()

	// An error inside a transaction aborts it until ROLLBACK.
	func() {
		conn := pool.acquire()
		defer pool.release(conn)
		c := conn
		tx, err := c.Begin(ctx)
		if err != nil {
			tr.add("begin: %s", errText(err))
			return
		}
		_, err = tx.Exec(ctx, "insert into "+tbl+" (id, name) values (1, 'x')")
		tr.add("tx insert: %s", errText(err))
		_, err = tx.Exec(ctx, "select 1/0")
		tr.add("tx error: %s", errText(err))
		_, err = tx.Exec(ctx, "select 1")
		tr.add("tx after error: %s", errText(err))
		tr.add("tx rollback: %s", errText(tx.Rollback(ctx)))
		var n int64
		err = c.QueryRow(ctx, "select count(*) from "+tbl).Scan(&n)
		tr.add("after rollback: %d %s", n, errText(err))
	}()

	// Type round-trips, as parameters and as stored values, in text and binary.
	at := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.FixedZone("x", 5*3600+1800))
	params := []any{nil, []byte{0, 1, 2, 0xfe, 0xff}, "12345.678900", at, []int32{1, 2, 3}, []string{"a", "b c", `q"`}, `{"k": [1, "v", null], "a": true}`}
	exec("insert types", "insert into "+tbl+" (id, name, n, at) values (1, null, 98765432109876543210.0123456789, $1), (2, 'two', -0.5, null), (3, '', 'NaN', 'infinity')", at)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		m := modeName(mode)
		query("types params "+m, "select $1::text, $2::bytea, $3::numeric, $4::timestamptz, $5::int4[], $6::text[], $7::jsonb", append([]any{mode}, params...)...)
		query("types stored "+m, "select id, name, n, at from "+tbl+" order by id", mode)
		query("types literal "+m, `select null::int, '\xdeadbeef'::bytea, 1e-20::numeric, '2000-01-01 00:00:00+00'::timestamptz, array[[1,2],[3,4]], array[null, 'x'], '{"b": [1, 2.5, null], "a": {}}'::jsonb, 'nan'::float8, true, 'a'::"char", interval '1 day 2 hours', '10.0.0.0/8'::cidr`, mode)
	}
	exec("drop", "drop table "+tbl)
	return tr.lines
}

// pgxConns is a fixed set of pgx connections shared by goroutines, standing in for pgxpool
// (which needs github.com/jackc/puddle/v2 in go.mod). Safe for concurrent use.
type pgxConns struct {
	all  []*pgx.Conn
	idle chan *pgx.Conn
}

func newPgxConns(ctx context.Context, cfg *pgx.ConnConfig, n int) (*pgxConns, error) {
	p := &pgxConns{idle: make(chan *pgx.Conn, n)}
	for range n {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			p.close()
			return nil, err
		}
		p.all = append(p.all, c)
		p.idle <- c
	}
	return p, nil
}

func (p *pgxConns) acquire() *pgx.Conn  { return <-p.idle }
func (p *pgxConns) release(c *pgx.Conn) { p.idle <- c }

// with runs f on a connection no other goroutine uses meanwhile.
func (p *pgxConns) with(f func(*pgx.Conn)) {
	c := p.acquire()
	defer p.release(c)
	f(c)
}

func (p *pgxConns) close() {
	for _, c := range p.all {
		_ = c.Close(context.Background())
	}
}

// pgCodeOrText is errText without the message, for errors whose text names internals that
// legitimately differ (none should, but pgx adds its own context to some).
func pgCodeOrText(err error) string {
	if c := pgCode(err); c != "" {
		return "SQLSTATE " + c
	}
	if err == nil {
		return "ok"
	}
	return "go error: " + err.Error()
}

// pqSuite is the lib/pq suite through database/sql: Exec, Query, QueryRow, Prepare shared by
// goroutines, a transaction with Prepare inside, CopyIn, errors and NULLs.
func pqSuite(t *testing.T, dsn, sfx string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := &transcript{sfx: sfx}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	tbl := "pqitems" + sfx
	exec := func(label, q string, args ...any) {
		r, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			tr.add("%s: %s", label, errText(err))
			return
		}
		n, err := r.RowsAffected()
		tr.add("%s: %d rows %s", label, n, errText(err))
	}
	query := func(label, q string, args ...any) {
		tr.add("%s: %s", label, sqlRows(db.QueryContext(ctx, q, args...)))
	}

	exec("drop", "drop table if exists "+tbl)
	exec("create", "create table "+tbl+" (id int primary key, name text, qty int)")
	exec("insert", "insert into "+tbl+" values (1, 'a', 10), (2, null, null), (3, 'c', 30)")
	exec("insert param", "insert into "+tbl+" values ($1, $2, $3)", 4, nil, 40)
	query("select", "select id, name, qty from "+tbl+" order by id")
	var name sql.NullString
	var qty sql.NullInt64
	err = db.QueryRowContext(ctx, "select name, qty from "+tbl+" where id = $1", 2).Scan(&name, &qty)
	tr.add("queryrow null: %s %s %s", fmtValue(name), fmtValue(qty), errText(err))
	err = db.QueryRowContext(ctx, "select name from "+tbl+" where id = $1", 99).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		tr.add("queryrow none: sql.ErrNoRows")
	} else {
		tr.add("queryrow none: %s", errText(err))
	}
	var s string
	err = db.QueryRowContext(ctx, "select name from "+tbl+" where id = 2").Scan(&s)
	tr.add("scan null into string: %v", err != nil)

	// One prepared statement used by several goroutines (database/sql re-prepares it on each
	// of its connections, and each of those may run on any backend).
	stmt, err := db.PrepareContext(ctx, "select id, coalesce(name, '-') || $1::text from "+tbl+" where id = $2")
	if err != nil {
		tr.add("prepare: %s", errText(err))
	} else {
		const workers = 12
		res := make([]string, workers)
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				var parts []string
				for j := range 5 {
					var id int
					var v string
					err := stmt.QueryRowContext(ctx, fmt.Sprintf("/%d", i), 1+(i+j)%4).Scan(&id, &v)
					if err != nil {
						parts = append(parts, errText(err))
						continue
					}
					parts = append(parts, fmt.Sprintf("%d=%s", id, v))
				}
				res[i] = strings.Join(parts, ",")
			})
		}
		wg.Wait()
		tr.add("prepared concurrent: %v", res)
		tr.add("stmt close: %s", errText(stmt.Close()))
	}

	// A transaction with Prepare inside, once rolled back and once committed.
	for _, end := range []string{"rollback", "commit"} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			tr.add("begin: %s", errText(err))
			continue
		}
		st, err := tx.PrepareContext(ctx, "insert into "+tbl+" values ($1, $2, $3)")
		if err != nil {
			tr.add("tx prepare: %s", errText(err))
			_ = tx.Rollback()
			continue
		}
		for i := range 3 {
			r, err := st.ExecContext(ctx, 10+i, end, i)
			n := int64(-1)
			if err == nil {
				n, _ = r.RowsAffected()
			}
			tr.add("tx %s exec %d: %d %s", end, i, n, errText(err))
		}
		var cnt int
		err = tx.QueryRowContext(ctx, "select count(*) from "+tbl).Scan(&cnt)
		tr.add("tx %s count inside: %d %s", end, cnt, errText(err))
		tr.add("tx stmt close: %s", errText(st.Close()))
		if end == "rollback" {
			tr.add("tx rollback: %s", errText(tx.Rollback()))
		} else {
			tr.add("tx commit: %s", errText(tx.Commit()))
		}
		query("after "+end, "select count(*) from "+tbl)
	}

	// CopyIn inside a transaction.
	func() {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			tr.add("copy begin: %s", errText(err))
			return
		}
		st, err := tx.PrepareContext(ctx, pq.CopyIn(tbl, "id", "name", "qty"))
		if err != nil {
			tr.add("copyin prepare: %s", errText(err))
			_ = tx.Rollback()
			return
		}
		for i := range 2000 {
			var nm any = fmt.Sprintf("copy\t%d\n", i)
			if i%7 == 0 {
				nm = nil
			}
			if _, err := st.ExecContext(ctx, 1000+i, nm, i); err != nil {
				tr.add("copyin row %d: %s", i, errText(err))
				break
			}
		}
		_, err = st.ExecContext(ctx)
		tr.add("copyin flush: %s", errText(err))
		tr.add("copyin close: %s", errText(st.Close()))
		tr.add("copyin commit: %s", errText(tx.Commit()))
	}()
	query("copyin check", "select count(*), count(name), sum(qty), min(name), max(name) from "+tbl+" where id >= 1000")

	// Errors carry their SQLSTATE, and the pool stays usable after them.
	exec("dup key", "insert into "+tbl+" values (1, 'dup', 0)")
	query("bad column", "select nosuch from "+tbl)
	exec("syntax", "selec 1")
	query("div zero param", "select 1 / $1::int", 0)
	func() {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			tr.add("begin: %s", errText(err))
			return
		}
		_, err = tx.ExecContext(ctx, "select 1/0")
		tr.add("tx error: %s", errText(err))
		_, err = tx.ExecContext(ctx, "select 1")
		tr.add("tx after error: %s", errText(err))
		tr.add("tx rollback: %s", errText(tx.Rollback()))
	}()
	query("after errors", "select count(*) from "+tbl)

	// Cancel through a context: lib/pq sends its own CancelRequest.
	func() {
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer ccancel()
		start := time.Now()
		_, err := db.ExecContext(cctx, "select pg_sleep(10)")
		took := time.Since(start)
		tr.add("cancel: %v", err != nil)
		if took >= time.Second {
			t.Errorf("%s: lib/pq cancel of pg_sleep(10) with a 300ms context took %s, want < 1s", sfx, took)
		}
	}()
	query("after cancel", "select 1")

	// NULLs in every position, and a text round trip with awkward bytes.
	query("nulls", "select null::text, $1::text, $2::int, coalesce($3::text, 'dflt')", nil, nil, nil)
	query("text", "select $1::text, length($1::text), $2::bytea", "tab\tnl\nquote'\"backslash\\é", []byte{0, 0xff, '\\'})
	exec("drop", "drop table "+tbl)
	return tr.lines
}

// sqlRows reads all rows of a database/sql query into one transcript line.
func sqlRows(rows *sql.Rows, err error) string {
	if err != nil {
		return errText(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return errText(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return errText(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok && len(cols) > 0 && !isBytea(rows, i) {
				v = string(b)
			}
			parts[i] = fmtValue(v)
		}
		out = append(out, "["+strings.Join(parts, " ")+"]")
	}
	if err := rows.Err(); err != nil {
		return strings.Join(out, " ") + " " + errText(err)
	}
	return strings.Join(out, " ")
}

func isBytea(rows *sql.Rows, i int) bool {
	types, err := rows.ColumnTypes()
	return err == nil && i < len(types) && types[i].DatabaseTypeName() == "BYTEA"
}
