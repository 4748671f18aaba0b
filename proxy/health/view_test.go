package health

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardwire/shardwire/shardmap"
)

// These tests drive the checker with made-up check results (no server): the decisions they
// check are the ones the real checks feed.

func writerAnswer(lsn uint64, timeline uint32) probeResult {
	return probeResult{lsn: lsn, insertLSN: lsn, timeline: timeline}
}

func replicaAnswer(lsn uint64, age time.Duration) probeResult {
	return probeResult{inRecovery: true, lsn: lsn, receiveLSN: lsn, replayAge: age, hasReplayAge: true}
}

func failure() probeResult { return probeResult{err: errors.New("connection refused")} }

// feed records res as the result of a check of addr in group that just ran.
func feed(t *testing.T, c *Checker, group, addr string, res probeResult) {
	t.Helper()
	for _, ep := range c.top.Load().byAddr[addr] {
		if ep.group.name == group {
			res.start = time.Now()
			res.end = res.start.Add(time.Millisecond)
			c.record(ep, res)
			return
		}
	}
	t.Fatalf("no endpoint %s in group %s", addr, group)
}

func targets(c *Checker, group string, minLSN uint64) []string {
	return c.ReadTargets(group, minLSN, nil)
}

func wantTargets(t *testing.T, c *Checker, group string, minLSN uint64, want ...string) {
	t.Helper()
	if got := targets(c, group, minLSN); !slices.Equal(got, want) {
		t.Errorf("ReadTargets(%s, %#x) = %v, want %v", group, minLSN, got, want)
	}
}

func testChecker(t *testing.T, reg prometheus.Registerer, groups ...shardmap.Group) *Checker {
	t.Helper()
	c := New(Config{Region: "east", MaxReplicaLag: time.Second, BanTime: time.Hour, MaxBanTime: time.Hour, User: "u"}, nil, reg)
	c.SetGroups(groups)
	t.Cleanup(c.Close)
	return c
}

var g0 = shardmap.Group{Name: "g0", Region: "east", Writer: "w:1", Replicas: []string{"r1:1", "r2:1", "r3:1"}}

func TestBeforeAnyCheck(t *testing.T) {
	c := testChecker(t, nil, g0)
	if got := c.Writer("g0"); got != "w:1" {
		t.Errorf("Writer = %q, want the configured writer", got)
	}
	wantTargets(t, c, "g0", 0, "w:1")
	if _, ok := c.WriterLSNAfter("g0", time.Time{}); ok {
		t.Error("WriterLSNAfter ok before any check")
	}
	if got := c.Writer("nope"); got != "" {
		t.Errorf("Writer(unknown) = %q", got)
	}
	if got := c.ReadTargets("nope", 0, []string{"x"}); !slices.Equal(got, []string{"x"}) {
		t.Errorf("ReadTargets(unknown) = %v, want dst unchanged", got)
	}
}

func TestReadTargetsOrderAndExclusions(t *testing.T) {
	c := testChecker(t, nil, g0)
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	feed(t, c, "g0", "r1:1", replicaAnswer(0x4F00, 300*time.Millisecond))
	feed(t, c, "g0", "r2:1", replicaAnswer(0x4F80, 100*time.Millisecond))
	feed(t, c, "g0", "r3:1", replicaAnswer(0x5000, time.Hour)) // caught up: no lag
	wantTargets(t, c, "g0", 0, "r3:1", "r2:1", "r1:1", "w:1")

	// Read-your-writes: only replicas that replayed minLSN, and the writer.
	wantTargets(t, c, "g0", 0x4F80, "r3:1", "r2:1", "w:1")
	wantTargets(t, c, "g0", 0x5001, "w:1")

	// Lag over the bound excludes; so does being down.
	feed(t, c, "g0", "r2:1", replicaAnswer(0x4000, 2*time.Second))
	feed(t, c, "g0", "r3:1", failure())
	wantTargets(t, c, "g0", 0, "r1:1", "w:1")

	// The writer down: replicas only; everything down: the writer anyway.
	feed(t, c, "g0", "w:1", failure())
	wantTargets(t, c, "g0", 0, "r1:1")
	feed(t, c, "g0", "r1:1", failure())
	wantTargets(t, c, "g0", 0, "w:1")
}

