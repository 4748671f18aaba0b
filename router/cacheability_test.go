package router

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/shardmap"
)

// cacheTestMap is the golden files' map with functions of the database's own: tax_rate is
// immutable, risk_score stable, and upper a stable function of the database that shadows
// the built-in upper.
func cacheTestMap() *shardmap.Map {
	m := routeTestMap()
	m.ReadOnlyFunctions = map[string]bool{"tax_rate": true, "risk_score": true, "upper": true}
	m.ImmutableFunctions = map[string]bool{"tax_rate": true}
	return m
}

// keys returns the key set of vals, failing the test when it is not one.
func keys(t *testing.T, vals ...int64) KeySet {
	t.Helper()
	k, ok := NewKeySet(vals...)
	if !ok {
		t.Fatalf("NewKeySet(%v) not ok", vals)
	}
	return k
}

// checkCachePlan checks what a plan says about caching against want, and that a cold router
// plans the same.
func checkCachePlan(t *testing.T, name string, got, cold Plan, keys KeySet, reason NoCacheReason, ttl time.Duration) {
	t.Helper()
	if got.Keys != keys || got.NoCache != reason || got.CacheTTL != ttl {
		t.Errorf("%s: %s keys %v no_cache %s ttl %v; want keys %v no_cache %s ttl %v",
			name, got, got.Keys, got.NoCache, got.CacheTTL, keys, reason, ttl)
	}
	if !reflect.DeepEqual(got, cold) {
		t.Errorf("%s: warm plan %s differs from cold %s", name, got.JSON(), cold.JSON())
	}
}

