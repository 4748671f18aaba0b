package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	dto "github.com/prometheus/client_model/go"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/proxy/twopc"
)

// commitPath is how a transaction of BenchmarkCrossGroupCommit reaches Postgres.
type commitPath int

const (
	viaProxy       commitPath = iota // through the proxy
	direct                           // straight to group 0's writer: the anchor
	directPrepared                   // straight to group 0's writer, ending in PREPARE TRANSACTION and COMMIT PREPARED
	catalogLog                       // no transaction: the two catalog writes of a two-phase commit alone
)

// commitShape is one kind of transaction of BenchmarkCrossGroupCommit: BEGIN, one UPDATE of
// a customer's account per entry of groups (the group that owns that customer), COMMIT.
type commitShape struct {
	name     string
	path     commitPath
	groups   []int // the group of each UPDATE, in order
	twoPhase bool  // the proxy must commit it with two-phase commit
	parallel bool  // measured with several clients too, not only with one
}

// commitShapes are the transactions measured, in the order they run in each repetition.
// direct-writer-prepared and catalog-begin-decide are parts of a two-phase commit measured
// alone, to tell where its time goes.
var commitShapes = []commitShape{
	{name: "direct-writer", path: direct, groups: []int{0, 0}, parallel: true},
	{name: "direct-writer-prepared", path: directPrepared, groups: []int{0, 0}},
	{name: "catalog-begin-decide", path: catalogLog, groups: []int{0, 1}},
	{name: "single-group", path: viaProxy, groups: []int{0, 0}, parallel: true},
	{name: "two-groups-2pc", path: viaProxy, groups: []int{0, 1}, twoPhase: true, parallel: true},
	{name: "single-group-4-updates", path: viaProxy, groups: []int{0, 0, 0, 0}, parallel: true},
	{name: "four-groups-2pc", path: viaProxy, groups: []int{0, 1, 2, 3}, twoPhase: true, parallel: true},
}

// benchParallelClients is the number of concurrent clients of the throughput variant.
const benchParallelClients = 8

// benchWarmupTx is the number of transactions each client runs before the timer starts, so
// that pools and plan caches are warm.
const benchWarmupTx = 20

// commitClient is one client of the benchmark: its connections and, per shape, the UPDATE
// statements of its transaction (each on a customer no other client writes).
type commitClient struct {
	proxy, direct *pgx.Conn
	updates       [][]string // per shape index
}

