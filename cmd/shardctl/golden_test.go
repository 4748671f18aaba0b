package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/devcluster"
	"github.com/shardwire/shardwire/internal/pgtest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// settleTimeout bounds each wait for the live cluster to agree on an epoch.
const settleTimeout = 30 * time.Second

// goldenStep is one shardctl run whose scrubbed output is compared with testdata/<name>.golden.
type goldenStep struct {
	name     string
	args     []string
	wantExit int
	// table: stdout is aligned tables, to realign after scrubbing (not for JSON).
	table bool
	// settle: after the run, wait until every node serves the next epoch.
	settle bool
}

// TestGoldenLiveCluster runs shardctl against a live three-node cluster with two groups of a
// writer and a replica, and compares each output with its golden file.
func TestGoldenLiveCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Dir "": Postgres gets a temporary directory it can reach (tests may run as root while
	// Postgres runs as another user, who cannot enter t.TempDir()), removed by Stop.
	dc, err := devcluster.Start(ctx, devcluster.Options{Groups: 2, Replicas: 1, Proxies: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dc.Stop(); err != nil {
			t.Errorf("stop the dev cluster: %v", err)
		}
	})
	extra := pgtest.New(t, pgtest.Options{Groups: 1})
	closed := closedAddr(t)

	sc := newScrubber()
	for _, n := range dc.Nodes {
		sc.name(n.Addr, "<"+n.Name+"-pg>")
		sc.name(n.Admin, "<"+n.Name+"-admin>")
	}
	for _, g := range dc.PG.Groups {
		sc.name(g.Writer.Addr(), "<"+g.Name+"-writer>")
		for i, r := range g.Replicas {
			sc.name(r.Addr(), fmt.Sprintf("<%s-replica%d>", g.Name, i+1))
		}
	}
	sc.name(extra.Groups[0].Writer.Addr(), "<new-writer>")
	sc.name(closed, "<closed>")

	p0, p1 := dc.Nodes[0].Admin, dc.Nodes[1].Admin
	epoch := settle(ctx, t, dc, -1)

	steps := []goldenStep{
		{name: "status", args: []string{"--admin", p0, "status"}, table: true},
		{name: "map", args: []string{"--admin", p0, "map"}, table: true},
		{name: "map_json", args: []string{"--admin", p0, "map", "--json"}},
		{name: "group_add", args: []string{"--admin", p0, "group", "add", "g2", "--region", "eu-west-1",
			"--writer", extra.Groups[0].Writer.AppDSN()}, table: true, settle: true},
		// Another node serves the new epoch and health-checks the new group's writer.
		{name: "status_after_add", args: []string{"--admin", p1, "status"}, table: true},
		{name: "group_add_exists", args: []string{"--admin", p1, "group", "add", "g2", "--region", "eu-west-1",
			"--writer", extra.Groups[0].Writer.AppDSN()}, wantExit: 1},
		{name: "group_remove", args: []string{"--admin", p1, "group", "remove", "g2"}, settle: true},
		{name: "map_after_remove", args: []string{"--admin", p0, "map"}, table: true},
		{name: "group_remove_owns_shards", args: []string{"--admin", p0, "group", "remove", "g1"}, wantExit: 1},
		{name: "group_remove_default", args: []string{"--admin", p0, "group", "remove", "g0"}, wantExit: 1},
		{name: "group_remove_unknown", args: []string{"--admin", p0, "group", "remove", "nope"}, wantExit: 1},
		{name: "group_add_writer_down", args: []string{"--admin", p0, "group", "add", "g3", "--region", "eu-west-1",
			"--writer", "postgres://app@" + closed + "/app"}, wantExit: 1},
		{name: "group_add_invalid_dsn", args: []string{"--admin", p0, "group", "add", "g3", "--region", "eu-west-1",
			"--writer", "postgres://app:secret@127.0.0.1:notaport/app"}, wantExit: 1},
		{name: "status_unreachable", args: []string{"--admin", closed, "status"}, wantExit: 1},
	}
	for _, st := range steps {
		// Subtests run in order: each step sees the map the previous ones left.
		if !t.Run(st.name, func(t *testing.T) { runGoldenStep(ctx, t, sc, st) }) {
			t.FailNow()
		}
		if st.settle {
			// The epoch the command published reaches every node within 1 s.
			loaded := time.Now()
			for _, n := range dc.Nodes {
				servesEpoch(ctx, t, n.Admin, epoch+1, time.Second-time.Since(loaded))
			}
			epoch = settle(ctx, t, dc, epoch+1)
		}
	}
}