// TestRouteExactKeys covers Plan.Keys for simple queries.
func TestRouteExactKeys(t *testing.T) {
	m := cacheTestMap()
	warm := New(Config{})
	none := KeySet{}
	key7 := int64(7)
	for _, tc := range []struct {
		name string
		sql  string
		sess *int64 // SET shardwire.shard_key
		want KeySet
		plan string // the plan's String, to show the keys agree with the routing
	}{
		{"equality", "SELECT * FROM invoices WHERE customer_id = 7", nil, keys(t, 7), "Read Shards{7}"},
		{"equality reversed, cast", "SELECT * FROM invoices WHERE '23'::bigint = customer_id", nil, keys(t, 23), "Read Shards{7}"},
		{"negative", "SELECT * FROM invoices WHERE customer_id = -1", nil, keys(t, -1), "Read Shards{15}"},
		{"IN, sorted", "SELECT * FROM invoices WHERE customer_id IN (17, 2, 1)", nil, keys(t, 1, 2, 17), "Read Shards{1,2}"},
		{"IN with duplicates", "SELECT * FROM invoices WHERE customer_id IN (5, 21, 5, 21, 5)", nil, keys(t, 5, 21), "Read Shards{5}"},
		{"IN of four", "SELECT * FROM invoices WHERE customer_id IN (1, 2, 3, 4)", nil, keys(t, 1, 2, 3, 4), "Read Shards{1,2,3,4}"},
		{"IN of five: too many", "SELECT * FROM invoices WHERE customer_id IN (1, 2, 3, 4, 5)", nil, none, "Read Shards{1,2,3,4,5}"},
		{"ANY of an array literal", "SELECT * FROM invoices WHERE customer_id = ANY('{3, 19, \"4\"}')", nil, keys(t, 3, 4, 19), "Read Shards{3,4}"},
		{"ANY of ARRAY[]", "SELECT * FROM invoices WHERE customer_id = ANY(ARRAY[8, 9])", nil, keys(t, 8, 9), "Read Shards{8,9}"},
		{"AND intersects", "SELECT * FROM invoices WHERE customer_id IN (1, 2, 3) AND customer_id IN (2, 3, 4)", nil, keys(t, 2, 3), "Read Shards{2,3}"},
		{"AND with a non-key predicate", "SELECT * FROM invoices WHERE status = 'open' AND customer_id = 4 AND amount > 3", nil, keys(t, 4), "Read Shards{4}"},
		{"AND: a leaf of too many values is ignored", "SELECT * FROM invoices WHERE customer_id IN (1, 2, 3, 4, 5, 6) AND customer_id = 3", nil, keys(t, 3), "Read Shards{3}"},
		{"AND: a contradiction in one shard", "SELECT * FROM invoices WHERE customer_id = 1 AND customer_id = 17", nil, none, "Read Shards{1}"},
		{"AND: a contradiction across shards", "SELECT * FROM invoices WHERE customer_id = 1 AND customer_id = 2", nil, none, "Read Shards{1,2}"},
		{"OR unites", "SELECT * FROM invoices WHERE customer_id = 1 OR customer_id = 17", nil, keys(t, 1, 17), "Read Shards{1}"},
		{"OR of AND and IN", "SELECT * FROM invoices WHERE (customer_id = 1 AND id = 3) OR customer_id IN (2, 3)", nil, keys(t, 1, 2, 3), "Read Shards{1,2,3}"},
		{"OR beyond four values", "SELECT * FROM invoices WHERE customer_id IN (1, 2) OR customer_id IN (3, 4, 5)", nil, none, "Read Shards{1,2,3,4,5}"},
		{"OR with a keyless branch scatters", "SELECT id FROM invoices WHERE customer_id = 1 OR amount > 6", nil, none, "Read Scatter"},
		{"AND with a parameter a simple query cannot know", "SELECT * FROM invoices WHERE customer_id = 6 AND customer_id = ANY($1)", nil, keys(t, 6), "Read Shards{6}"},
		{"join", "SELECT * FROM invoices i JOIN payments p ON p.customer_id = i.customer_id WHERE i.customer_id = 8", nil, none, "Read Shards{8}"},
		{"self-join", "SELECT * FROM invoices a, invoices b WHERE a.customer_id = 8 AND b.customer_id = 8", nil, none, "Read Shards{8}"},
		{"subquery in WHERE", "SELECT * FROM invoices WHERE customer_id = 9 AND id IN (SELECT 1)", nil, none, "Read Shards{9}"},
		{"EXISTS", "SELECT * FROM invoices i WHERE i.customer_id = 9 AND EXISTS (SELECT 1 FROM payments p WHERE p.customer_id = 9)", nil, none, "Read Shards{9}"},
		{"subquery in FROM", "SELECT * FROM (SELECT * FROM invoices WHERE customer_id = 6) s", nil, none, "Read Shards{6}"},
		{"CTE", "WITH x AS (SELECT * FROM invoices WHERE customer_id = 4) SELECT * FROM x", nil, none, "Read Shards{4}"},
		{"UNION", "SELECT id FROM invoices WHERE customer_id = 4 UNION SELECT 1", nil, none, "Read Shards{4}"},
		{"function in FROM", "SELECT * FROM invoices, unnest(ARRAY[1]) u WHERE customer_id = 4", nil, none, "Read Shards{4}"},
		{"scalar subquery in the select list", "SELECT (SELECT 1), id FROM invoices WHERE customer_id = 4", nil, none, "Read Shards{4}"},
		{"hint", "/* shard_key=7 */ SELECT * FROM invoices WHERE customer_id = 7", nil, none, "Read Shards{7}"},
		{"session key", "SELECT * FROM invoices WHERE customer_id = 7", &key7, none, "Read Shards{7}"},
		{"two statements", "SELECT * FROM invoices WHERE customer_id = 1; SELECT * FROM invoices WHERE customer_id = 1", nil, none, "Read Shards{1}"},
		{"unsharded table", "SELECT * FROM settings WHERE customer_id = 1", nil, none, "Read Default"},
		{"a function that may write", "SELECT archive_invoice(id) FROM invoices WHERE customer_id = 3", nil, none, "Write Shards{3}"},
		{"locking read", "SELECT * FROM invoices WHERE customer_id = 5 FOR UPDATE", nil, keys(t, 5), "Write Shards{5}"},
		{"INSERT one row", "INSERT INTO invoices (customer_id, amount) VALUES (5, 10)", nil, keys(t, 5), "Write Shards{5}"},
		{"INSERT rows", "INSERT INTO invoices (amount, customer_id) VALUES (10, 17), (11, 1), (12, 6), (13, 1)", nil, keys(t, 1, 6, 17), "Write Shards{1,6}"},
		{"INSERT rows of five customers", "INSERT INTO invoices (customer_id) VALUES (1), (2), (3), (4), (5)", nil, none, "Write Shards{1,2,3,4,5}"},
		{"INSERT without column list", "INSERT INTO customers VALUES (3, 'x')", nil, none, "Write Reject 0A000: INSERT into sharded table customers needs the shard key customer_id"},
		{"INSERT ... SELECT", "INSERT INTO invoices (customer_id, amount) SELECT customer_id, amount FROM invoices WHERE customer_id = 3", nil, none, "Write Shards{3}"},
		{"INSERT ... SELECT of a constant", "INSERT INTO invoices (customer_id, amount) SELECT 3, 1", nil, none, "Write Shards{3}"},
		{"INSERT ON CONFLICT DO NOTHING", "INSERT INTO customers (customer_id, name) VALUES (22, 'y') ON CONFLICT DO NOTHING", nil, keys(t, 22), "Write Shards{6}"},
		{"INSERT ON CONFLICT DO UPDATE", "INSERT INTO customers (customer_id, name) VALUES (22, 'y') ON CONFLICT (name) DO UPDATE SET name = 'z'", nil, none, "Write Shards{6}"},
		{"UPDATE", "UPDATE invoices SET amount = 0 WHERE customer_id IN (5, 6)", nil, keys(t, 5, 6), "Write Shards{5,6}"},
		{"UPDATE setting the key", "UPDATE invoices SET customer_id = 21 WHERE customer_id = 5", nil, none, "Write Shards{5}"},
		{"UPDATE setting the key to itself", "UPDATE invoices SET customer_id = customer_id, amount = 1 WHERE customer_id = 5", nil, keys(t, 5), "Write Shards{5}"},
		{"UPDATE ... FROM", "UPDATE invoices i SET status = 'paid' FROM payments p WHERE p.invoice_id = i.id AND i.customer_id = 5", nil, none, "Write Shards{5}"},
		{"DELETE", "DELETE FROM payments WHERE customer_id = 30 RETURNING id", nil, keys(t, 30), "Write Shards{14}"},
		{"DELETE ... USING", "DELETE FROM invoice_lines l USING invoices i WHERE l.invoice_id = i.id AND l.customer_id = 11", nil, none, "Write Shards{11}"},
	} {
		sess := Session{}
		if tc.sess != nil {
			sess = Session{ShardKey: *tc.sess, HasShardKey: true}
		}
		got := warm.Route(tc.sql, sess, m)
		if s := got.String(); s != tc.plan {
			t.Errorf("%s: plan %s, want %s", tc.name, s, tc.plan)
		}
		wantReason := got.NoCache // covered by TestRouteNoCache
		checkCachePlan(t, tc.name, got, New(Config{}).Route(tc.sql, sess, m), tc.want, wantReason, 0)
	}
}

