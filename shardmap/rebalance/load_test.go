package rebalance_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/pgtest"

	"github.com/shardwire/shardwire/shardmap"
)

// itemKey is one insert's unique key.
type itemKey struct {
	customer int64
	client   int
	seq      int64
}

// outcome of one write as the client saw it.
type outcome int

const (
	acked   outcome = iota // the proxy acknowledged it
	failed                 // a definite refusal: it did not run (40001, 57P03, 55000, SW001)
	unknown                // the connection failed: it may or may not have run
)

// classify sorts an error into failed or unknown.
func classify(err error) outcome {
	switch sqlState(err) {
	case "40001", "57P03", "55000", shardmap.CodeShardFenced, "0A000":
		return failed
	}
	return unknown
}

// load is a continuous workload through every node: inserts with unique keys and counter
// increments, half of them on the moving shard, and reads that must never fail.
type load struct {
	shard     shardmap.Shard
	clients   int     // the writers' client ids are clients, clients+1, ...
	customers []int64 // on the shard
	others    []int64 // on other shards

	mu            sync.Mutex
	items         map[itemKey]outcome
	counterAcked  map[int64]int64
	counterUnsure map[int64]int64
	readErrs      []error
	writeErrs     map[string]int // SQLSTATE or "conn" → count, for the log
	maxPauseShard time.Duration  // longest time a write on the shard took to be acknowledged
	maxPauseOther time.Duration
	writesShard   int
	writesOther   int
	started       time.Time
	perTick       []int // acknowledged writes per 100ms since started

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// customersOf returns n customer ids in shard.
func customersOf(shard shardmap.Shard, n, offset int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(shard) + int64(shardmap.NumShards)*int64(offset+i+1)
	}
	return out
}

