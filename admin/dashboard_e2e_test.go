package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/devcluster"
)

// chromiumPath is Debian's chromium, which CI installs with scripts/deps.sh.
const chromiumPath = "/usr/bin/chromium"

// pageWait bounds one wait for a condition on the page.
const pageWait = 20 * time.Second

// requireChromium fails the test when the browser is missing: the dashboard is tested in a
// real one, never skipped.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the dashboard tests drive a headless Chromium at %s: %v (install it: bash scripts/deps.sh)", chromiumPath, err)
	}
}

// browser is one headless Chromium tab and what its page reported.
type browser struct {
	ctx context.Context // the tab's chromedp context

	mu         sync.Mutex
	exceptions []string // uncaught exceptions and unhandled rejections of the page
}

// newBrowser starts a headless Chromium with a fresh profile and opens a tab; both end
// with the test.
func newBrowser(t *testing.T, parent context.Context) *browser {
	t.Helper()
	requireChromium(t)
	profile, err := os.MkdirTemp("", "shardwire-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1440, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	b := &browser{ctx: tabCtx}
	messages := chromedp.Console(tabCtx) // starts the browser
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.exceptions = append(b.exceptions, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		<-done
		_ = os.RemoveAll(profile)
	})
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("start %s: %v (install it: bash scripts/deps.sh)", chromiumPath, err)
	}
	return b
}

// open loads url in the tab.
func (b *browser) open(t *testing.T, url string) {
	t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

// waitFor polls the JavaScript expression until it is truthy, and fails the test with the
// page's text and a screenshot when it is not within pageWait.
func (b *browser) waitFor(t *testing.T, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		shot := b.screenshot(t, "failed-"+strings.NewReplacer(" ", "-", "/", "-").Replace(what))
		t.Fatalf("the page did not show %s within %v: %v\nscreenshot: %s\npage text:\n%s", what, pageWait, err, shot, text)
	}
}

// eval returns the value of a JavaScript expression on the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves a PNG of the whole page in the artifacts directory and returns its path.
func (b *browser) screenshot(t *testing.T, name string) string {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(artifactsDir(t), t.Name()+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	t.Logf("screenshot: %s", path)
	return path
}

// checkNoExceptions fails the test when the page threw.
func (b *browser) checkNoExceptions(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.exceptions) > 0 {
		t.Errorf("the page threw:\n%s", strings.Join(b.exceptions, "\n"))
	}
}

// artifactsDir is $SHARDWIRE_TEST_ARTIFACTS, else shardwire-artifacts in the temporary
// directory; it is created when missing.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SHARDWIRE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "shardwire-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// buildShardwire builds ./cmd/shardwire into dir: the dev cluster's nodes run it as child
// processes, so that one of them can be stopped while the others run.
func buildShardwire(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside the module", gomod)
	}
	path := filepath.Join(dir, "shardwire")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/shardwire")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/shardwire: %v\n%s", err, out)
	}
	return path
}

// probeTable is the sharded table the live test reads: its customer_id column is the
// dev cluster's shard key, so each read goes to the group of its key's shard.
const probeTable = "dashboard_probe"

// createProbeTable creates probeTable through node n, as an application would (the proxy
// runs the DDL on every group and learns the table is sharded), and waits until every
// replica has replayed it.
func createProbeTable(ctx context.Context, t *testing.T, dc *devcluster.Cluster, n *devcluster.Node) {
	t.Helper()
	if err := execOnce(ctx, n.DSN(), "create table "+probeTable+" (customer_id bigint primary key)"); err != nil {
		t.Fatalf("create %s through %s: %v", probeTable, n.Name, err)
	}
	for _, g := range dc.PG.Groups {
		for _, r := range g.Replicas {
			for {
				err := execOnce(ctx, r.AppDSN(), "select customer_id from "+probeTable+" limit 1")
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%s: the replica did not replay the table: %v", g.Name, err)
				}
				time.Sleep(20 * time.Millisecond) // replay is a matter of milliseconds
			}
		}
	}
}

