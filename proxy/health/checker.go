package health

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/shardmap"
)

// Checker watches every endpoint of every shard group. Writer, ReadTargets, WriterLSNAfter,
// Ban and Snapshot are safe for concurrent use at any time; the first three do no I/O, take
// no lock and do not allocate. SetGroups, Run and CheckNow may run concurrently with each
// other and with the readers.
type Checker struct {
	cfg  Config
	log  *zap.Logger
	m    *metrics
	base time.Time // origin of the ban clock (monotonic)

	// top is the current set of groups and endpoints; replaced by SetGroups.
	top atomic.Pointer[topology]

	// mu guards every group's and endpoint's mutable state (not their published views,
	// which are atomic) and serializes SetGroups.
	mu sync.Mutex
	// retiring tracks goroutines closing the connections of endpoints SetGroups removed.
	retiring sync.WaitGroup
}

// topology is one immutable generation of the group set, from SetGroups.
type topology struct {
	order  []*group // configuration order
	groups map[string]*group
	byAddr map[string][]*endpoint // an address listed by several groups bans in all of them
}

// group is one shard group as the checker tracks it. Its fields are guarded by Checker.mu,
// except view, the immutable state the readers see.
type group struct {
	name       string
	configured *endpoint   // the configured writer
	endpoints  []*endpoint // the configured writer first, then the replicas
	writer     *endpoint   // the writer now: elected, else the configured one
	// samples are the writer's successful checks, oldest first. The slice is only ever
	// appended to or replaced, never written in place, so views may share it.
	samples    []lsnSample
	splitBrain bool

	view atomic.Pointer[groupView]
}

// New returns a Checker with no groups; call SetGroups, then Run (or CheckNow). Zero fields
// of cfg take their defaults. A nil log discards logs; a nil reg registers no metrics.
func New(cfg Config, log *zap.Logger, reg prometheus.Registerer) *Checker {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Checker{
		cfg:  cfg.withDefaults(),
		log:  log,
		m:    newMetrics(reg),
		base: time.Now(),
	}
	c.top.Store(&topology{groups: map[string]*group{}, byAddr: map[string][]*endpoint{}})
	return c
}

// now returns the ban clock: monotonic nanoseconds since New.
func (c *Checker) now() int64 { return int64(time.Since(c.base)) }

// SetGroups makes groups the set of groups to watch: on start and on each shard map change.
// Endpoints that stay (same group, same address) keep their connection, check results, role
// and bans; a group that stays keeps its elected writer and LSN history. Connections of
// removed endpoints are closed in the background. Groups without a name, repeated groups
// and repeated addresses within a group are logged and skipped.
func (c *Checker) SetGroups(groups []shardmap.Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.top.Load()
	next := &topology{groups: make(map[string]*group, len(groups)), byAddr: map[string][]*endpoint{}}
	for _, sg := range groups {
		if sg.Name == "" || sg.Writer == "" {
			c.log.Error("health: group without a name or writer skipped", zap.String("group", sg.Name))
			continue
		}
		if _, dup := next.groups[sg.Name]; dup {
			c.log.Error("health: repeated group skipped", zap.String("group", sg.Name))
			continue
		}
		g := old.groups[sg.Name]
		if g == nil {
			g = &group{name: sg.Name}
		}
		c.updateGroup(g, sg)
		next.order = append(next.order, g)
		next.groups[g.name] = g
		for _, ep := range g.endpoints {
			next.byAddr[ep.addr] = append(next.byAddr[ep.addr], ep)
		}
	}
	for _, g := range old.order {
		if next.groups[g.name] != g {
			for _, ep := range g.endpoints {
				c.retire(ep)
			}
			c.m.writerChanges.DeleteLabelValues(g.name)
		}
	}
	for _, g := range next.order {
		c.elect(g)
		c.publish(g)
	}
	c.top.Store(next)
}

// updateGroup gives g the endpoints of sg, reusing those it already has. The caller holds
// c.mu.
func (c *Checker) updateGroup(g *group, sg shardmap.Group) {
	have := make(map[string]*endpoint, len(g.endpoints))
	for _, ep := range g.endpoints {
		have[ep.addr] = ep
	}
	var eps []*endpoint
	for i, addr := range sg.Endpoints() {
		if addr == "" {
			continue
		}
		ep, ok := have[addr]
		switch {
		case ok && ep == nil:
			c.log.Error("health: endpoint listed twice in a group skipped", zap.String("group", g.name), zap.String("endpoint", addr))
			continue
		case !ok:
			ep = c.newEndpoint(g, addr)
		}
		have[addr] = nil // taken
		ep.index = i
		ep.region = sg.RegionOf(addr)
		eps = append(eps, ep)
		if i == 0 {
			g.configured = ep
		}
	}
	for _, ep := range g.endpoints {
		if have[ep.addr] != nil {
			c.retire(ep)
		}
	}
	g.endpoints = eps
	if g.writer != nil && !member(eps, g.writer) {
		g.writer = nil
		g.samples = nil
	}
}

func member(eps []*endpoint, ep *endpoint) bool {
	for _, e := range eps {
		if e == ep {
			return true
		}
	}
	return false
}

// newEndpoint makes the state of a newly listed endpoint.
func (c *Checker) newEndpoint(g *group, addr string) *endpoint {
	ep := &endpoint{addr: addr, group: g, sem: make(chan struct{}, 1)}
	ep.connCfg, ep.connErr = connConfig(addr, c.cfg)
	ep.bans = c.m.bans.WithLabelValues(g.name, addr)
	return ep
}

// retire stops checking ep and closes its connection once its check in flight, if any, has
// ended. The caller holds c.mu.
func (c *Checker) retire(ep *endpoint) {
	if ep.gone {
		return
	}
	ep.gone = true
	c.m.forget(ep)
	c.retiring.Go(func() {
		ep.sem <- struct{}{}
		ep.retired = true
		ep.closeConn()
		<-ep.sem
	})
}

