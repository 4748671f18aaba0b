package node_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/node"
)

// staleness is Δ in these tests: the bound on how long after a write's acknowledgement
// another node may still answer from before it.
const staleness = 250 * time.Millisecond

// cacheSchema is the tables the cache tests read and write: accounts (cacheable) and items
// (cacheable, co-located children removed by ON DELETE CASCADE), audit (not cacheable), and
// a trigger that writes accounts when an item is inserted.
const cacheSchema = `
CREATE TABLE accounts (customer_id bigint NOT NULL, id bigint NOT NULL, version bigint NOT NULL,
  note text, PRIMARY KEY (customer_id, id));
CREATE TABLE items (customer_id bigint NOT NULL, id bigint NOT NULL, account_id bigint NOT NULL,
  qty int NOT NULL, PRIMARY KEY (customer_id, id),
  FOREIGN KEY (customer_id, account_id) REFERENCES accounts ON DELETE CASCADE);
CREATE TABLE audit (customer_id bigint NOT NULL, id bigserial, what text, PRIMARY KEY (customer_id, id));
CREATE FUNCTION items_touch_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE accounts SET note = 'items:' || NEW.qty WHERE customer_id = NEW.customer_id AND id = NEW.account_id;
  RETURN NEW;
END $$;
CREATE TRIGGER items_touch_account AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION items_touch_account();
`

// cacheConfig is a node's configuration with the cache on accounts and items.
func cacheConfig(pg *pgtest.Cluster, redisAddr, name string) config.Config {
	cfg := baseConfig(pg, name)
	cfg.Databases = []config.Database{{Name: pgtest.Database}}
	cfg.Cache.Tables = map[string]config.Duration{
		"accounts": config.Duration(time.Minute),
		"items":    config.Duration(time.Minute),
	}
	cfg.Cache.Redis.Addrs = []string{redisAddr}
	cfg.Cache.Staleness = config.Duration(staleness)
	cfg.Cache.Timeout = config.Duration(500 * time.Millisecond)
	cfg.Cache.ChangeFeedUser = pgtest.SuperUser
	return cfg
}

type cacheCluster struct {
	pg    *pgtest.Cluster
	redis *pgtest.Redis
	nodes []*testNode
}

// startCacheCluster starts Postgres (two groups, a replica each), Redis, and three nodes
// with the cache on, and creates the schema through the first node.
func startCacheCluster(t *testing.T) *cacheCluster {
	t.Helper()
	pg := pgtest.New(t, pgtest.Options{Groups: 2, Replicas: 1})
	redis := pgtest.NewRedis(t)
	cc := &cacheCluster{pg: pg, redis: redis}
	var seeds []string
	for _, name := range []string{"a", "b", "c"} {
		cfg := cacheConfig(pg, redis.Addr(), name)
		cfg.Cluster.Seeds = seeds
		n := startNode(t, cfg, node.Options{})
		seeds = append(seeds, n.gossipAddr())
		cc.nodes = append(cc.nodes, n)
	}
	ctx := context.Background()
	conn := pgtest.Connect(t, cc.nodes[0].dsn())
	for _, stmt := range splitStatements(cacheSchema) {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("schema: %s: %v", stmt, err)
		}
	}
	// Every node's change feed has a slot before the tests write behind the proxy's back.
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range cc.nodes {
				for _, e := range n.logs.All() {
					if e.LoggerName != "" && (strings.Contains(e.LoggerName, "cache") || e.Level >= zap.WarnLevel) {
						t.Logf("%s %s %s: %s %v", n.name, e.Level, e.LoggerName, e.Message, e.ContextMap())
					}
				}
			}
		}
	})
	// A direct write on each writer reaches its change feed (one node streams each group).
	for i, g := range pg.Groups {
		w := pgtest.Connect(t, g.Writer.AppDSN())
		feedTxns := func() float64 {
			sum := 0.0
			for _, n := range cc.nodes {
				sum += counter(t, n, "shardwire_cache_feed_transactions_total", map[string]string{"group": g.Name})
			}
			return sum
		}
		// Customer 1000+i%16... any customer: the row only proves the feed streams.
		waitFor(t, 30*time.Second, "the change feed of "+g.Name+" to stream", func() bool {
			if _, err := w.Exec(ctx, "INSERT INTO accounts VALUES ($1, 0, 0, 'feed probe') ON CONFLICT DO NOTHING", 100000+i); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Exec(ctx, "UPDATE accounts SET version = version + 1 WHERE customer_id = $1 AND id = 0", 100000+i); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			return feedTxns() > 0
		})
	}
	return cc
}