// TestStatementExactKeys covers Plan.Keys for the extended protocol's bound parameters.
func TestStatementExactKeys(t *testing.T) {
	m := cacheTestMap()
	r := New(Config{})
	const (
		eq      = "SELECT * FROM invoices WHERE customer_id = $1"
		anyKeys = "SELECT * FROM invoices WHERE customer_id = ANY($1)"
		both    = "SELECT * FROM invoices WHERE customer_id = 5 AND customer_id = ANY($1::bigint[])"
		insert2 = "INSERT INTO invoices (customer_id, amount) VALUES ($1, $2), ($3, $4)"
		moveKey = "UPDATE invoices SET customer_id = $1 WHERE customer_id = $2"
		hinted  = "/* shard_key=9 */ SELECT * FROM invoices WHERE customer_id = $1"
	)
	none := KeySet{}
	for _, tc := range []struct {
		name   string
		sql    string
		params Params
		want   KeySet
		plan   string
	}{
		{"text", eq, textParams("123"), keys(t, 123), "Read Shards{11}"},
		{"binary int8", eq, binParam(int8Bytes(-17)), keys(t, -17), "Read Shards{15}"},
		{"binary int4", eq, binParam([]byte{0, 0, 1, 2}), keys(t, 258), "Read Shards{2}"},
		{"missing: keyless", eq, nil, none, "Read Scatter"},
		{"text array", anyKeys, textParams("{1,2,17}"), keys(t, 1, 2, 17), "Read Shards{1,2}"},
		{"text array with duplicates", anyKeys, textParams("{3,3,19,3}"), keys(t, 3, 19), "Read Shards{3}"},
		{"text array of five", anyKeys, textParams("{1,2,3,4,5}"), none, "Read Shards{1,2,3,4,5}"},
		{"binary array", anyKeys, binParam(binArray(i64(21), i64(4))), keys(t, 4, 21), "Read Shards{4,5}"},
		{"binary array of five", anyKeys, binParam(binArray(i64(1), i64(2), i64(3), i64(4), i64(5))), none, "Read Shards{1,2,3,4,5}"},
		{"literal AND array parameter", both, textParams("{5,6}"), keys(t, 5), "Read Shards{5}"},
		{"literal AND array parameter: contradiction", both, textParams("{21}"), none, "Read Shards{5}"},
		{"INSERT rows", insert2, textParams("1", "10", "2", "20"), keys(t, 1, 2), "Write Shards{1,2}"},
		{"INSERT rows of one customer", insert2, textParams("7", "10", "7", "20"), keys(t, 7), "Write Shards{7}"},
		{"UPDATE setting the key", moveKey, textParams("37", "5"), none, "Write Shards{5}"},
		{"hint", hinted, textParams("9"), none, "Read Shards{9}"},
	} {
		st := r.Prepare(tc.sql, m)
		got := st.Plan(tc.params, Session{}, m)
		if s := got.String(); s != tc.plan {
			t.Errorf("%s: plan %s, want %s", tc.name, s, tc.plan)
		}
		cold := New(Config{}).Prepare(tc.sql, m).Plan(tc.params, Session{}, m)
		checkCachePlan(t, tc.name, got, cold, tc.want, got.NoCache, 0)
	}
	// The session's key overrides a bound one.
	if p := r.Prepare(eq, m).Plan(textParams("3"), Session{ShardKey: 3, HasShardKey: true}, m); p.Keys.Exact() {
		t.Errorf("session key: keys %v, want none", p.Keys)
	}
}