// BenchmarkCrossGroupCommit measures what a transaction costs through the proxy when its
// writes span shard groups (two-phase commit: the catalog records it, every group prepares,
// the catalog records the decision, every group commits the prepared transaction) against
// the same transaction in one group (a plain COMMIT), and against the writer without the
// proxy (the anchor, measured in the same run). Each transaction is BEGIN, one UPDATE per
// group entry of its shape, COMMIT, in the simple protocol; every client writes its own rows.
// Two parts of a two-phase commit are also measured alone, with one client:
// direct-writer-prepared ends the anchor's transaction with PREPARE TRANSACTION and COMMIT
// PREPARED instead of COMMIT, and catalog-begin-decide makes the two catalog writes of a
// commit (twopc.Log Begin and Decide; its Forget, which the proxy runs in the background,
// follows outside the measured latency but inside ns/op).
//
// clients=1 is one client's latency (ns/op is one transaction); clients=8 is throughput of
// eight concurrent clients (ns/op is wall time over transactions). Metrics: tx/s; p50-us and
// p99-us, one transaction's latency seen by its client; commit-us, the mean latency of its
// COMMIT (of PREPARE TRANSACTION and COMMIT PREPARED for direct-writer-prepared); proxy-2pc-us,
// the proxy's own mean time of a two-phase commit (shardwire_twopc_commit_seconds), for the
// shapes that use it. Each run of the benchmark measures every shape once (-count repeats a
// shape back to back), so run it several times for interleaved repetitions:
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench BenchmarkCrossGroupCommit -benchtime 2000x -count 1 ./proxy/; done
func BenchmarkCrossGroupCommit(b *testing.B) {
	cl := pgtest.New(b, pgtest.Options{Groups: 4})
	p := startCatalogProxy(b, cl, []config.Database{{Name: pgtest.Database, TwoPhaseCommit: true}}, func(c *config.Config) {
		c.TwoPhase.RecoveryInterval = config.Default().TwoPhase.RecoveryInterval // as in production
	})
	ctx := context.Background()
	admin := connect(b, p.dsn(""))
	execAll(b, admin, "CREATE TABLE accounts (customer_id bigint PRIMARY KEY, balance bigint NOT NULL)")
	perGroup := 4 // customers per client and group: one per UPDATE of the longest shape
	cust := customersByGroup(p, perGroup*benchParallelClients)
	for _, l := range cust {
		for _, c := range l {
			execAll(b, admin, fmt.Sprintf("INSERT INTO accounts VALUES (%d, 1000)", c))
		}
	}
	const mode = "default_query_exec_mode=simple_protocol"
	directDSN := cl.Groups[0].Writer.AppDSN() + "&" + mode
	clients := make([]*commitClient, benchParallelClients)
	for k := range clients {
		c := &commitClient{proxy: connect(b, p.dsn(mode)), direct: connect(b, directDSN)}
		for _, sh := range commitShapes {
			var stmts []string
			for j, g := range sh.groups {
				stmts = append(stmts, fmt.Sprintf("UPDATE accounts SET balance = balance + 1 WHERE customer_id = %d", cust[g][perGroup*k+j]))
			}
			c.updates = append(c.updates, stmts)
		}
		clients[k] = c
	}

	for _, n := range []int{1, benchParallelClients} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			for si, sh := range commitShapes {
				if n > 1 && !sh.parallel {
					continue
				}
				b.Run(sh.name, func(b *testing.B) {
					benchCommitShape(ctx, b, p, clients[:n], si, sh)
				})
			}
		})
	}
}

// benchCommitShape runs b.N transactions of one shape over the clients, each client a
// goroutine taking the next transaction until b.N are done, and reports the metrics; it
// fails when a transaction did not commit or did not take the commit path its shape names.
func benchCommitShape(ctx context.Context, b *testing.B, p *testProxy, clients []*commitClient, si int, sh commitShape) {
	run := func(c *commitClient) (total, commit time.Duration, err error) {
		switch sh.path {
		case direct:
			return runCommitTx(ctx, c.direct, c.updates[si], false)
		case directPrepared:
			return runCommitTx(ctx, c.direct, c.updates[si], true)
		case catalogLog:
			return runCatalogWrites(ctx, p, sh.groups)
		default:
			return runCommitTx(ctx, c.proxy, c.updates[si], false)
		}
	}
	for _, c := range clients {
		for range benchWarmupTx {
			if _, _, err := run(c); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
		}
	}
	twoPCBefore, twoPCSecsBefore := histogramOf(b, p, "shardwire_twopc_commit_seconds")
	multiBefore := counterOf(b, p, "shardwire_multigroup_transactions_total")

	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errs    = make(chan error, len(clients))
		txLat   = make([][]time.Duration, len(clients))
		commits = make([]time.Duration, len(clients))
	)
	b.ResetTimer()
	start := time.Now()
	for k, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				total, commit, err := run(c)
				if err != nil {
					errs <- err
					return
				}
				txLat[k] = append(txLat[k], total)
				commits[k] += commit
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}

	var all []time.Duration
	var commitSum time.Duration
	for k := range clients {
		all = append(all, txLat[k]...)
		commitSum += commits[k]
	}
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tx/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-us")
	b.ReportMetric(float64(commitSum.Microseconds())/float64(b.N), "commit-us")

	twoPC, twoPCSecs := histogramOf(b, p, "shardwire_twopc_commit_seconds")
	multi := counterOf(b, p, "shardwire_multigroup_transactions_total")
	switch {
	case sh.twoPhase:
		if got := twoPC - twoPCBefore; got != uint64(b.N) {
			b.Fatalf("%d two-phase commits for %d transactions over %d groups", got, b.N, len(sh.groups))
		}
		b.ReportMetric((twoPCSecs-twoPCSecsBefore)*1e6/float64(b.N), "proxy-2pc-us")
	case multi != multiBefore || twoPC != twoPCBefore:
		b.Fatalf("a transaction of %s took the multi-group path (%v transactions, %d two-phase commits)",
			sh.name, multi-multiBefore, twoPC-twoPCBefore)
	}
}