func TestDivergedServerIsNoTarget(t *testing.T) {
	c := testChecker(t, nil, g0)
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	feed(t, c, "g0", "r1:1", replicaAnswer(0x5000, 0))
	feed(t, c, "g0", "r2:1", replicaAnswer(0x5000, 0))
	// r3 was never seen in recovery and claims to be a writer on the same timeline: the
	// current writer stays, and r3 (neither the writer nor a replica) gets no reads.
	feed(t, c, "g0", "r3:1", writerAnswer(0x6000, 1))
	if got := c.Writer("g0"); got != "w:1" {
		t.Errorf("Writer = %q, want w:1", got)
	}
	wantTargets(t, c, "g0", 0, "r1:1", "r2:1", "w:1")
}

func TestReadTargetsRegions(t *testing.T) {
	west := shardmap.Group{Name: "g1", Region: "west", Writer: "w:2", Replicas: []string{"r1:2", "r2:2"}}
	c := testChecker(t, nil, g0, west)
	for _, g := range []shardmap.Group{g0, west} {
		feed(t, c, g.Name, g.Writer, writerAnswer(0x9000, 1))
		for i, r := range g.Replicas {
			feed(t, c, g.Name, r, replicaAnswer(0x8000, time.Duration(i+1)*10*time.Millisecond))
		}
	}
	// Group regions: every replica of g1 is remote, but still preferred to the writer.
	wantTargets(t, c, "g1", 0, "r1:2", "r2:2", "w:2")

	// Per-endpoint regions: local replicas first (by lag), then remote ones, then the writer.
	c.mu.Lock()
	g := c.top.Load().groups["g0"]
	for _, ep := range g.endpoints {
		if ep.addr == "r1:1" || ep.addr == "r2:1" {
			ep.region = "west"
		}
	}
	c.publish(g)
	c.mu.Unlock()
	wantTargets(t, c, "g0", 0, "r3:1", "r1:1", "r2:1", "w:1")
}

func TestBanAndFallback(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testChecker(t, reg, g0)
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	for _, r := range g0.Replicas {
		feed(t, c, "g0", r, replicaAnswer(0x5000, 0))
	}
	c.Ban("r2:1", errors.New("read failed"))
	c.Ban("r2:1", errors.New("read failed")) // while banned: no new ban
	c.Ban("elsewhere:1", errors.New("read failed"))
	wantTargets(t, c, "g0", 0, "r1:1", "r3:1", "w:1")
	if got := metricValue(t, reg, "shardwire_endpoint_bans_total", "group", "g0", "endpoint", "r2:1"); got != 1 {
		t.Errorf("bans_total{r2} = %v, want 1", got)
	}
	c.Ban("w:1", nil)
	wantTargets(t, c, "g0", 0, "r1:1", "r3:1")
	c.Ban("r1:1", nil)
	c.Ban("r3:1", nil)
	wantTargets(t, c, "g0", 0, "w:1") // everything banned: the writer anyway
	if got := c.Writer("g0"); got != "w:1" {
		t.Errorf("Writer while banned = %q, want w:1", got)
	}
	for _, s := range c.Snapshot() {
		if s.BannedUntil.Before(time.Now().Add(59 * time.Minute)) {
			t.Errorf("%s: BannedUntil %v, want about an hour from now", s.Addr, s.BannedUntil)
		}
	}
}

func TestWriterLSNAfter(t *testing.T) {
	c := testChecker(t, nil, g0)
	before := time.Now()
	feed(t, c, "g0", "w:1", writerAnswer(0x1000, 1))
	mid := time.Now()
	feed(t, c, "g0", "w:1", writerAnswer(0x2000, 1))
	feed(t, c, "g0", "w:1", writerAnswer(0x3000, 1))
	if lsn, ok := c.WriterLSNAfter("g0", before); !ok || lsn != 0x1000 {
		t.Errorf("WriterLSNAfter(before) = %#x, %v; want 0x1000 (the earliest later check)", lsn, ok)
	}
	if lsn, ok := c.WriterLSNAfter("g0", mid); !ok || lsn != 0x2000 {
		t.Errorf("WriterLSNAfter(mid) = %#x, %v; want 0x2000", lsn, ok)
	}
	if _, ok := c.WriterLSNAfter("g0", time.Now()); ok {
		t.Error("WriterLSNAfter(now) ok before any later check")
	}
	// Replica checks do not count.
	feed(t, c, "g0", "r1:1", replicaAnswer(0x4000, 0))
	if _, ok := c.WriterLSNAfter("g0", time.Now().Add(-time.Microsecond)); ok {
		t.Error("a replica's check answered WriterLSNAfter")
	}
}