// TestRouteNoCache covers Plan.NoCache and Plan.CacheTTL for simple queries and prepared
// statements.
func TestRouteNoCache(t *testing.T) {
	m := cacheTestMap()
	warm := New(Config{})
	const keyed = "SELECT * FROM invoices WHERE customer_id = 1"
	for _, tc := range []struct {
		sql  string
		want NoCacheReason
		ttl  time.Duration
	}{
		// Cacheable.
		{keyed, CacheOK, 0},
		{"SELECT count(*) FROM invoices WHERE customer_id = 1", CacheOK, 0},
		{"SELECT count(*), sum(amount), avg(amount), min(id), max(id) FROM invoices", CacheOK, 0},
		{"SELECT lower(status), abs(-1) IS NULL FROM invoices WHERE customer_id = 1", CacheOK, 0},
		{"SELECT pg_catalog.upper(status) FROM invoices WHERE customer_id = 1", CacheOK, 0},
		{"SELECT coalesce(amount, 0), nullif(status, ''), greatest(1, 2), abs(amount), round(amount, 2) FROM invoices WHERE customer_id = 1", CacheOK, 0},
		{"SELECT amount::text, CAST(id AS int), id::numeric * 2 || 'x', created_at::date FROM invoices WHERE customer_id = 1", CacheOK, 0},
		{"SELECT status, count(*) FROM invoices GROUP BY status ORDER BY 2 DESC LIMIT 5", CacheOK, 0},
		{"SELECT id, row_number() OVER (ORDER BY id) FROM invoices WHERE customer_id = 2", CacheOK, 0},
		{"SELECT CASE WHEN amount > 0 THEN 'credit' END, id IN (1, 2) FROM invoices WHERE customer_id = 2", CacheOK, 0},
		{"SELECT tax_rate(amount), public.tax_rate(1) FROM invoices WHERE customer_id = 1", CacheOK, 0},
		{"SELECT * FROM settings", CacheOK, 0},
		{"SELECT 1", CacheOK, 0},
		{"VALUES (1, 'a')", CacheOK, 0},
		{"TABLE invoices", CacheOK, 0},
		{"SELECT * FROM cache_entries WHERE note = 'nocache'", CacheOK, 0},
		// Functions.
		{"SELECT now()", NoCacheFunction, 0},
		{"SELECT * FROM invoices WHERE customer_id = 1 AND created_at > now() - interval '1 day'", NoCacheFunction, 0},
		{"SELECT pg_catalog.now()", NoCacheFunction, 0},
		{"SELECT random() FROM invoices WHERE customer_id = 1", NoCacheFunction, 0},
		{"SELECT nextval('invoice_ids')", NoCacheFunction, 0},
		{"SELECT to_char(created_at, 'YYYY') FROM invoices WHERE customer_id = 1", NoCacheFunction, 0},
		{"SELECT clock_timestamp(), 1", NoCacheFunction, 0},
		{"SELECT CURRENT_DATE", NoCacheFunction, 0},
		{"SELECT CURRENT_TIMESTAMP, 1", NoCacheFunction, 0},
		{"SELECT LOCALTIME", NoCacheFunction, 0},
		{"SELECT * FROM invoices WHERE owner = CURRENT_USER AND customer_id = 1", NoCacheFunction, 0},
		{"SELECT SESSION_USER", NoCacheFunction, 0},
		{"SELECT SYSTEM_USER", NoCacheFunction, 0},
		{"SELECT risk_score(id) FROM invoices WHERE customer_id = 1", NoCacheFunction, 0},
		{"SELECT billing.refresh(1)", NoCacheFunction, 0},
		{"SELECT upper(status) FROM invoices WHERE customer_id = 1", NoCacheFunction, 0}, // a stable upper of the database's own may be the one called
		{"SELECT * FROM invoices TABLESAMPLE SYSTEM (10) REPEATABLE (1) WHERE customer_id = 1", NoCacheFunction, 0},
		{"SELECT * FROM invoices WHERE customer_id = 1 /* nocache */ AND random() < 0.5", NoCacheFunction, 0},
		// Locking.
		{"SELECT * FROM invoices WHERE customer_id = 1 FOR UPDATE", NoCacheLocking, 0},
		{"SELECT * FROM invoices WHERE customer_id = 1 FOR NO KEY UPDATE", NoCacheLocking, 0},
		{"SELECT * FROM invoices WHERE customer_id = 1 FOR SHARE", NoCacheLocking, 0},
		{"SELECT * FROM invoices WHERE customer_id = 1 FOR KEY SHARE SKIP LOCKED", NoCacheLocking, 0},
		{"SELECT * FROM settings WHERE name IN (SELECT name FROM settings FOR UPDATE)", NoCacheLocking, 0},
		// System tables.
		{"SELECT relname FROM pg_catalog.pg_class", NoCacheSystemTable, 0},
		{"SELECT * FROM pg_stat_activity", NoCacheSystemTable, 0},
		{"SELECT * FROM information_schema.tables", NoCacheSystemTable, 0},
		{"SELECT * FROM pg_temp.scratch", NoCacheSystemTable, 0},
		{"SELECT * FROM pg_temp_3.scratch", NoCacheSystemTable, 0},
		{"SELECT * FROM pg_toast.pg_toast_1234", NoCacheSystemTable, 0},
		{"SELECT * FROM invoices i WHERE i.customer_id = 1 AND EXISTS (SELECT 1 FROM pg_locks)", NoCacheSystemTable, 0},
		// Not one plain read.
		{"INSERT INTO invoices (customer_id, amount) VALUES (5, 10)", NoCacheStatement, 0},
		{"UPDATE invoices SET amount = 0 WHERE customer_id = 5", NoCacheStatement, 0},
		{"DELETE FROM invoices WHERE customer_id = 5", NoCacheStatement, 0},
		{"WITH d AS (DELETE FROM invoices WHERE customer_id = 5 RETURNING *) SELECT * FROM d", NoCacheStatement, 0},
		{"SELECT * INTO settings_copy FROM settings", NoCacheStatement, 0},
		{"EXPLAIN SELECT * FROM invoices WHERE customer_id = 5", NoCacheStatement, 0},
		{"SHOW search_path", NoCacheStatement, 0},
		{"SET search_path = public", NoCacheStatement, 0},
		{"BEGIN", NoCacheStatement, 0},
		{"CREATE TABLE t (customer_id bigint)", NoCacheStatement, 0},
		{"COPY (SELECT * FROM invoices WHERE customer_id = 3) TO STDOUT", NoCacheStatement, 0},
		{"DECLARE c CURSOR FOR SELECT * FROM invoices WHERE customer_id = 8", NoCacheStatement, 0},
		{"SELECT 1; SELECT 2", NoCacheStatement, 0},
		{keyed + "; " + keyed, NoCacheStatement, 0},
		{"", NoCacheStatement, 0},
		{"-- only a comment", NoCacheStatement, 0},
		{"SELEC 1", NoCacheStatement, 0},
		{"SELECT * FROM invoices WHERE customer_id = 'x'", NoCacheStatement, 0}, // rejected
		{"SELECT * FROM invoices i JOIN settings s ON true WHERE i.customer_id = 1", NoCacheStatement, 0},
		{"INSERT INTO invoices (customer_id) VALUES (1) /* cache ttl=30s */", NoCacheStatement, 0},
		// Hints.
		{keyed + " /* nocache */", NoCacheHint, 0},
		{"/* nocache */ " + keyed, NoCacheHint, 0},
		{keyed + " -- nocache", NoCacheHint, 0},
		{"SELECT /* app=x nocache */ * FROM invoices WHERE customer_id = 1", NoCacheHint, 0},
		{keyed + " /* cache ttl=30s */ /* nocache */", NoCacheHint, 0},
		{keyed + " /* no cache */", CacheOK, 0},
		{keyed + " /* nocached */", CacheOK, 0},
		{keyed + " /* cache ttl=30s */", CacheOK, 30 * time.Second},
		{"/* cache ttl=30 */ " + keyed, CacheOK, 30 * time.Second},
		{keyed + " /* cache ttl = 1m30s */", CacheOK, 90 * time.Second},
		{keyed + " /* cache ttl: 250ms */", CacheOK, 250 * time.Millisecond},
		{keyed + " -- cache ttl=1.5h\n", CacheOK, 90 * time.Minute},
		{"SELECT * FROM invoices /* cache ttl=2s */ WHERE customer_id = 1", CacheOK, 2 * time.Second},
		{keyed + " /* cache ttl=5s */ /* cache ttl=9s */", CacheOK, 5 * time.Second},
		{keyed + " /* cache ttl=abc */", CacheOK, 0},
		{keyed + " /* cache ttl=30x */", CacheOK, 0},
		{keyed + " /* cache ttl=-5s */", CacheOK, 0},
		{keyed + " /* cache ttl=0 */", CacheOK, 0},
		{keyed + " /* cache ttl=99999999999999999999 */", CacheOK, 0},
		{keyed + " /* cache ttl= */", CacheOK, 0},
		{keyed + " /* cachettl=30s */", CacheOK, 0},
		{keyed + " /* mycache ttl=30s */", CacheOK, 0},
		{keyed + " /* cache ttls=30s */", CacheOK, 0},
		{"SELECT 'cache ttl=30s' FROM invoices WHERE customer_id = 1", CacheOK, 0},
	} {
		got := warm.Route(tc.sql, Session{}, m)
		cold := New(Config{}).Route(tc.sql, Session{}, m)
		checkCachePlan(t, tc.sql, got, cold, got.Keys, tc.want, tc.ttl)
		if strings.Count(tc.sql, ";") > 0 || tc.want == NoCacheStatement {
			continue
		}
		// The same text prepared says the same.
		p := warm.Prepare(tc.sql, m).Plan(nil, Session{}, m)
		if p.NoCache != tc.want || p.CacheTTL != tc.ttl {
			t.Errorf("prepared %q: no_cache %s ttl %v, want %s %v", tc.sql, p.NoCache, p.CacheTTL, tc.want, tc.ttl)
		}
	}
}