// splitStatements splits the schema at the blank-line-free top-level semicolons that end
// its statements (the function body's are inside $$).
func splitStatements(sql string) []string {
	var out []string
	start, inBody := 0, false
	for i := 0; i < len(sql); i++ {
		switch {
		case i+1 < len(sql) && sql[i] == '$' && sql[i+1] == '$':
			inBody = !inBody
			i++
		case sql[i] == ';' && !inBody:
			out = append(out, sql[start:i])
			start = i + 1
		}
	}
	return out
}

func cacheHits(t *testing.T, n *testNode) float64 {
	return counter(t, n, "shardwire_cache_hits_total", map[string]string{"layer": "l1"}) +
		counter(t, n, "shardwire_cache_hits_total", map[string]string{"layer": "l2"})
}

func TestCache(t *testing.T) {
	cc := startCacheCluster(t)
	ctx := context.Background()
	a := cc.nodes[0]
	conn := pgtest.Connect(t, a.dsn())
	for c := int64(1); c <= 40; c++ {
		if _, err := conn.Exec(ctx, "INSERT INTO accounts (customer_id, id, version, note) VALUES ($1, 1, 0, 'n')", c); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("hits replay the backend's reply exactly", func(t *testing.T) { testCacheIdentity(t, cc) })
	t.Run("exclusions are never served from the cache", func(t *testing.T) { testCacheExclusions(t, cc) })
	t.Run("history", func(t *testing.T) { testCacheHistory(t, cc, 1, 10, true, nil) })
	t.Run("history with a delayed replica", func(t *testing.T) {
		rep := pgtest.Connect(t, cc.pg.Groups[0].Replicas[0].SuperDSN("postgres"))
		setDelay := func(d string) {
			if _, err := rep.Exec(ctx, "ALTER SYSTEM SET recovery_min_apply_delay = '"+d+"'"); err != nil {
				t.Fatal(err)
			}
			if _, err := rep.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
				t.Fatal(err)
			}
		}
		setDelay("300ms")
		defer setDelay("0")
		testCacheHistory(t, cc, 11, 20, true, nil)
	})
	t.Run("history with Redis killed and restarted", func(t *testing.T) {
		// Monotonic reads are not asserted across a Redis restart: a session that read a
		// committed write on the writer while Redis was down can, once cached reads resume,
		// be served an entry from before it while that write's generation bump is still in
		// flight (docs/cache.md, "Guarantees"). Read-your-writes and the staleness bound are.
		testCacheHistory(t, cc, 21, 30, false, func() {
			if err := cc.redis.Kill(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond) // the outage the readers and writers run through
			if err := cc.redis.Start(ctx); err != nil {
				t.Fatal(err)
			}
		})
		waitFor(t, 5*time.Second, "every node to use Redis again", func() bool {
			for _, n := range cc.nodes {
				if counter(t, n, "shardwire_cache_redis_up", nil) != 1 {
					return false
				}
			}
			return true
		})
	})
	t.Run("writes that bypass the proxy", func(t *testing.T) { testCacheBypassingWrites(t, cc) })
	t.Run("a paused fill never serves the old value under the new generation", func(t *testing.T) { testCachePausedFill(t, cc) })
	t.Run("admin API: status and flush", func(t *testing.T) { testCacheAdmin(t, cc) })
}