func TestPromotionAndSplitBrain(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testChecker(t, reg, g0)
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	feed(t, c, "g0", "r1:1", replicaAnswer(0x5000, 0))
	feed(t, c, "g0", "r2:1", replicaAnswer(0x5000, 0))
	if n := seriesCount(t, reg, "shardwire_writer_changes_total"); n != 0 {
		t.Errorf("writer_changes has %d series before any change", n)
	}
	// r1 is promoted while w still runs: the higher timeline wins.
	feed(t, c, "g0", "r1:1", writerAnswer(0x5100, 2))
	if got := c.Writer("g0"); got != "r1:1" {
		t.Fatalf("Writer = %q after r1's promotion, want r1:1", got)
	}
	if _, ok := c.WriterLSNAfter("g0", time.Time{}); !ok {
		t.Error("no LSN from the new writer's check")
	}
	// The old writer answering again does not take the role back.
	feed(t, c, "g0", "w:1", writerAnswer(0x5200, 1))
	if got := c.Writer("g0"); got != "r1:1" {
		t.Errorf("Writer = %q after the old writer answered, want r1:1", got)
	}
	// r2 promoted later on the same timeline (it followed w): the latest promotion wins.
	feed(t, c, "g0", "r2:1", writerAnswer(0x5050, 2))
	if got := c.Writer("g0"); got != "r2:1" {
		t.Errorf("Writer = %q, want r2:1", got)
	}
	if got := metricValue(t, reg, "shardwire_writer_changes_total", "group", "g0"); got != 2 {
		t.Errorf("writer_changes = %v, want 2", got)
	}
	roles := map[string]string{}
	for _, s := range c.Snapshot() {
		roles[s.Addr] = s.Role
	}
	if roles["r2:1"] != RoleWriter || roles["r1:1"] != RoleReplica || roles["w:1"] != RoleReplica {
		t.Errorf("roles = %v", roles)
	}
	if got := metricValue(t, reg, "shardwire_endpoint_up", "group", "g0", "endpoint", "r2:1", "role", RoleWriter); got != 1 {
		t.Errorf("endpoint_up{r2, writer} = %v, want 1", got)
	}
	if n := seriesCount(t, reg, "shardwire_endpoint_up"); n != 4 {
		t.Errorf("endpoint_up has %d series, want 4 (the old role's series removed)", n)
	}
}