// TestStatementNoCache covers the reasons and hints of prepared statements with parameters.
func TestStatementNoCache(t *testing.T) {
	m := cacheTestMap()
	r := New(Config{})
	for _, tc := range []struct {
		sql    string
		params Params
		want   NoCacheReason
		ttl    time.Duration
		keys   KeySet
	}{
		{"SELECT * FROM invoices WHERE customer_id = $1", textParams("4"), CacheOK, 0, keys(t, 4)},
		{"SELECT * FROM invoices WHERE customer_id = $1 /* cache ttl=45s */", textParams("4"), CacheOK, 45 * time.Second, keys(t, 4)},
		{"/* nocache */ SELECT * FROM invoices WHERE customer_id = ANY($1)", textParams("{4,5}"), NoCacheHint, 0, keys(t, 4, 5)},
		{"SELECT now(), * FROM invoices WHERE customer_id = $1", textParams("4"), NoCacheFunction, 0, keys(t, 4)},
		{"SELECT * FROM invoices WHERE customer_id = $1 FOR UPDATE", textParams("4"), NoCacheLocking, 0, keys(t, 4)},
		{"UPDATE invoices SET amount = $2 WHERE customer_id = $1", textParams("4", "1"), NoCacheStatement, 0, keys(t, 4)},
		{"SELECT * FROM invoices WHERE customer_id = $1", textParams("x"), NoCacheStatement, 0, KeySet{}},
		{"SELEC $1", textParams("4"), NoCacheStatement, 0, KeySet{}},
	} {
		got := r.Prepare(tc.sql, m).Plan(tc.params, Session{}, m)
		cold := New(Config{}).Prepare(tc.sql, m).Plan(tc.params, Session{}, m)
		checkCachePlan(t, tc.sql, got, cold, tc.keys, tc.want, tc.ttl)
	}
}

