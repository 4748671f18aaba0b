package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// pgbenchDuration is how long each pgbench run lasts (acceptance: 20 s).
var pgbenchDuration = envDuration("SHARDWIRE_PGBENCH_SECONDS", 20*time.Second)

// runPgbench runs pgbench against host:port as app and returns its output.
func runPgbench(t *testing.T, addr string, args ...string) string {
	t.Helper()
	return runPgbenchOn(t, addr, pgtest.Database, args...)
}

// runPgbenchOn runs pgbench against a database at host:port as app and returns its output.
func runPgbenchOn(t *testing.T, addr, database string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	full := append([]string{"-h", host, "-p", port, "-U", pgtest.User, "-n"}, args...)
	full = append(full, database)
	cmd := exec.Command("pgbench", full...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pgtest.Password, "PGSSLMODE=disable", "PGAPPNAME=pgbench")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
	return string(out)
}

var (
	failedRE = regexp.MustCompile(`number of failed transactions: (\d+)`)
	tpsRE    = regexp.MustCompile(`tps = ([0-9.]+)`)
	doneRE   = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
)

// TestPgbenchThroughProxy is acceptance 1: 64 clients on a pool of 10, select-only and TPC-B,
// in every query mode, with zero failed transactions and balanced sums afterwards.
func TestPgbenchThroughProxy(t *testing.T) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		t.Fatal("pgbench is not installed: run scripts/deps.sh")
	}
	p := startProxy(t, func(c *config.Config) {
		c.Pool.DefaultPoolSize = 10
		c.MaxClientConn = 200
	})
	// Load the tables directly on the writer; the runs go through the proxy.
	init := exec.Command("pgbench", "-i", "-s", "4", "-q", "-h", "127.0.0.1", "-p",
		strconv.Itoa(p.cluster.Groups[0].Writer.Port), "-U", pgtest.User, pgtest.Database)
	init.Env = append(os.Environ(), "PGPASSWORD="+pgtest.Password)
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	secs := strconv.Itoa(int(pgbenchDuration.Seconds()))
	for _, script := range []string{"select-only", "tpcb-like"} {
		for _, mode := range []string{"simple", "extended", "prepared"} {
			t.Run(script+"/"+mode, func(t *testing.T) {
				out := runPgbench(t, p.addr, "-b", script, "-M", mode, "-c", "64", "-j", "4", "-T", secs)
				failed := failedRE.FindStringSubmatch(out)
				done := doneRE.FindStringSubmatch(out)
				if failed == nil || failed[1] != "0" || done == nil || done[1] == "0" {
					t.Fatalf("pgbench reported failures or no work:\n%s", out)
				}
				tps := tpsRE.FindStringSubmatch(out)
				t.Logf("%s %s: %s transactions, tps %s", script, mode, done[1], tps[1])
			})
		}
	}
	// Every TPC-B transaction adds the same delta to one account, teller and branch and
	// records it in history: the four sums must agree.
	assertPgbenchBalanced(t, connect(t, p.dsn("")))
	st := p.srv.PoolStats()[0]
	if st.Opened > uint64(st.Size) {
		t.Errorf("pool opened %d server connections, limit %d", st.Opened, st.Size)
	}
	t.Log(fmt.Sprintf("pool: %+v", st))
}

// assertPgbenchBalanced checks what TPC-B keeps: every transaction adds the same delta to one
// account, teller and branch and records it in history, so the four sums agree (and some
// transaction changed them).
func assertPgbenchBalanced(t *testing.T, c *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var a, tb, b, h int64
	err := c.QueryRow(ctx, `select (select coalesce(sum(abalance),0) from pgbench_accounts),
		(select coalesce(sum(tbalance),0) from pgbench_tellers),
		(select coalesce(sum(bbalance),0) from pgbench_branches),
		(select coalesce(sum(delta),0) from pgbench_history)`).Scan(&a, &tb, &b, &h)
	if err != nil {
		t.Fatal(err)
	}
	if a != tb || tb != b || b != h || h == 0 {
		t.Fatalf("balances disagree or nothing ran: accounts %d tellers %d branches %d history %d", a, tb, b, h)
	}
}
