package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/proxy"
	"github.com/shardwire/shardwire/shardmap"
)

// crashNode runs the shardwire binary as a child process, as a node that may be killed.
type crashNode struct {
	cmd    *exec.Cmd
	done   chan error
	log    *os.File
	exited bool
}

func startCrashNode(t *testing.T, bin, cfgPath, logPath, crashAt string) *crashNode {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = os.Environ()
	if crashAt != "" {
		cmd.Env = append(cmd.Env, crashAtEnv+"="+crashAt)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &crashNode{cmd: cmd, done: make(chan error, 1), log: lf}
	go func() { n.done <- cmd.Wait() }()
	t.Cleanup(n.stop)
	return n
}

// exit waits up to d for the node to end by itself and returns how it ended.
func (n *crashNode) exit(d time.Duration) (error, bool) {
	select {
	case err := <-n.done:
		n.exited = true
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// stop kills the node if it still runs.
func (n *crashNode) stop() {
	if !n.exited {
		_ = n.cmd.Process.Kill()
		<-n.done
		n.exited = true
	}
	_ = n.log.Close()
}

// freeAddr returns a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestTwoPhaseCrashRecovery is cross-group acceptance 3: the node coordinating a transaction
// over four groups is killed (SIGKILL) at each step of its two-phase commit in turn; after a
// restart the transaction is on all its groups or on none — on all once the commit decision
// was recorded — and no group keeps a prepared transaction past recovery.
func TestTwoPhaseCrashRecovery(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{Groups: 4})
	dir, err := os.MkdirTemp("", "twopc-crash-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "shardwire")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	const abortAfter = 30 * time.Second // longer than the test: an earlier process's transactions must be recognised as dead
	cfg := config.Default()
	cfg.NodeName = "c0"
	cfg.Listen = freeAddr(t)
	cfg.AdminListen = ""
	cfg.Users = []config.User{{Name: pgtest.User, Password: pgtest.Password}}
	for _, g := range cl.Groups {
		cfg.Groups = append(cfg.Groups, config.Group{Name: g.Name, Region: "r1", Writer: g.Writer.Addr()})
	}
	cfg.Region = "r1"
	cfg.Catalog.DSN = cl.Groups[0].Writer.AppDSN()
	cfg.Databases = []config.Database{{Name: pgtest.Database, TwoPhaseCommit: true}}
	cfg.TwoPhase.RecoveryInterval = config.Duration(200 * time.Millisecond)
	cfg.TwoPhase.AbortAfter = config.Duration(abortAfter)
	cfg.TwoPhase.Retention = config.Duration(5 * time.Second)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := shardmap.FromConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	// One customer per group.
	var customers []int64
	seen := map[int]bool{}
	for c := int64(1); len(customers) < len(cl.Groups); c++ {
		if g := int(m.Owner[shardmap.ShardOf(c)]); !seen[g] {
			seen[g] = true
			customers = append(customers, c)
		}
	}
	ctx := context.Background()
	writers := make([]*pgx.Conn, len(cl.Groups))
	for i, g := range cl.Groups {
		writers[i] = pgtest.Connect(t, g.Writer.AppDSN())
		if _, err := writers[i].Exec(ctx, "CREATE TABLE crash (customer_id bigint NOT NULL, step text NOT NULL)"); err != nil {
			t.Fatal(err)
		}
	}
	dsn := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=5", pgtest.User, pgtest.Password, cfg.Listen, pgtest.Database)
	waitUp := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := pgx.Connect(ctx, dsn)
			if err == nil {
				c.Close(ctx)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node did not come up: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// state returns how many groups hold the step's rows and how many shardwire prepared
	// transactions all groups have.
	state := func(step string) (groups, prepared int) {
		t.Helper()
		for _, w := range writers {
			var n, p int
			if err := w.QueryRow(ctx, "SELECT (SELECT count(*) FROM crash WHERE step = $1), (SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'shardwire:%')", step).Scan(&n, &p); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				groups++
			}
			prepared += p
		}
		return groups, prepared
	}

	steps := []struct {
		step      string
		committed bool // the decision was recorded before the crash
	}{
		{proxy.StepBeforePrepare, false},
		{proxy.StepBetweenPrepares, false},
		{proxy.StepAfterDecision, true},
		{proxy.StepBetweenCommits, true},
	}
	for _, st := range steps {
		t.Run(st.step, func(t *testing.T) {
			logPath := filepath.Join(dir, "node-"+st.step+".log")
			node := startCrashNode(t, bin, cfgPath, logPath, st.step)
			waitUp()
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, cu := range customers {
				if _, err := tx.Exec(ctx, "INSERT INTO crash VALUES ($1, $2)", cu, st.step); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err == nil {
				t.Fatalf("COMMIT succeeded although the node was to die at %s", st.step)
			}
			err, ended := node.exit(10 * time.Second)
			if !ended {
				t.Fatal("the node did not die at its crash step")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !strings.Contains(ee.Error(), "killed") {
				t.Fatalf("node ended with %v, want killed", err)
			}
			groups, prepared := state(st.step)
			t.Logf("after the crash at %s: rows on %d groups, %d prepared transactions", st.step, groups, prepared)

			restarted := startCrashNode(t, bin, cfgPath, logPath, "")
			waitUp()
			start := time.Now()
			for {
				groups, prepared = state(st.step)
				if prepared == 0 && (groups == 0 || groups == len(customers)) {
					break
				}
				if time.Since(start) > 3*time.Second {
					t.Fatalf("not resolved after %s: rows on %d of %d groups, %d prepared transactions", time.Since(start).Round(time.Millisecond), groups, len(customers), prepared)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("resolved %s after the restart", time.Since(start).Round(time.Millisecond))
			if st.committed && groups != len(customers) {
				t.Fatalf("the commit decision was recorded but the rows are on %d of %d groups", groups, len(customers))
			}
			if !st.committed && groups != 0 {
				t.Fatalf("no commit decision was recorded but rows are on %d groups", groups)
			}
			restarted.stop()
		})
	}
}