// TestRouteCacheHintsPerString checks that hint comments, which are not part of a shape, are
// read from each string: strings of one shape share a template but not their hints.
func TestRouteCacheHintsPerString(t *testing.T) {
	m := cacheTestMap()
	r := New(Config{})
	const q = "SELECT * FROM invoices WHERE customer_id = 1"
	for _, tc := range []struct {
		sql  string
		want NoCacheReason
		ttl  time.Duration
	}{
		{q + " /* cache ttl=10s */", CacheOK, 10 * time.Second},
		{q + " /* cache ttl=20s */", CacheOK, 20 * time.Second},
		{q + " /* nocache */", NoCacheHint, 0},
		{q + " ", CacheOK, 0}, // a string ending in its last token is another shape
		{q + " /* shard_key=3 */", CacheOK, 0},
	} {
		p := r.Route(tc.sql, Session{}, m)
		if p.NoCache != tc.want || p.CacheTTL != tc.ttl {
			t.Errorf("%q: no_cache %s ttl %v, want %s %v", tc.sql, p.NoCache, p.CacheTTL, tc.want, tc.ttl)
		}
	}
	if n := r.shapes.len(); n != 1 {
		t.Errorf("%d shapes cached, want 1", n)
	}
}

// TestRouteImmutableFunctionsMap checks that the map's immutable functions decide, and that a
// map with other ones does not reuse templates built for the first.
func TestRouteImmutableFunctionsMap(t *testing.T) {
	r := New(Config{})
	const q = "SELECT billing.tax(amount) FROM invoices WHERE customer_id = 1"
	m1 := cacheTestMap()
	if p := r.Route(q, Session{}, m1); p.NoCache != NoCacheFunction {
		t.Errorf("tax not immutable: %s", p.NoCache)
	}
	m2 := cacheTestMap()
	m2.ImmutableFunctions["tax"] = true
	m2.ReadOnlyFunctions["tax"] = true
	if p := r.Route(q, Session{}, m2); p.NoCache != CacheOK || p.Kind != KindRead {
		t.Errorf("tax immutable: %s %s", p.NoCache, p)
	}
	if p := r.Prepare(q, m1).Plan(nil, Session{}, m1); p.NoCache != NoCacheFunction {
		t.Errorf("prepared, tax not immutable: %s", p.NoCache)
	}
}