func testCacheAdmin(t *testing.T, cc *cacheCluster) {
	ctx := context.Background()
	a, b := cc.nodes[0], cc.nodes[1]
	var st admin.CacheStatus
	if err := apiCall(ctx, b.admin, http.MethodGet, admin.PathCache, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Node != "b" || !st.Enabled || !st.Usable || !st.RedisUp || st.Entries == 0 || len(st.Layers) != 2 ||
		st.Tables["accounts"] != "1m0s" || st.HitRate <= 0 {
		t.Fatalf("GET %s on b = %+v", admin.PathCache, st)
	}
	const sql = "SELECT version::text FROM accounts WHERE customer_id = 7 AND id = 1"
	warm(t, cc, sql)
	for _, req := range []admin.CacheFlushRequest{{Table: "accounts"}, {Customer: ptr(int64(7))}, {}} {
		// Flushed through a, the entry is gone on b too: b's next read misses.
		var res admin.CacheFlushResult
		if err := apiCall(ctx, a.admin, http.MethodPost, admin.PathCacheFlush, req, &res); err != nil {
			t.Fatal(err)
		}
		if res.Generations == 0 {
			t.Fatalf("flush %+v bumped nothing: %+v", req, res)
		}
		time.Sleep(staleness) // b's memory of the generations: pub/sub or expiry
		c := pgtest.Connect(t, b.dsn())
		misses := counter(t, b, "shardwire_cache_misses_total", nil)
		var v string
		if err := c.QueryRow(ctx, sql).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if counter(t, b, "shardwire_cache_misses_total", nil) != misses+1 {
			t.Fatalf("after flush %+v (%s), b's read was not a miss", req, res.Scope)
		}
		warm(t, cc, sql)
	}
	var apiErr *admin.APIError
	err := apiCall(ctx, a.admin, http.MethodPost, admin.PathCacheFlush, admin.CacheFlushRequest{Table: "audit"}, &struct{}{})
	if !errors.As(err, &apiErr) || apiErr.Code != admin.CodeInvalid {
		t.Fatalf("flush of a table that is not cacheable: %v, want %s", err, admin.CodeInvalid)
	}
}

func ptr[T any](v T) *T { return &v }

// readRaw runs sql with args through conn in the extended protocol with the given result
// format and returns the field descriptions, the raw row values and the command tag: what
// the client receives, byte for byte.
func readRaw(t *testing.T, conn *pgconn.PgConn, sql string, format int16, args ...[]byte) ([]pgconn.FieldDescription, [][][]byte, string) {
	t.Helper()
	rr := conn.ExecParams(context.Background(), sql, args, nil, nil, []int16{format})
	var rows [][][]byte
	for rr.NextRow() {
		var row [][]byte
		for _, v := range rr.Values() {
			row = append(row, slices.Clone(v))
		}
		rows = append(rows, row)
	}
	fields := slices.Clone(rr.FieldDescriptions())
	tag, err := rr.Close()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return fields, rows, tag.String()
}

func testCacheIdentity(t *testing.T, cc *cacheCluster) {
	ctx := context.Background()
	a := cc.nodes[0]
	direct := pgtest.Connect(t, cc.pg.Groups[0].Writer.AppDSN())
	conn := pgtest.Connect(t, a.dsn())
	const q = "SELECT customer_id, id, version, note, version::numeric / 3 AS third, ARRAY[id, version] AS arr FROM accounts WHERE customer_id = $1"
	for _, format := range []int16{0, 1} {
		// Customer 16 lives in shard 0 (group g0): the direct connection reads the same rows.
		wantF, wantRows, wantTag := readRaw(t, direct.PgConn(), q, format, []byte("16"))
		before := cacheHits(t, a)
		for i := range 3 {
			f, rows, tag := readRaw(t, conn.PgConn(), q, format, []byte("16"))
			if fmt.Sprint(f) != fmt.Sprint(wantF) || fmt.Sprint(rows) != fmt.Sprint(wantRows) || tag != wantTag {
				t.Fatalf("format %d, read %d: got %v %v %q, want %v %v %q", format, i, f, rows, tag, wantF, wantRows, wantTag)
			}
		}
		if got := cacheHits(t, a) - before; got < 2 {
			t.Fatalf("format %d: %v cache hits for three equal reads, want at least 2", format, got)
		}
	}
	// The simple protocol and an empty result.
	for _, sql := range []string{"SELECT version, note FROM accounts WHERE customer_id = 16", "SELECT version FROM accounts WHERE customer_id = 999999"} {
		want, err := direct.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		before := cacheHits(t, a)
		for range 3 {
			got, err := conn.PgConn().Exec(ctx, sql).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got[0].FieldDescriptions, got[0].Rows, got[0].CommandTag.String()) !=
				fmt.Sprint(want[0].FieldDescriptions, want[0].Rows, want[0].CommandTag.String()) {
				t.Fatalf("%s: got %v, want %v", sql, got[0], want[0])
			}
		}
		if got := cacheHits(t, a) - before; got < 2 {
			t.Fatalf("%s: %v cache hits for three equal reads, want at least 2", sql, got)
		}
	}
}

