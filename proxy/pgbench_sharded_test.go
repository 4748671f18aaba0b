package proxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// TestPgbenchSharded is routing acceptance 5: pgbench -S with pgbench_accounts sharded by aid
// over 4 groups (loaded group by group), and TPC-B with the pgbench tables on the default
// group, both through the proxy with zero failed transactions.
func TestPgbenchSharded(t *testing.T) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		t.Fatal("pgbench is not installed: run scripts/deps.sh")
	}
	sharded := startShardedProxy(t, 4, 1, func(c *config.Config) {
		c.Sharding.Tables = []config.ShardedTable{{Name: "pgbench_accounts", Column: "aid"}}
	})
	cl := sharded.cluster
	secs := strconv.Itoa(int(min(pgbenchDuration, 10*time.Second).Seconds()))

	// Each group gets the pgbench tables with only the accounts of the shards it owns.
	const scale, accounts = 2, 200_000
	m := sharded.srv.topo.store.Current()
	for gi, g := range cl.Groups {
		super := connect(t, g.Writer.SuperDSN("postgres"))
		execAll(t, super, "CREATE DATABASE bench OWNER "+pgtest.User)
		init := exec.Command("pgbench", "-i", "-s", strconv.Itoa(scale), "-q", "-h", "127.0.0.1", "-p",
			strconv.Itoa(g.Writer.Port), "-U", pgtest.User, "bench")
		init.Env = append(os.Environ(), "PGPASSWORD="+pgtest.Password)
		if out, err := init.CombinedOutput(); err != nil {
			t.Fatalf("pgbench -i on %s: %v\n%s", g.Name, err, out)
		}
		var owned []string
		for _, sh := range m.OwnedBy(gi).Shards() {
			owned = append(owned, strconv.Itoa(int(sh)))
		}
		w := connect(t, strings.Replace(g.Writer.AppDSN(), "/"+pgtest.Database+"?", "/bench?", 1))
		execAll(t, w, fmt.Sprintf("DELETE FROM pgbench_accounts WHERE aid %% 16 <> ALL('{%s}'::int[])", strings.Join(owned, ",")))
	}
	sharded.waitReplicasCaughtUp(t)

	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run("select-only/"+mode, func(t *testing.T) {
			out := runPgbenchOn(t, sharded.addr, "bench", "-b", "select-only", "-M", mode, "-c", "16", "-j", "2", "-T", secs)
			expectPgbenchClean(t, out)
		})
	}
	// The routed and scattered views of the sharded table are whole.
	c := connect(t, strings.Replace(sharded.dsn(""), "/"+pgtest.Database+"?", "/bench?", 1))
	if n := mustQueryInt(t, c, "SELECT count(*) FROM pgbench_accounts"); n != accounts {
		t.Errorf("scattered count(*) = %d, want %d", n, accounts)
	}
	for _, aid := range []int64{1, 16, 12345, accounts} {
		if n := mustQueryInt(t, c, "SELECT count(*) FROM pgbench_accounts WHERE aid = $1", aid); n != 1 {
			t.Errorf("aid %d (shard %d): %d rows", aid, shardmap.ShardOf(aid), n)
		}
	}

	// TPC-B with every pgbench table unsharded: a second proxy without the aid rule, on its
	// own database, loaded through the proxy.
	unsharded := startProxyFor(t, cl, func(c *config.Config) {
		c.Groups = nil
		for i, g := range cl.Groups {
			c.Groups = append(c.Groups, config.Group{Name: g.Name, Region: testRegions[i], Writer: g.Writer.Addr(),
				Replicas: []string{g.Replicas[0].Addr()}})
		}
	})
	super := connect(t, cl.Groups[0].Writer.SuperDSN("postgres"))
	execAll(t, super, "CREATE DATABASE tpcb OWNER "+pgtest.User)
	runPgbenchOn(t, unsharded.addr, "tpcb", "-i", "-s", "1", "-q")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run("tpcb-like/"+mode, func(t *testing.T) {
			out := runPgbenchOn(t, unsharded.addr, "tpcb", "-b", "tpcb-like", "-M", mode, "-c", "16", "-j", "2", "-T", secs)
			expectPgbenchClean(t, out)
		})
	}
	assertPgbenchBalanced(t, connect(t, strings.Replace(unsharded.dsn(""), "/"+pgtest.Database+"?", "/tpcb?", 1)))
}

// expectPgbenchClean fails the test unless pgbench processed transactions and none failed.
func expectPgbenchClean(t *testing.T, out string) {
	t.Helper()
	failed := failedRE.FindStringSubmatch(out)
	done := doneRE.FindStringSubmatch(out)
	if failed == nil || failed[1] != "0" || done == nil || done[1] == "0" {
		t.Fatalf("pgbench reported failures or no work:\n%s", out)
	}
	t.Logf("%s transactions, tps %s", done[1], tpsRE.FindStringSubmatch(out)[1])
}