// TestRouteGoldenCacheProperties checks, over every golden case, what Keys, NoCache and
// CacheTTL promise.
func TestRouteGoldenCacheProperties(t *testing.T) {
	m := routeTestMap()
	r := New(Config{})
	exact, ok := 0, 0
	for _, c := range loadRouteCases(t) {
		p := r.Route(c.SQL, c.session(), m)
		if p.Keys.Exact() {
			exact++
			if p.Target != TargetShards || p.Statements != 1 || c.ShardKey != nil {
				t.Errorf("%q: exact keys %v on %s", c.SQL, p.Keys, p)
			}
			var shards shardmap.ShardSet
			for i := 0; i < p.Keys.Len(); i++ {
				if i > 0 && p.Keys.At(i-1) >= p.Keys.At(i) {
					t.Errorf("%q: keys %v not sorted and distinct", c.SQL, p.Keys)
				}
				shards = shards.Add(shardmap.ShardOf(p.Keys.At(i)))
			}
			if shards&^p.Shards != 0 {
				t.Errorf("%q: keys %v outside the shards %s", c.SQL, p.Keys, p.Shards)
			}
		}
		if p.NoCache == CacheOK {
			ok++
			if p.Statements != 1 || p.Target == TargetReject || p.Kind != KindRead {
				t.Errorf("%q: cacheable %s", c.SQL, p)
			}
		}
		if p.CacheTTL != 0 && p.NoCache != CacheOK {
			t.Errorf("%q: ttl %v with no_cache %s", c.SQL, p.CacheTTL, p.NoCache)
		}
	}
	if exact < 20 || ok < 20 {
		t.Errorf("only %d golden cases with exact keys and %d cacheable", exact, ok)
	}
}