// Run checks every endpoint each Interval until ctx ends, then closes the check connections
// and returns. An endpoint whose previous check is still running is skipped for that tick
// (each check is bounded by ConnectTimeout and CheckTimeout), so a hung endpoint never
// delays the others.
func (c *Checker) Run(ctx context.Context) {
	var inflight sync.WaitGroup
	defer func() {
		inflight.Wait()
		c.closeConns()
	}()
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		for _, ep := range c.allEndpoints() {
			select {
			case ep.sem <- struct{}{}:
				inflight.Go(func() {
					defer func() { <-ep.sem }()
					c.check(ctx, ep)
				})
			default: // its previous check is still running
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// CheckNow checks every endpoint once, in parallel, and returns when all checks have ended
// (or ctx has). A check already running for an endpoint is waited for, and then a new one is
// made, so on return every endpoint's state comes from a check that started after the call.
func (c *Checker) CheckNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ep := range c.allEndpoints() {
		wg.Go(func() {
			select {
			case ep.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-ep.sem }()
			c.check(ctx, ep)
		})
	}
	wg.Wait()
}

// allEndpoints returns the current endpoints of every group. SetGroups changes a group's
// endpoint list under c.mu, so the list is copied under it.
func (c *Checker) allEndpoints() []*endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*endpoint
	for _, g := range c.top.Load().order {
		out = append(out, g.endpoints...)
	}
	return out
}

// Close closes every check connection and waits for the connections of removed endpoints to
// close. Use it when the Checker was driven by CheckNow only; Run closes its connections when
// it returns. A later check reconnects.
func (c *Checker) Close() {
	c.closeConns()
	c.retiring.Wait()
}

// closeConns closes the connections of the current endpoints.
func (c *Checker) closeConns() {
	for _, ep := range c.allEndpoints() {
		ep.sem <- struct{}{}
		ep.closeConn()
		<-ep.sem
	}
}

// check runs one check of ep and records it. The caller holds ep.sem.
func (c *Checker) check(ctx context.Context, ep *endpoint) {
	if ep.retired {
		return
	}
	res := ep.probe(ctx, c.cfg)
	if res.err != nil && ctx.Err() != nil {
		return // interrupted by shutdown, not an answer from the endpoint
	}
	c.m.checkDuration.Observe(res.end.Sub(res.start).Seconds())
	c.record(ep, res)
}

// record folds a check result into ep's group and republishes the group's view.
func (c *Checker) record(ep *endpoint, res probeResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := ep.group
	if ep.gone {
		return // removed while its check ran
	}
	promoted, upChanged := ep.state.apply(res)
	switch {
	case upChanged && res.err != nil:
		c.log.Warn("health: endpoint down", zap.String("group", g.name), zap.String("endpoint", ep.addr), zap.Error(res.err))
	case upChanged:
		c.log.Info("health: endpoint up", zap.String("group", g.name), zap.String("endpoint", ep.addr),
			zap.Bool("in_recovery", res.inRecovery))
	}
	if promoted {
		c.log.Warn("health: endpoint left recovery (promoted)", zap.String("group", g.name), zap.String("endpoint", ep.addr),
			zap.Uint32("timeline", res.timeline))
	}
	if res.err == nil {
		ep.clearBackoff(c.now())
	}
	c.elect(g)
	if ep == g.writer && res.err == nil && !res.inRecovery {
		g.addSample(lsnSample{start: res.start, writeLSN: res.lsn, insertLSN: res.insertLSN}, c.cfg.sampleCapacity())
	}
	c.publish(g)
}

// addSample appends a writer sample, keeping at most capacity of them visible.
func (g *group) addSample(s lsnSample, capacity int) {
	if len(g.samples) >= 2*capacity {
		g.samples = append(make([]lsnSample, 0, 2*capacity), g.samples[len(g.samples)-capacity+1:]...)
	}
	g.samples = append(g.samples, s)
}

// elect decides g's writer from its endpoints' states. The caller holds c.mu.
func (c *Checker) elect(g *group) {
	claims := make([]claim, len(g.endpoints))
	current := -1
	for i, ep := range g.endpoints {
		st := &ep.state
		claims[i] = claim{writable: st.answered && !st.inRecovery, up: st.up, timeline: st.timeline, promotedAt: st.promotedAt}
		if ep == g.writer {
			current = i
		}
	}
	w := g.configured
	if i := electWriter(claims, current); i >= 0 {
		w = g.endpoints[i]
	}
	if n := writableCount(claims); n > 1 != g.splitBrain {
		g.splitBrain = n > 1
		if g.splitBrain {
			c.log.Warn("health: several endpoints claim to be the writer (split brain); writes go to the newest",
				zap.String("group", g.name), zap.Strings("claimants", claimants(g)), zap.String("chosen", w.addr))
		} else {
			c.log.Info("health: split brain over, one writer left", zap.String("group", g.name), zap.String("writer", w.addr))
		}
	}
	if w == g.writer {
		return
	}
	if g.writer != nil {
		c.m.writerChanges.WithLabelValues(g.name).Inc()
		c.log.Warn("health: writer changed", zap.String("group", g.name), zap.String("from", g.writer.addr), zap.String("to", w.addr))
	}
	g.writer = w
	g.samples = nil // another server's WAL positions
}

// claimants lists the up endpoints of g that claim to be writable. The caller holds c.mu.
func claimants(g *group) []string {
	var out []string
	for _, ep := range g.endpoints {
		if ep.state.up && ep.state.answered && !ep.state.inRecovery {
			out = append(out, ep.addr)
		}
	}
	return out
}