// startLoad creates the counters of the workload's customers (through the proxy) and starts
// writers and readers on every node.
func startLoad(t testing.TB, e *env, shard shardmap.Shard, writers int) *load {
	t.Helper()
	l := &load{shard: shard, customers: customersOf(shard, 8, 1000), items: make(map[itemKey]outcome),
		counterAcked: make(map[int64]int64), counterUnsure: make(map[int64]int64), writeErrs: make(map[string]int)}
	other := shardmap.Shard((int(shard) + 1) % shardmap.NumShards)
	l.others = customersOf(other, 8, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.started = time.Now()
	setup := pgtest.Connect(t, e.dc.Nodes[0].DSN())
	for _, c := range append(slices.Clone(l.customers), l.others...) {
		if _, err := setup.Exec(ctx, "INSERT INTO counters (customer_id, v) VALUES ($1, 0) ON CONFLICT (customer_id) DO NOTHING", c); err != nil {
			t.Fatalf("create counter %d: %v", c, err)
		}
		if _, err := setup.Exec(ctx, "UPDATE counters SET v = 0 WHERE customer_id = $1", c); err != nil {
			t.Fatalf("reset counter %d: %v", c, err)
		}
	}
	_ = setup.Close(ctx)
	// Each workload's clients have their own ids, so keys never repeat across workloads.
	e.loads++
	l.clients = e.loads * 100
	for i := range writers {
		node := e.dc.Nodes[i%len(e.dc.Nodes)]
		client := l.clients + i
		l.wg.Go(func() { l.write(ctx, node.DSN(), client) })
	}
	for i := range len(e.dc.Nodes) {
		node := e.dc.Nodes[i]
		l.wg.Go(func() { l.read(ctx, node.DSN()) })
	}
	return l
}

// write runs one writer until ctx ends: alternately an insert and an increment, on the
// moving shard or another, each retried (as a client's retry loop would) until acknowledged
// or refused for good.
func (l *load) write(ctx context.Context, dsn string, client int) {
	rng := rand.New(rand.NewPCG(uint64(client), 7))
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	var seq int64
	for n := 0; ctx.Err() == nil; n++ {
		onShard := n%2 == 0
		pool := l.others
		if onShard {
			pool = l.customers
		}
		customer := pool[rng.IntN(len(pool))]
		insert := (n/2)%2 == 0
		started := time.Now()
		for attempt := 0; ctx.Err() == nil; attempt++ {
			if conn == nil || conn.IsClosed() {
				c, err := pgx.Connect(ctx, dsn)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				conn = c
			}
			var err error
			opCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if insert {
				seq++
				key := itemKey{customer, client, seq}
				_, err = conn.Exec(opCtx, "INSERT INTO items (customer_id, client, seq) VALUES ($1, $2, $3)", customer, client, seq)
				l.record(key, err)
			} else {
				_, err = conn.Exec(opCtx, "UPDATE counters SET v = v + 1 WHERE customer_id = $1", customer)
				l.recordCounter(customer, err)
			}
			cancel()
			if err == nil {
				l.notePause(onShard, time.Since(started))
				// A steady rate (about 200 writes a second per writer) that replication
				// keeps up with on a small shared machine, not a saturating flood.
				time.Sleep(5 * time.Millisecond)
				break
			}
			if classify(err) == unknown {
				_ = conn.Close(context.Background())
				conn = nil
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (l *load) record(key itemKey, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.items[key] = acked
		return
	}
	l.items[key] = classify(err)
	l.noteErr(err)
}

func (l *load) recordCounter(customer int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.counterAcked[customer]++
	case classify(err) == unknown:
		l.counterUnsure[customer]++
		l.noteErr(err)
	default:
		l.noteErr(err)
	}
}

// noteErr counts an error by SQLSTATE (l.mu held).
func (l *load) noteErr(err error) {
	code := sqlState(err)
	if code == "" {
		code = "conn: " + err.Error()
		if len(code) > 60 {
			code = code[:60]
		}
	}
	l.writeErrs[code]++
}

func (l *load) notePause(onShard bool, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tick := int(time.Since(l.started) / loadTick)
	for len(l.perTick) <= tick {
		l.perTick = append(l.perTick, 0)
	}
	l.perTick[tick]++
	if onShard {
		l.writesShard++
		l.maxPauseShard = max(l.maxPauseShard, d)
	} else {
		l.writesOther++
		l.maxPauseOther = max(l.maxPauseOther, d)
	}
}

// loadTick is the resolution of the throughput timeline.
const loadTick = 100 * time.Millisecond

// throughput returns the acknowledged writes per second over [from, to), and the lowest
// rate of any one-second window inside it.
func (l *load) throughput(from, to time.Time) (avg, lowest float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, b := int(from.Sub(l.started)/loadTick), int(to.Sub(l.started)/loadTick)
	a, b = max(a, 0), min(b, len(l.perTick))
	if b <= a {
		return 0, 0
	}
	total := 0
	for _, n := range l.perTick[a:b] {
		total += n
	}
	avg = float64(total) / (float64(b-a) * loadTick.Seconds())
	const window = int(time.Second / loadTick)
	lowest = avg
	for i := a; i+window <= b; i++ {
		n := 0
		for _, c := range l.perTick[i : i+window] {
			n += c
		}
		lowest = min(lowest, float64(n))
	}
	return avg, lowest
}

// read runs one reader until ctx ends; every failure is kept.
func (l *load) read(ctx context.Context, dsn string) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		l.mu.Lock()
		l.readErrs = append(l.readErrs, err)
		l.mu.Unlock()
		return
	}
	defer conn.Close(context.Background())
	all := append(slices.Clone(l.customers), l.others...)
	for i := 0; ctx.Err() == nil; i++ {
		c := all[i%len(all)]
		var n, v int64
		err := conn.QueryRow(ctx, "SELECT count(*) FROM items WHERE customer_id = $1", c).Scan(&n)
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT coalesce((SELECT v FROM counters WHERE customer_id = $1), -1)", c).Scan(&v)
		}
		if err != nil && ctx.Err() == nil {
			l.mu.Lock()
			l.readErrs = append(l.readErrs, fmt.Errorf("read customer %d: %w", c, err))
			l.mu.Unlock()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stop ends the workload and waits for it.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// check asserts point 1 of the acceptance: every acknowledged insert exists exactly once at
// the shard's owner and nowhere writable else, no refused insert exists, counters are
// within [acknowledged, acknowledged + unknown], and no read failed.
func (l *load) check(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d writes on shard %d (longest pause %v), %d elsewhere (longest %v); errors %v",
		l.writesShard, l.shard, l.maxPauseShard, l.writesOther, l.maxPauseOther, l.writeErrs)
	if l.writesShard == 0 || l.writesOther == 0 {
		t.Errorf("the workload made no progress: %d writes on the shard, %d elsewhere", l.writesShard, l.writesOther)
	}
	for _, err := range l.readErrs {
		t.Errorf("a read failed: %v", err)
	}
	m, err := e.cat.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Rows of the workload's customers, per group.
	found := make(map[string]map[itemKey]int)
	for group := range e.writers {
		conn := e.writer(group)
		rows, err := conn.Query(ctx, "SELECT customer_id, client, seq FROM items WHERE client >= $2 AND client < $2 + 100 AND customer_id = ANY($1)",
			append(slices.Clone(l.customers), l.others...), l.clients)
		if err != nil {
			t.Fatal(err)
		}
		keys := make(map[itemKey]int)
		for rows.Next() {
			var k itemKey
			if err := rows.Scan(&k.customer, &k.client, &k.seq); err != nil {
				t.Fatal(err)
			}
			keys[k]++
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		found[group] = keys
		_ = conn.Close(ctx)
	}
	missing, phantom := 0, 0
	for k, o := range l.items {
		owner := m.OwnerOf(shardmap.ShardOf(k.customer)).Name
		n := found[owner][k]
		switch {
		case o == acked && n != 1:
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged insert %+v is on its owner %s %d times", k, owner, n)
			}
		case o == failed && n != 0:
			phantom++
			if phantom <= 5 {
				t.Errorf("refused insert %+v exists on %s", k, owner)
			}
		}
	}
	for group, keys := range found {
		for k := range keys {
			owner := m.OwnerOf(shardmap.ShardOf(k.customer)).Name
			if _, known := l.items[k]; !known && group == owner {
				t.Errorf("row %+v on %s was never written by the workload", k, group)
			}
		}
	}
	customers := append(slices.Clone(l.customers), l.others...)
	sort.Slice(customers, func(i, j int) bool { return customers[i] < customers[j] })
	for _, c := range customers {
		owner := m.OwnerOf(shardmap.ShardOf(c)).Name
		conn := e.writer(owner)
		var v int64
		if err := conn.QueryRow(ctx, "SELECT v FROM counters WHERE customer_id = $1", c).Scan(&v); err != nil {
			t.Fatalf("counter %d on %s: %v", c, owner, err)
		}
		_ = conn.Close(ctx)
		lo, hi := l.counterAcked[c], l.counterAcked[c]+l.counterUnsure[c]
		if v < lo || v > hi {
			t.Errorf("counter of customer %d on %s is %d, want within [%d, %d]", c, owner, v, lo, hi)
		}
	}
}

// checkNotWritable asserts that a group does not accept a direct write of the shard.
func checkNotWritable(t *testing.T, e *env, group string, shard shardmap.Shard) {
	t.Helper()
	conn := e.writer(group)
	defer conn.Close(context.Background())
	c := customersOf(shard, 1, 5000)[0]
	_, err := conn.Exec(context.Background(), "INSERT INTO items (customer_id, client, seq) VALUES ($1, -2, $2)", c, time.Now().UnixNano())
	if code := sqlState(err); code != shardmap.CodeShardFenced {
		t.Errorf("direct write of shard %d on %s: %v (SQLSTATE %q), want the fence's %s", shard, group, err, code, shardmap.CodeShardFenced)
	}
}

// prober writes shard rows straight to two writers, bypassing the proxies, and records when
// each write succeeded.
type prober struct {
	mu      sync.Mutex
	windows map[string][][2]time.Time // side → [start, end] of each successful write
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startProber(t *testing.T, e *env, shard shardmap.Shard, source, target string) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{windows: make(map[string][][2]time.Time), cancel: cancel}
	customer := customersOf(shard, 1, 7000)[0]
	for _, side := range []string{source, target} {
		conn := e.writer(side)
		p.wg.Go(func() {
			defer conn.Close(context.Background())
			for seq := int64(0); ctx.Err() == nil; seq++ {
				start := time.Now()
				_, err := conn.Exec(ctx, "INSERT INTO probe (customer_id, side, seq) VALUES ($1, $2, $3)", customer, side, seq)
				if err == nil {
					p.mu.Lock()
					p.windows[side] = append(p.windows[side], [2]time.Time{start, time.Now()})
					p.mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return p
}

// check asserts that no successful write on one side overlapped one on the other.
func (p *prober) check(t *testing.T, source, target string) {
	p.cancel()
	p.wg.Wait()
	src, tgt := p.windows[source], p.windows[target]
	t.Logf("prober: %d direct writes succeeded on %s, %d on %s", len(src), source, len(tgt), target)
	for _, a := range src {
		for _, b := range tgt {
			if a[0].Before(b[1]) && b[0].Before(a[1]) {
				t.Fatalf("direct writes succeeded on both %s (%v–%v) and %s (%v–%v) at once",
					source, a[0].Format(time.StampMicro), a[1].Format(time.StampMicro), target, b[0].Format(time.StampMicro), b[1].Format(time.StampMicro))
			}
		}
	}
	if len(src) > 0 && len(tgt) > 0 && src[len(src)-1][1].After(tgt[0][0]) {
		t.Errorf("the source accepted a direct write after the target had accepted one")
	}
}

var _ = errors.New