func testCacheExclusions(t *testing.T, cc *cacheCluster) {
	ctx := context.Background()
	a := cc.nodes[0]
	conn := pgtest.Connect(t, a.dsn())
	cases := []struct {
		name, reason string
		run          func() error
	}{
		{"volatile function", "function", func() error {
			_, err := conn.Exec(ctx, "SELECT version, random() FROM accounts WHERE customer_id = 2")
			return err
		}},
		{"stable function", "function", func() error {
			_, err := conn.Exec(ctx, "SELECT version, now() FROM accounts WHERE customer_id = 2")
			return err
		}},
		{"current_user", "function", func() error {
			_, err := conn.Exec(ctx, "SELECT version, current_user FROM accounts WHERE customer_id = 2")
			return err
		}},
		{"locking clause", "locking", func() error {
			_, err := conn.Exec(ctx, "SELECT version FROM accounts WHERE customer_id = 2 FOR SHARE")
			return err
		}},
		{"catalog", "system_table", func() error {
			_, err := conn.Exec(ctx, "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'accounts'")
			return err
		}},
		{"nocache hint", "hint", func() error {
			_, err := conn.Exec(ctx, "SELECT /* nocache */ version FROM accounts WHERE customer_id = 2")
			return err
		}},
		{"table not cacheable", "table", func() error {
			_, err := conn.Exec(ctx, "SELECT count(*) FROM audit WHERE customer_id = 2")
			return err
		}},
		{"explicit transaction", "transaction", func() error {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			_, err = tx.Exec(ctx, "SELECT version FROM accounts WHERE customer_id = 2")
			return err
		}},
		{"strong consistency", "strong", func() error {
			c := pgtest.Connect(t, a.dsn())
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, "SET shardwire.consistency = 'strong'"); err != nil {
				return err
			}
			_, err := c.Exec(ctx, "SELECT version FROM accounts WHERE customer_id = 2")
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hits := cacheHits(t, a)
			bypass := counter(t, a, "shardwire_cache_bypass_total", map[string]string{"reason": tc.reason})
			for range 3 {
				if err := tc.run(); err != nil {
					t.Fatal(err)
				}
			}
			if got := cacheHits(t, a) - hits; got != 0 {
				t.Errorf("%v cache hits, want none", got)
			}
			if got := counter(t, a, "shardwire_cache_bypass_total", map[string]string{"reason": tc.reason}) - bypass; got < 3 {
				t.Errorf("bypass{reason=%q} grew by %v, want at least 3", tc.reason, got)
			}
		})
	}
}

// observation is one read of a customer's version.
type observation struct {
	start, end time.Time
	value      int64
}

// ack is one acknowledged write.
type ack struct {
	at    time.Time
	value int64
}