// runCommitTx runs BEGIN, the updates and COMMIT on c — or, when prepared, PREPARE
// TRANSACTION and COMMIT PREPARED — and returns the time of the whole transaction and of its
// commit; a commit that did not commit is an error.
func runCommitTx(ctx context.Context, c *pgx.Conn, updates []string, prepared bool) (total, commit time.Duration, err error) {
	start := time.Now()
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return 0, 0, fmt.Errorf("BEGIN: %w", err)
	}
	for _, u := range updates {
		tag, err := c.Exec(ctx, u)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", u, err)
		}
		if tag.RowsAffected() != 1 {
			return 0, 0, fmt.Errorf("%s: %d rows, want 1", u, tag.RowsAffected())
		}
	}
	commitStart := time.Now()
	var tag pgconn.CommandTag
	if prepared {
		// Not named with twopc.GIDPrefix: the proxy's recovery must leave it alone.
		gid := "bench:" + strings.TrimPrefix(twopc.NewGID("direct"), twopc.GIDPrefix)
		if tag, err = c.Exec(ctx, twopc.PrepareSQL(gid)); err == nil && tag.String() != "PREPARE TRANSACTION" {
			err = errors.New("answered " + tag.String())
		}
		if err != nil {
			return 0, 0, fmt.Errorf("PREPARE TRANSACTION: %w", err)
		}
		if tag, err = c.Exec(ctx, twopc.CommitPreparedSQL(gid)); err == nil && tag.String() != "COMMIT PREPARED" {
			err = errors.New("answered " + tag.String())
		}
	} else if tag, err = c.Exec(ctx, "COMMIT"); err == nil && tag.String() != "COMMIT" {
		err = errors.New("answered " + tag.String())
	}
	end := time.Now()
	if err != nil {
		return 0, 0, fmt.Errorf("commit: %w", err)
	}
	return end.Sub(start), end.Sub(commitStart), nil
}

// runCatalogWrites makes the catalog writes of a two-phase commit over groups through the
// proxy's decision log — Begin, then Decide — and returns their time (as both total and
// commit), then forgets the record as the proxy does after a commit, outside that time.
func runCatalogWrites(ctx context.Context, p *testProxy, groups []int) (total, commit time.Duration, err error) {
	lg := p.srv.TwoPhaseLog()
	node := p.srv.config().NodeName
	rec := twopc.Record{GID: twopc.NewGID(node), Node: node, Database: pgtest.Database, User: pgtest.User}
	for _, g := range groups {
		rec.Groups = append(rec.Groups, p.cluster.Groups[g].Name)
	}
	start := time.Now()
	if err := lg.Begin(ctx, rec); err != nil {
		return 0, 0, err
	}
	if err := lg.Decide(ctx, rec.GID, true); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	if err := lg.Forget(ctx, rec.GID); err != nil {
		return 0, 0, err
	}
	return d, d, nil
}

// metricOf returns the proxy's unlabelled metric name.
func metricOf(b *testing.B, p *testProxy, name string) *dto.Metric {
	b.Helper()
	families, err := p.reg.Gather()
	if err != nil {
		b.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0]
		}
	}
	b.Fatalf("metric %s not registered", name)
	return nil
}

// histogramOf returns the sample count and sum of the proxy's unlabelled histogram name.
func histogramOf(b *testing.B, p *testProxy, name string) (uint64, float64) {
	b.Helper()
	h := metricOf(b, p, name).GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

// counterOf returns the value of the proxy's unlabelled counter name.
func counterOf(b *testing.B, p *testProxy, name string) float64 {
	b.Helper()
	return metricOf(b, p, name).GetCounter().GetValue()
}