func TestSetGroupsKeepsState(t *testing.T) {
	c := testChecker(t, nil, g0)
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	feed(t, c, "g0", "r1:1", replicaAnswer(0x5000, 0))
	feed(t, c, "g0", "r2:1", replicaAnswer(0x5000, 0))
	c.Ban("r2:1", nil)
	// r3 leaves, r4 joins, the group gains a second group beside it.
	c.SetGroups([]shardmap.Group{
		{Name: "g0", Region: "east", Writer: "w:1", Replicas: []string{"r1:1", "r2:1", "r4:1"}},
		{Name: "g1", Region: "east", Writer: "w:2"},
	})
	wantTargets(t, c, "g0", 0, "r1:1", "w:1")
	var addrs []string
	for _, s := range c.Snapshot() {
		addrs = append(addrs, s.Addr)
		switch s.Addr {
		case "r1:1":
			if !s.Up || !s.InRecovery || s.ReplayLSN != 0x5000 {
				t.Errorf("r1 lost its state: %+v", s)
			}
		case "r2:1":
			if s.BannedUntil.IsZero() {
				t.Errorf("r2 lost its ban: %+v", s)
			}
		case "r4:1", "w:2":
			if s.Checked {
				t.Errorf("%s is new but has a check: %+v", s.Addr, s)
			}
		}
	}
	if want := []string{"w:1", "r1:1", "r2:1", "r4:1", "w:2"}; !slices.Equal(addrs, want) {
		t.Errorf("Snapshot endpoints = %v, want %v", addrs, want)
	}
	// Dropping a group forgets it.
	c.SetGroups([]shardmap.Group{{Name: "g1", Region: "east", Writer: "w:2"}})
	if got := c.Writer("g0"); got != "" {
		t.Errorf("Writer(removed group) = %q", got)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	c := testChecker(t, nil, g0)
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	for _, r := range g0.Replicas {
		feed(t, c, "g0", r, replicaAnswer(0x5000, 0))
	}
	c.Ban("r3:1", nil)
	dst := make([]string, 0, 8)
	var got []string
	var w string
	since := time.Now().Add(-time.Hour)
	if n := testing.AllocsPerRun(1000, func() { got = c.ReadTargets("g0", 0x4000, dst[:0]) }); n != 0 {
		t.Errorf("ReadTargets allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { w = c.Writer("g0") }); n != 0 {
		t.Errorf("Writer allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.WriterLSNAfter("g0", since) }); n != 0 {
		t.Errorf("WriterLSNAfter allocates %v times per call", n)
	}
	if !slices.Equal(got, []string{"r1:1", "r2:1", "w:1"}) || w != "w:1" {
		t.Errorf("ReadTargets = %v, Writer = %q", got, w)
	}
}

func BenchmarkReadTargets(b *testing.B) {
	c := New(Config{Region: "east", User: "u"}, nil, nil)
	c.SetGroups([]shardmap.Group{g0})
	defer c.Close()
	for _, ep := range c.top.Load().groups["g0"].endpoints {
		res := replicaAnswer(0x5000, 0)
		if ep.addr == "w:1" {
			res = writerAnswer(0x5000, 1)
		}
		res.start, res.end = time.Now(), time.Now()
		c.record(ep, res)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]string, 0, 8)
		for pb.Next() {
			dst = c.ReadTargets("g0", 0, dst[:0])
		}
	})
}

// metricValue returns the value of the gauge or counter series name{labels...} (label
// name/value pairs) that reg holds, failing the test if there is none.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			if len(have) != len(labels)/2 {
				continue
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// seriesCount returns how many series of name reg holds.
func seriesCount(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func TestReadTargetsFromSpreadsLocalReplicas(t *testing.T) {
	c := testChecker(t, nil, g0)
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	for _, r := range g0.Replicas {
		feed(t, c, "g0", r, replicaAnswer(0x5000, 0))
	}
	// One replica in another region: never rotated to the front.
	c.mu.Lock()
	g := c.top.Load().groups["g0"]
	for _, ep := range g.endpoints {
		if ep.addr == "r3:1" {
			ep.region = "west"
		}
	}
	c.publish(g)
	c.mu.Unlock()
	firsts := map[string]int{}
	for start := range uint32(10) {
		got := c.ReadTargetsFrom("g0", 0, start, nil)
		if len(got) != 4 || got[2] != "r3:1" || got[3] != "w:1" {
			t.Fatalf("ReadTargetsFrom(start %d) = %v: the remote replica and the writer must stay last", start, got)
		}
		if !slices.Contains(got[:2], "r1:1") || !slices.Contains(got[:2], "r2:1") {
			t.Fatalf("ReadTargetsFrom(start %d) = %v: both local replicas first", start, got)
		}
		firsts[got[0]]++
	}
	if firsts["r1:1"] != 5 || firsts["r2:1"] != 5 {
		t.Errorf("first choices over 10 starts: %v, want 5 each", firsts)
	}
	if got := c.ReadTargetsFrom("g0", 0, 1, make([]string, 0, 8)); testing.AllocsPerRun(100, func() {
		_ = c.ReadTargetsFrom("g0", 0, 7, got[:0])
	}) != 0 {
		t.Error("ReadTargetsFrom allocates")
	}
}

func TestReplicaRegionsFromTheMap(t *testing.T) {
	g := shardmap.Group{Name: "g0", Region: "west", Writer: "w:1", Replicas: []string{"r1:1", "r2:1"},
		ReplicaRegions: map[string]string{"r2:1": "east"}}
	c := testChecker(t, nil, g) // the checker's region is east
	feed(t, c, "g0", "w:1", writerAnswer(0x5000, 1))
	feed(t, c, "g0", "r1:1", replicaAnswer(0x5000, 0))
	feed(t, c, "g0", "r2:1", replicaAnswer(0x5000, 0))
	wantTargets(t, c, "g0", 0, "r2:1", "r1:1", "w:1")
}