// TestRouteCacheAllocs asserts that exact keys and cache hints cost no allocation.
func TestRouteCacheAllocs(t *testing.T) {
	m := cacheTestMap()
	r := New(Config{})
	for _, sql := range []string{
		"SELECT * FROM invoices WHERE customer_id IN (1, 2, 17) AND customer_id IN (2, 17, 40) /* cache ttl=30s */",
		"SELECT * FROM invoices WHERE customer_id = 3 OR customer_id = 4 -- nocache",
		"INSERT INTO invoices (customer_id, amount) VALUES (1, 2), (3, 4), (5, 6)",
		"SELECT * FROM invoices WHERE customer_id = 1 /* cache ttl=1m30s */",
	} {
		want := r.Route(sql, Session{}, m)
		if !want.Keys.Exact() {
			t.Fatalf("%s: keys not exact: %s", sql, want.JSON())
		}
		var got Plan
		if n := testing.AllocsPerRun(200, func() { got = r.Route(sql, Session{}, m) }); n != 0 {
			t.Errorf("Route(%q): %v allocs/op, want 0", sql, n)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Route(%q) = %s, want %s", sql, got.JSON(), want.JSON())
		}
	}
	st := r.Prepare("SELECT * FROM invoices WHERE customer_id = ANY($1) /* cache ttl=5s */", m)
	params := binParam(binArray(i64(4), i64(21), i64(4)))
	var got Plan
	if n := testing.AllocsPerRun(200, func() { got = st.Plan(params, Session{}, m) }); n != 0 {
		t.Errorf("Statement.Plan: %v allocs/op, want 0", n)
	}
	if got.Keys != keys(t, 4, 21) || got.CacheTTL != 5*time.Second {
		t.Errorf("Statement.Plan: %s", got.JSON())
	}
}

func TestNoCacheReasonText(t *testing.T) {
	want := []string{"ok", "statement", "function", "locking", "system_table", "hint"}
	for i, w := range want {
		r := NoCacheReason(i)
		if r.String() != w {
			t.Errorf("NoCacheReason(%d) = %q, want %q", i, r, w)
		}
		var back NoCacheReason
		if err := back.UnmarshalText([]byte(w)); err != nil || back != r {
			t.Errorf("UnmarshalText(%q) = %v, %v", w, back, err)
		}
	}
	var r NoCacheReason
	if err := r.UnmarshalText([]byte("nope")); err == nil {
		t.Error("UnmarshalText of an unknown label succeeded")
	}
}

func TestKeySet(t *testing.T) {
	var zero KeySet
	if zero.Exact() || zero.Len() != 0 || zero.String() != "[]" {
		t.Errorf("zero KeySet: exact %v len %d %s", zero.Exact(), zero.Len(), zero)
	}
	if _, ok := NewKeySet(); ok {
		t.Error("NewKeySet() ok")
	}
	if _, ok := NewKeySet(1, 2, 3, 4, 5); ok {
		t.Error("NewKeySet of five ok")
	}
	k, ok := NewKeySet(9, -3, 9, 4, 0, -3)
	if !ok || !k.Exact() || k.Len() != 4 || k.String() != "[-3 0 4 9]" {
		t.Fatalf("NewKeySet: %v %v", k, ok)
	}
	if got := k.AppendTo(nil); !slices.Equal(got, []int64{-3, 0, 4, 9}) {
		t.Errorf("AppendTo = %v", got)
	}
	if !k.Contains(4) || k.Contains(5) {
		t.Error("Contains")
	}
	if k2, _ := NewKeySet(4, 0, 9, -3); k2 != k {
		t.Error("equal sets compare unequal")
	}
	b, err := json.Marshal(k)
	if err != nil || string(b) != "[-3,0,4,9]" {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
	var back KeySet
	if err := json.Unmarshal(b, &back); err != nil || back != k {
		t.Errorf("UnmarshalJSON = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte("[1,2,3,4,5]"), &back); err == nil {
		t.Error("UnmarshalJSON of five values succeeded")
	}
	if err := json.Unmarshal([]byte("[]"), &back); err != nil || back.Exact() {
		t.Errorf("UnmarshalJSON([]) = %v, %v", back, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("At out of range did not panic")
		}
	}()
	k.At(4)
}

func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want time.Duration
	}{
		{"30", 30 * time.Second}, {"30s", 30 * time.Second}, {"1m30s", 90 * time.Second},
		{"1.5h", 90 * time.Minute}, {"250ms", 250 * time.Millisecond}, {"10µs", 10 * time.Microsecond},
		{".5s", 500 * time.Millisecond}, {"2h45m", 165 * time.Minute},
		{"", 0}, {"0", 0}, {"0s", 0}, {"s", 0}, {"1x", 0}, {"1.s", time.Second}, {".s", 0},
		{"-1s", 0}, {"1_0", 0}, {"9223372036854775807", 0}, {"3000000h", 0}, {"30sec", 0},
	} {
		if got := parseTTL(tc.s); got != tc.want {
			t.Errorf("parseTTL(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