func execOnce(ctx context.Context, dsn, sql string) error {
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql).ReadAll()
	return err
}

// sendTraffic reads probeTable through n, one customer of each shard in turn, until ctx
// ends, so that the page has throughput and latency to show in every group.
func sendTraffic(ctx context.Context, t *testing.T, n *devcluster.Node) <-chan error {
	t.Helper()
	conn, err := pgconn.Connect(ctx, n.DSN())
	if err != nil {
		t.Fatalf("connect to %s: %v", n.Name, err)
	}
	done := make(chan error, 1)
	go func() {
		defer conn.Close(context.Background())
		for i := 0; ; i++ {
			_, err := conn.Exec(ctx, fmt.Sprintf("select customer_id from %s where customer_id = %d", probeTable, i%64)).ReadAll()
			if ctx.Err() != nil {
				done <- nil
				return
			}
			if err != nil {
				done <- fmt.Errorf("read %d through %s: %w", i, n.Name, err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return done
}

// TestDashboardLiveCluster loads p0's dashboard in Chromium while a three-node dev cluster
// serves reads, checks that it shows the members, the shard map and live rates, then stops
// p2 and waits until the page shows it gone.
func TestDashboardLiveCluster(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Postgres runs as another OS user when tests run as root: the directory must be reachable.
	dir, err := os.MkdirTemp("", "dashboard-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bin := buildShardwire(t, dir)
	t.Logf("built shardwire in %v", time.Since(start).Round(time.Millisecond))
	dc, err := devcluster.Start(ctx, devcluster.Options{Dir: dir, Groups: 4, Replicas: 1, Proxies: 3, Exec: bin, Logf: t.Logf})
	if err != nil {
		t.Fatalf("start the dev cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := dc.Stop(); err != nil {
			t.Errorf("stop the dev cluster: %v", err)
		}
	})
	t.Logf("dev cluster up after %v", time.Since(start).Round(time.Millisecond))
	p0, p2 := dc.Nodes[0], dc.Nodes[2]
	createProbeTable(ctx, t, dc, p0)

	trafficCtx, stopTraffic := context.WithCancel(ctx)
	traffic := sendTraffic(trafficCtx, t, p0)
	defer func() {
		stopTraffic()
		if err := <-traffic; err != nil {
			t.Error(err)
		}
	}()

	b := newBrowser(t, ctx)
	b.open(t, "http://"+p0.Admin+"/")
	b.waitFor(t, "three alive members and 16 shards", `
		document.querySelectorAll('#members tr[data-state="alive"]').length === 3 &&
		document.querySelectorAll('#shards .shard').length === 16`)
	if got := eval[string](t, b, `document.getElementById('node-name').textContent`); got != p0.Name {
		t.Errorf("header names the node %q, want %q", got, p0.Name)
	}

	// The grid shows the map the node serves, shard by shard.
	client, err := admin.NewClient(p0.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	view, err := client.ShardMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range view.Shards {
		want = append(want, fmt.Sprintf("%d:%s:%s", s.Shard, s.Group, s.State))
	}
	cells := eval[[]string](t, b, `[...document.querySelectorAll('#shards .shard')].map((e) => e.dataset.shard + ':' + e.dataset.group + ':' + e.dataset.state)`)
	if !slices.Equal(cells, want) {
		t.Errorf("shard cells = %v, want %v", cells, want)
	}
	if colors := eval[int](t, b, `new Set([...document.querySelectorAll('#shards .shard')].map((e) => getComputedStyle(e).backgroundColor)).size`); colors != len(view.Groups) {
		t.Errorf("the shard cells have %d colours, want one per group (%d)", colors, len(view.Groups))
	}

	// Reads keyed to every shard reach every group: each shows throughput, and the latency
	// percentiles of the last interval are numbers.
	b.waitFor(t, "throughput in every group", `(() => {
		const rates = [...document.querySelectorAll('#throughput tr[data-group] td[data-rate]')].map((e) => Number(e.dataset.rate));
		return rates.length === 4 && rates.every((r) => r > 0);
	})()`)
	b.waitFor(t, "latency percentiles", `(() => {
		const cells = [...document.querySelectorAll('#latency tbody td.num')].map((e) => e.textContent);
		return cells.length >= 4 && cells.some((c) => / (µs|ms|s)$/.test(c));
	})()`)
	b.waitFor(t, "every replica's lag and some pool", `
		document.querySelectorAll('#lag tr[data-role="replica"] td[data-lag]').length === 4 &&
		document.querySelectorAll('#pools tr[data-endpoint]').length > 0`)
	b.screenshot(t, "three-nodes")
	t.Logf("page live after %v", time.Since(start).Round(time.Millisecond))

	if err := p2.Stop(); err != nil {
		t.Fatalf("stop %s: %v", p2.Name, err)
	}
	b.waitFor(t, p2.Name+" not alive", fmt.Sprintf(`(() => {
		const row = document.querySelector('#members tr[data-member=%q]');
		return row !== null && row.dataset.state !== 'alive' &&
			document.querySelectorAll('#members tr[data-state="alive"]').length === 2;
	})()`, p2.Name))
	state := eval[string](t, b, fmt.Sprintf(`document.querySelector('#members tr[data-member=%q]').dataset.state`, p2.Name))
	if state != "dead" && state != "left" {
		t.Errorf("%s shows as %q, want dead or left", p2.Name, state)
	}
	if ok := eval[string](t, b, `document.getElementById('status').dataset.ok`); ok != "true" {
		t.Errorf("status = %q (%s), want live: p0 still answers", ok, eval[string](t, b, `document.getElementById('status-text').textContent`))
	}
	b.screenshot(t, "p2-stopped")
	b.checkNoExceptions(t)
}

// syntheticNode exports the metrics the dashboard reads with values that follow one tick
// counter, so that every rate and ratio between two scrapes is known exactly.
type syntheticNode struct {
	ticks atomic.Int64

	routed, queries, poolServers, poolSize, lag, up, hits, misses *prometheus.Desc
}

func newSyntheticNode() *syntheticNode {
	return &syntheticNode{
		routed:      prometheus.NewDesc("shardwire_routed_total", "routed", []string{"group", "role"}, nil),
		queries:     prometheus.NewDesc("shardwire_query_duration_seconds", "queries", nil, nil),
		poolServers: prometheus.NewDesc("shardwire_pool_servers", "pool servers", []string{"endpoint", "database", "user", "state"}, nil),
		poolSize:    prometheus.NewDesc("shardwire_pool_size", "pool size", []string{"endpoint", "database", "user"}, nil),
		lag:         prometheus.NewDesc("shardwire_replica_lag_seconds", "lag", []string{"group", "endpoint"}, nil),
		up:          prometheus.NewDesc("shardwire_endpoint_up", "up", []string{"group", "endpoint", "role"}, nil),
		hits:        prometheus.NewDesc("shardwire_cache_hits_total", "hits", []string{"layer"}, nil),
		misses:      prometheus.NewDesc("shardwire_cache_misses_total", "misses", nil, nil),
	}
}

func (s *syntheticNode) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(s, ch) }

// Collect exports, after n ticks: n routed to g0's writer and 3n to g1's replicas; n
// queries of 3 ms each; pools at 3 of 10 and 10 of 10; replicas 250 ms and 2.5 s behind;
// cache hits 3n in l1 and n in l2 with n misses.
func (s *syntheticNode) Collect(ch chan<- prometheus.Metric) {
	n := float64(s.ticks.Load())
	ch <- prometheus.MustNewConstMetric(s.routed, prometheus.CounterValue, n, "g0", "writer")
	ch <- prometheus.MustNewConstMetric(s.routed, prometheus.CounterValue, 3*n, "g1", "replica")
	buckets := map[float64]uint64{}
	for le := 0.0001; le < 15; le *= 2 {
		if le >= 0.003 {
			buckets[le] = uint64(n)
		} else {
			buckets[le] = 0
		}
	}
	ch <- prometheus.MustNewConstHistogram(s.queries, uint64(n), 0.003*n, buckets)
	for _, p := range []struct {
		endpoint          string
		active, idle, max float64
	}{{"127.0.0.1:6001", 3, 2, 10}, {"127.0.0.1:6002", 10, 0, 10}} {
		ch <- prometheus.MustNewConstMetric(s.poolServers, prometheus.GaugeValue, p.active, p.endpoint, "app", "app", "active")
		ch <- prometheus.MustNewConstMetric(s.poolServers, prometheus.GaugeValue, p.idle, p.endpoint, "app", "app", "idle")
		ch <- prometheus.MustNewConstMetric(s.poolSize, prometheus.GaugeValue, p.max, p.endpoint, "app", "app")
	}
	ch <- prometheus.MustNewConstMetric(s.lag, prometheus.GaugeValue, 0, "g0", "127.0.0.1:6001")
	ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, 1, "g0", "127.0.0.1:6001", "writer")
	ch <- prometheus.MustNewConstMetric(s.lag, prometheus.GaugeValue, 0.25, "g0", "127.0.0.1:6002")
	ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, 1, "g0", "127.0.0.1:6002", "replica")
	ch <- prometheus.MustNewConstMetric(s.lag, prometheus.GaugeValue, 2.5, "g1", "127.0.0.1:6003")
	ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, 1, "g1", "127.0.0.1:6003", "replica")
	ch <- prometheus.MustNewConstMetric(s.hits, prometheus.CounterValue, 3*n, "l1")
	ch <- prometheus.MustNewConstMetric(s.hits, prometheus.CounterValue, n, "l2")
	ch <- prometheus.MustNewConstMetric(s.misses, prometheus.CounterValue, n)
}

// TestDashboardWithoutAPI serves the admin routes without the API, with synthetic metrics:
// the page says the API is off and computes rates, percentiles, lag, pool saturation and
// cache hit rates from the metrics alone.
func TestDashboardWithoutAPI(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := newSyntheticNode()
	reg := prometheus.NewRegistry()
	reg.MustRegister(node)
	srv := httptest.NewServer(admin.New(admin.Config{}, zap.NewNop(), reg, nil).Handler())
	defer srv.Close()
	tickCtx, stopTicks := context.WithCancel(ctx)
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tickCtx.Done():
				return
			case <-tick.C:
				node.ticks.Add(1)
			}
		}
	}()
	defer func() {
		stopTicks()
		<-ticking
	}()

	b := newBrowser(t, ctx)
	b.open(t, srv.URL+"/")
	b.waitFor(t, "that the API is off", `document.body.dataset.api === 'off' &&
		!document.getElementById('notice').hidden &&
		document.getElementById('notice').textContent.includes('admin API is not enabled')`)

	// Percentiles: every query took 3 ms, inside the (1.6 ms, 3.2 ms] bucket, so the
	// estimates interpolate to 1.6 ms + q × 1.6 ms whatever the count.
	b.waitFor(t, "latency percentiles", `(() => {
		const row = document.querySelector('#latency tbody tr');
		if (!row) return false;
		const cells = [...row.querySelectorAll('td')].map((e) => e.textContent);
		return cells[0] === 'all queries' && cells[2] === '2.40 ms' && cells[3] === '3.12 ms' && cells[4] === '3.18 ms';
	})()`)
	if scope := eval[string](t, b, `document.getElementById('latency-scope').textContent`); !strings.HasPrefix(scope, "node-wide") {
		t.Errorf("latency scope = %q, want node-wide (the histogram has no group label)", scope)
	}
	// Throughput: g1 routes three times what g0 does, both positive.
	b.waitFor(t, "throughput of g0 and g1", `(() => {
		const rate = (g) => Number(document.querySelector('#throughput tr[data-group="' + g + '"] td[data-rate]')?.dataset.rate);
		return rate('g0') > 0 && Math.abs(rate('g1') / rate('g0') - 3) < 1e-6;
	})()`)
	// Cache: l1 answers 3 of 5 lookups, l2 1 of the 2 that reach it, all layers 4 of 5.
	b.waitFor(t, "cache hit rates", `(() => {
		const rows = [...document.querySelectorAll('#cache tbody tr')].map((r) => [...r.querySelectorAll('td')].map((e) => e.textContent));
		return rows.length === 3 && rows[0][2] === '60.0 %' && rows[1][2] === '50.0 %' && rows[2][2] === '80.0 %';
	})()`)
	summary := eval[string](t, b, `document.querySelector('#pools .summary').textContent`)
	if want := "13 of 20 server connections in use (65.0 %)"; summary != want {
		t.Errorf("pool summary = %q, want %q", summary, want)
	}
	full := eval[string](t, b, `document.querySelector('#pools tr[data-endpoint="127.0.0.1:6002"] .fill').className`)
	if !strings.Contains(full, "bad") {
		t.Errorf("a pool at its limit is drawn %q, want bad", full)
	}
	lags := eval[[]string](t, b, `[...document.querySelectorAll('#lag td[data-lag]')].map((e) => e.dataset.lag + ' ' + e.className)`)
	if want := []string{"0.25 num ok-text", "2.5 num bad-text"}; !slices.Equal(lags, want) {
		t.Errorf("replica lag cells = %q, want %q", lags, want)
	}

	// The parser reads what the exposition format allows: comments, escapes, specials and
	// timestamps; it skips malformed lines.
	parsed := eval[string](t, b, `JSON.stringify([...window.shardwireDashboard.parsePrometheus([
		'# HELP x_total a "help" line',
		'# TYPE x_total counter',
		'x_total{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 1.5e3 1700000000000',
		'y +Inf',
		'z{le="0.5"} -Inf',
		'broken{a="unterminated} 1',
		'nameonly',
		'  w 7  ',
	].join('\n'))].map(([name, list]) => [name, list.map((s) => [s.labels, String(s.value)])]))`)
	var got [][]any
	if err := json.Unmarshal([]byte(parsed), &got); err != nil {
		t.Fatalf("parser result %s: %v", parsed, err)
	}
	wantParsed := `[["x_total",[[{"a":"q\"uote","b":"back\\slash","c":"new\nline"},"1500"]]],["y",[[{},"Infinity"]]],["z",[[{"le":"0.5"},"-Infinity"]]],["w",[[{},"7"]]]]`
	if parsed != wantParsed {
		t.Errorf("parsePrometheus =\n%s\nwant\n%s", parsed, wantParsed)
	}
	quantiles := eval[[]float64](t, b, `(() => {
		const b = [{le: 0.1, count: 10}, {le: 0.2, count: 30}, {le: Infinity, count: 40}];
		const q = window.shardwireDashboard.quantile;
		return [q(0.25, b), q(0.5, b), q(0.99, b), q(0.5, [{le: Infinity, count: 0}]) || -1];
	})()`)
	if want := []float64{0.1, 0.15, 0.2, -1}; !floatsNear(quantiles, want) {
		t.Errorf("quantile = %v, want %v", quantiles, want)
	}
	b.screenshot(t, "metrics-only")
	b.checkNoExceptions(t)
	if err := ctx.Err(); err != nil {
		t.Fatal(errors.Join(errors.New("test ran out of time"), err))
	}
}

func floatsNear(got, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if d := got[i] - want[i]; d > 1e-9 || d < -1e-9 {
			return false
		}
	}
	return true
}
