package proxy

import (
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