// testCacheHistory runs writers through node a and readers on every node for customers
// first..last, then checks the history: each session reads its own writes and (with
// monotonic) never goes backwards, and no read returns a value older than the newest one acknowledged more than Δ
// before it started. disturb, when set, runs once midway.
func testCacheHistory(t *testing.T, cc *cacheCluster, first, last int64, monotonic bool, disturb func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	acks := make(map[int64][]ack)           // customer → writes in order
	reads := make(map[string][]observation) // reader session → reads
	readCustomer := make(map[string]int64)  // reader session → its customer
	var ownViolations atomic.Int64          // writer sessions that missed their own write
	const q = "SELECT version FROM accounts WHERE customer_id = $1 AND id = 1"
	var wg sync.WaitGroup
	for c := first; c <= last; c++ {
		wg.Add(1)
		go func() { // the writer of customer c, on node a
			defer wg.Done()
			conn := pgtest.Connect(t, cc.nodes[0].dsn())
			defer conn.Close(context.Background())
			var base int64
			if err := conn.QueryRow(ctx, q, c).Scan(&base); err != nil {
				return
			}
			for v := base + 1; ctx.Err() == nil; v++ {
				if _, err := conn.Exec(ctx, "UPDATE accounts SET version = $2 WHERE customer_id = $1 AND id = 1", c, v); err != nil {
					return
				}
				at := time.Now()
				mu.Lock()
				acks[c] = append(acks[c], ack{at: at, value: v})
				mu.Unlock()
				var got int64
				if err := conn.QueryRow(ctx, q, c).Scan(&got); err != nil {
					return
				}
				if got < v {
					ownViolations.Add(1)
					t.Errorf("customer %d: the writing session read version %d right after writing %d", c, got, v)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		for _, n := range cc.nodes {
			wg.Add(1)
			session := fmt.Sprintf("%s/%d", n.name, c)
			readCustomer[session] = c
			go func() { // a reader of customer c on node n
				defer wg.Done()
				conn := pgtest.Connect(t, n.dsn())
				defer conn.Close(context.Background())
				for ctx.Err() == nil {
					start := time.Now()
					var v int64
					if err := conn.QueryRow(ctx, q, c).Scan(&v); err != nil {
						if ctx.Err() == nil {
							t.Errorf("%s: read: %v", session, err)
						}
						return
					}
					mu.Lock()
					reads[session] = append(reads[session], observation{start: start, end: time.Now(), value: v})
					mu.Unlock()
				}
			}()
		}
	}
	if disturb != nil {
		time.Sleep(time.Second)
		disturb()
	}
	wg.Wait()

	var lags []time.Duration
	total := 0
	for session, obs := range reads {
		c := readCustomer[session]
		w := acks[c]
		total += len(obs)
		for i, o := range obs {
			if i > 0 && o.value < obs[i-1].value {
				if monotonic {
					t.Errorf("%s: read %d after %d (monotonic reads broken)", session, o.value, obs[i-1].value)
				} else {
					t.Logf("%s: read %d after %d (monotonic reads are not promised across a Redis restart)", session, o.value, obs[i-1].value)
				}
			}
			// The newest value acknowledged more than Δ before this read started.
			j := sort.Search(len(w), func(k int) bool { return !w[k].at.Before(o.start.Add(-staleness)) })
			if j > 0 && o.value < w[j-1].value {
				t.Errorf("%s: read at %s returned %d, but %d was acknowledged %s before it started",
					session, o.start.Format("15:04:05.000"), o.value, w[j-1].value, o.start.Sub(w[j-1].at))
			}
		}
		// Invalidation lag: for each write, how long until this session first read it.
		for _, a := range w {
			k := sort.Search(len(obs), func(k int) bool { return obs[k].start.After(a.at) && obs[k].value >= a.value })
			for k < len(obs) && obs[k].value < a.value {
				k++
			}
			if k < len(obs) {
				lags = append(lags, obs[k].end.Sub(a.at))
			}
		}
	}
	if total < 100 {
		t.Fatalf("only %d reads recorded", total)
	}
	slices.Sort(lags)
	if len(lags) > 0 {
		t.Logf("%d reads, %d writes observed; visibility lag p50 %s p99 %s max %s", total, len(lags),
			lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
	}
}

// visibleEverywhere waits until every node returns want for sql.
func visibleEverywhere(t *testing.T, cc *cacheCluster, within time.Duration, sql string, want string) time.Duration {
	t.Helper()
	conns := make([]*pgx.Conn, len(cc.nodes))
	for i, n := range cc.nodes {
		conns[i] = pgtest.Connect(t, n.dsn())
	}
	return waitFor(t, within, fmt.Sprintf("every node to answer %q with %s", sql, want), func() bool {
		for _, c := range conns {
			var got string
			if err := c.QueryRow(context.Background(), sql).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				return false
			}
		}
		return true
	})
}

// warm reads sql on every node until each serves it from its cache.
func warm(t *testing.T, cc *cacheCluster, sql string) {
	t.Helper()
	for _, n := range cc.nodes {
		c := pgtest.Connect(t, n.dsn())
		waitFor(t, 5*time.Second, n.name+" to serve "+sql+" from its cache", func() bool {
			before := cacheHits(t, n)
			var s string
			if err := c.QueryRow(context.Background(), sql).Scan(&s); err != nil {
				t.Fatal(err)
			}
			return cacheHits(t, n) > before
		})
	}
}

func testCacheBypassingWrites(t *testing.T, cc *cacheCluster) {
	ctx := context.Background()
	// Customer 33 is shard 1: group g0 (shards split evenly over two groups).
	writer := pgtest.Connect(t, cc.pg.Groups[0].Writer.AppDSN())
	bound := staleness + time.Second

	t.Run("direct write on the writer", func(t *testing.T) {
		const sql = "SELECT note FROM accounts WHERE customer_id = 33 AND id = 1"
		warm(t, cc, sql)
		if _, err := writer.Exec(ctx, "UPDATE accounts SET note = 'direct' WHERE customer_id = 33 AND id = 1"); err != nil {
			t.Fatal(err)
		}
		took := visibleEverywhere(t, cc, bound, sql, "direct")
		t.Logf("visible on every node after %s", took)
	})
	t.Run("trigger", func(t *testing.T) {
		const sql = "SELECT note FROM accounts WHERE customer_id = 33 AND id = 1"
		warm(t, cc, sql)
		// Through the proxy, into items: the trigger's write to accounts is the proxy's blind spot.
		conn := pgtest.Connect(t, cc.nodes[1].dsn())
		if _, err := conn.Exec(ctx, "INSERT INTO items (customer_id, id, account_id, qty) VALUES (33, 1, 1, 7)"); err != nil {
			t.Fatal(err)
		}
		took := visibleEverywhere(t, cc, bound, sql, "items:7")
		t.Logf("visible on every node after %s", took)
	})
	t.Run("on delete cascade", func(t *testing.T) {
		const sql = "SELECT count(*)::text FROM items WHERE customer_id = 33"
		warm(t, cc, sql)
		conn := pgtest.Connect(t, cc.nodes[2].dsn())
		if _, err := conn.Exec(ctx, "DELETE FROM accounts WHERE customer_id = 33 AND id = 1"); err != nil {
			t.Fatal(err)
		}
		took := visibleEverywhere(t, cc, bound, sql, "0")
		t.Logf("visible on every node after %s", took)
	})
}

func testCachePausedFill(t *testing.T, cc *cacheCluster) {
	ctx := context.Background()
	a, b := cc.nodes[0], cc.nodes[1]
	const marker = "/* paused-reader */"
	const sql = "SELECT version::text FROM accounts WHERE customer_id = 5 AND id = 1 " + marker
	for _, stage := range []string{"generations", "fill"} {
		t.Run(stage, func(t *testing.T) {
			writerConn := pgtest.Connect(t, b.dsn())
			// A fresh version, so that the reader below misses.
			var old int64
			if err := writerConn.QueryRow(ctx, "UPDATE accounts SET version = version + 1 WHERE customer_id = 5 AND id = 1 RETURNING version").Scan(&old); err != nil {
				t.Fatal(err)
			}
			time.Sleep(staleness) // a's memory of the generations has caught up, by pub/sub or expiry
			paused, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			a.node.Proxy().SetCacheHook(func(st, q string) {
				if st == stage && q == sql {
					once.Do(func() {
						close(paused)
						<-release
					})
				}
			})
			defer a.node.Proxy().SetCacheHook(nil)
			readerConn := pgtest.Connect(t, a.dsn())
			got := make(chan string, 1)
			go func() {
				var v string
				if err := readerConn.QueryRow(ctx, sql).Scan(&v); err != nil {
					t.Error(err)
				}
				got <- v
			}()
			select {
			case <-paused:
			case v := <-got:
				t.Fatalf("the read (%s) never reached the %s stage of a miss", v, stage)
			case <-time.After(10 * time.Second):
				t.Fatalf("the read never reached the %s stage of a miss", stage)
			}
			newVersion := old + 1000
			if _, err := writerConn.Exec(ctx, "UPDATE accounts SET version = $1 WHERE customer_id = 5 AND id = 1", newVersion); err != nil {
				t.Fatal(err)
			}
			acked := time.Now()
			close(release)
			first := <-got
			if first != fmt.Sprint(old) && first != fmt.Sprint(newVersion) {
				t.Fatalf("paused read returned %s, want %d or %d", first, old, newVersion)
			}
			// From Δ after the acknowledgement on, every node and session sees the new value,
			// however often it asks (the paused fill must not have put the old value under
			// the new generation).
			time.Sleep(time.Until(acked.Add(staleness)))
			for _, n := range cc.nodes {
				c := pgtest.Connect(t, n.dsn())
				for range 5 {
					var v string
					if err := c.QueryRow(ctx, sql).Scan(&v); err != nil {
						t.Fatal(err)
					}
					if v != fmt.Sprint(newVersion) {
						t.Fatalf("%s read %s after the write of %d was acknowledged (paused reader at %q)", n.name, v, newVersion, stage)
					}
				}
			}
		})
	}
}