// servesEpoch fails the test unless the node at addr serves the map of epoch want within d.
func servesEpoch(ctx context.Context, t *testing.T, addr string, want int64, d time.Duration) {
	t.Helper()
	c, err := admin.NewClient(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(d)
	for {
		m, err := c.ShardMap(ctx)
		if err == nil && m.Epoch == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s does not serve epoch %d within 1 s of the change (map %+v, err %v)", addr, want, m.Epoch, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runGoldenStep runs one step and compares (or, with -update, writes) its golden file.
func runGoldenStep(ctx context.Context, t *testing.T, sc *scrubber, st goldenStep) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, st.args, &stdout, &stderr)
	head := fmt.Sprintf("$ shardctl %s\nexit %d\n", strings.Join(st.args, " "), code)
	raw := head + "--- stdout\n" + stdout.String() + "--- stderr\n" + stderr.String()
	// Scrubbed in reading order, so that unknown addresses are numbered as a reader meets
	// them; only stdout holds tables to realign.
	got := sc.scrub(head, false) + "--- stdout\n" + sc.scrub(stdout.String(), st.table) +
		"--- stderr\n" + sc.scrub(stderr.String(), false)
	if code != st.wantExit {
		t.Errorf("exit %d, want %d; raw output:\n%s", code, st.wantExit, raw)
	}
	path := filepath.Join("testdata", st.name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s\ngot:\n%s\nwant:\n%s\nraw:\n%s", path, got, want, raw)
	}
}

// settle waits until every node lists all nodes alive, ready and leased at the same epoch
// (want, or any common one when want < 0), serves that epoch's map, and sees every endpoint
// of it up, unbanned, with each replica's lag known. It returns the epoch.
func settle(ctx context.Context, t *testing.T, dc *devcluster.Cluster, want int64) int64 {
	t.Helper()
	clients := make([]*admin.Client, len(dc.Nodes))
	for i, n := range dc.Nodes {
		c, err := admin.NewClient(n.Admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		epoch, why := settled(ctx, clients, len(dc.Nodes), want)
		if why == "" {
			return epoch
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not settle within %v: %s", settleTimeout, why)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the cluster did not settle: %v (last: %s)", ctx.Err(), why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// settled checks the condition of settle once; why says what is missing, "" when nothing is.
func settled(ctx context.Context, clients []*admin.Client, nodes int, want int64) (epoch int64, why string) {
	epoch = want
	for _, c := range clients {
		st, err := c.Cluster(ctx)
		if err != nil {
			return 0, err.Error()
		}
		v, err := c.ShardMap(ctx)
		if err != nil {
			return 0, err.Error()
		}
		if epoch < 0 {
			epoch = v.Epoch
		}
		if v.Epoch != epoch {
			return 0, fmt.Sprintf("node %s serves epoch %d, want %d", st.Node, v.Epoch, epoch)
		}
		if len(st.Members) != nodes {
			return 0, fmt.Sprintf("node %s lists %d members, want %d", st.Node, len(st.Members), nodes)
		}
		for _, m := range st.Members {
			if m.State != "alive" || !m.Ready || !m.LeaseOK || m.Epoch != epoch {
				return 0, fmt.Sprintf("node %s sees member %s %s, ready %v, lease %v, epoch %d; want alive, ready, leased at %d",
					st.Node, m.Name, m.State, m.Ready, m.LeaseOK, m.Epoch, epoch)
			}
		}
		var endpoints []string
		for _, e := range st.Endpoints {
			if !e.Up || e.Banned || (e.Role == "replica" && e.LagSeconds == nil) {
				return 0, fmt.Sprintf("node %s sees %s %s of %s up %v, banned %v, lag known %v",
					st.Node, e.Role, e.Addr, e.Group, e.Up, e.Banned, e.LagSeconds != nil)
			}
			endpoints = append(endpoints, e.Group+" "+e.Addr)
		}
		for _, g := range v.Groups {
			for _, addr := range append([]string{g.Writer}, g.Replicas...) {
				if !slices.Contains(endpoints, g.Name+" "+addr) {
					return 0, fmt.Sprintf("node %s does not health-check %s of group %s yet", st.Node, addr, g.Name)
				}
			}
		}
		if len(endpoints) != len(v.Groups)+countReplicas(v.Groups) {
			return 0, fmt.Sprintf("node %s health-checks %d endpoints, its map has %d", st.Node, len(endpoints), len(v.Groups)+countReplicas(v.Groups))
		}
	}
	return epoch, ""
}

func countReplicas(groups []admin.GroupView) int {
	n := 0
	for _, g := range groups {
		n += len(g.Replicas)
	}
	return n
}

// closedAddr returns a loopback address nothing listens on: a port that was just free.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