// TestPgbenchInitSharded is cross-group acceptance 1: pgbench -i -s 10 through the proxy with
// every pgbench table sharded by its own key (accounts by aid, branches by bid, tellers by tid,
// history by aid) over 4 groups, in the database's two-phase-committed transaction; then
// select-only and TPC-B (whose transactions span groups) with zero failed transactions and
// sums that agree across the groups.
func TestPgbenchInitSharded(t *testing.T) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		t.Fatal("pgbench is not installed: run scripts/deps.sh")
	}
	cl := pgtest.New(t, pgtest.Options{Groups: 4})
	for _, g := range cl.Groups {
		super := connect(t, g.Writer.SuperDSN("postgres"))
		execAll(t, super, "CREATE DATABASE bench OWNER "+pgtest.User)
	}
	p := startCatalogProxy(t, cl, []config.Database{{Name: "bench", TwoPhaseCommit: true}, {Name: pgtest.Database}}, func(c *config.Config) {
		c.Sharding.Tables = []config.ShardedTable{{Name: "pgbench_accounts", Column: "aid"}, {Name: "pgbench_branches", Column: "bid"},
			{Name: "pgbench_tellers", Column: "tid"}, {Name: "pgbench_history", Column: "aid"}}
	})
	const scale = 10
	runPgbenchOn(t, p.addr, "bench", "-i", "-s", strconv.Itoa(scale), "-q")

	m := p.srv.topo.store.Current()
	keys := map[string]string{"pgbench_accounts": "aid", "pgbench_branches": "bid", "pgbench_tellers": "tid"}
	wantRows := map[string]int64{"pgbench_accounts": scale * 100_000, "pgbench_branches": scale, "pgbench_tellers": scale * 10}
	// sums returns, over every group's writer, the rows of each table, those on a group not
	// owning them, and the balance sums.
	sums := func() (rows, wrong map[string]int64, sum [4]int64) {
		rows, wrong = map[string]int64{}, map[string]int64{}
		for gi, g := range cl.Groups {
			w := connect(t, strings.Replace(g.Writer.AppDSN(), "/"+pgtest.Database+"?", "/bench?", 1))
			var owned []string
			for _, sh := range m.OwnedBy(gi).Shards() {
				owned = append(owned, strconv.Itoa(int(sh)))
			}
			for table, key := range keys {
				rows[table] += mustQueryInt(t, w, "SELECT count(*) FROM "+table)
				wrong[table] += mustQueryInt(t, w, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s %% 16 <> ALL('{%s}'::int[])", table, key, strings.Join(owned, ",")))
			}
			for i, q := range []string{"SELECT coalesce(sum(abalance),0) FROM pgbench_accounts", "SELECT coalesce(sum(tbalance),0) FROM pgbench_tellers",
				"SELECT coalesce(sum(bbalance),0) FROM pgbench_branches", "SELECT coalesce(sum(delta),0) FROM pgbench_history"} {
				sum[i] += mustQueryInt(t, w, q)
			}
			if n := mustQueryInt(t, w, "SELECT count(*) FROM pg_prepared_xacts"); n != 0 {
				t.Errorf("%s: %d prepared transactions left", g.Name, n)
			}
			w.Close(context.Background())
		}
		return rows, wrong, sum
	}
	rows, wrong, _ := sums()
	for table, want := range wantRows {
		if rows[table] != want || wrong[table] != 0 {
			t.Fatalf("%s after pgbench -i: %d rows (want %d), %d on a group not owning them", table, rows[table], want, wrong[table])
		}
	}
	secs := strconv.Itoa(int(min(pgbenchDuration, 8*time.Second).Seconds()))
	out := runPgbenchOn(t, p.addr, "bench", "-b", "select-only", "-M", "prepared", "-c", "8", "-j", "2", "-T", secs)
	expectPgbenchClean(t, out)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run("tpcb-like/"+mode, func(t *testing.T) {
			out := runPgbenchOn(t, p.addr, "bench", "-b", "tpcb-like", "-M", mode, "-c", "8", "-j", "2", "-T", secs)
			expectPgbenchClean(t, out)
		})
	}
	_, wrong, sum := sums()
	if sum[0] != sum[1] || sum[1] != sum[2] || sum[2] != sum[3] || sum[3] == 0 {
		t.Fatalf("balances disagree across groups or nothing ran: accounts %d tellers %d branches %d history %d", sum[0], sum[1], sum[2], sum[3])
	}
	for table, n := range wrong {
		if n != 0 {
			t.Errorf("%s: %d rows on a group not owning them after TPC-B", table, n)
		}
	}
}
