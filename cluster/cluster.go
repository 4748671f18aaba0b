package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Cluster is this node's membership in the proxy cluster. Its methods are safe
// for concurrent use.
type Cluster struct {
	cfg          Config
	log          *zap.Logger
	metrics      *metrics
	ml           *memberlist.Memberlist
	queue        *memberlist.TransmitLimitedQueue
	maxBroadcast int

	meta   atomic.Pointer[[]byte] // encoded local NodeMeta served to NodeMeta()
	nextID atomic.Uint64

	mu         sync.Mutex
	members    map[string]*Member
	joined     bool
	handlers   map[string]HandlerFunc
	changeSubs []func(Member, EventKind)
	epochSubs  []func(epoch int64, from string)
	maxEpoch   int64
	localEpoch int64
	pending    map[uint64]*pendingBroadcast
	leaving    map[string]time.Time // members that announced Leave
	stopped    bool                 // Shutdown began; no new goroutines

	events  chan event    // to the event goroutine
	inbound chan envelope // to the dispatch goroutine
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  sync.Once
}

// event is one item for the event goroutine: a member change or an epoch.
type event struct {
	isEpoch bool
	member  Member
	kind    EventKind
	epoch   int64
	from    string
}

// New creates the local node and starts its gossip listeners. It does not
// contact anyone: register handlers and callbacks, then call Join.
func New(cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	mc, err := baseConfig(cfg.Profile)
	if err != nil {
		return nil, err
	}
	tune(mc, cfg.DeadTimeout)
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:      cfg,
		log:      cfg.Logger.With(zap.String("node", cfg.NodeName)),
		metrics:  met,
		members:  make(map[string]*Member),
		handlers: make(map[string]HandlerFunc),
		pending:  make(map[uint64]*pendingBroadcast),
		leaving:  make(map[string]time.Time),
		events:   make(chan event, cfg.EventBuffer),
		inbound:  make(chan envelope, cfg.EventBuffer),
		stop:     make(chan struct{}),
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("cluster: seed request ids: %w", err)
	}
	// Start ids at a random point so acks meant for a previous incarnation of
	// this node name are not mistaken for ours.
	c.nextID.Store(binary.BigEndian.Uint64(seed[:]) >> 1)
	c.handlers[epochKind] = c.handleEpoch
	c.handlers[leaveKind] = c.handleLeave
	if err := c.refreshMeta(); err != nil {
		return nil, err
	}
	c.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       c.numAlive,
		RetransmitMult: mc.RetransmitMult,
	}
	// A gossip packet also holds the compound header, encryption and label
	// overhead; keep user broadcasts well inside it.
	c.maxBroadcast = mc.UDPBufferSize - 200

	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.SecretKey = cfg.SecretKey
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	// A restarted proxy usually comes back on a new address or port; let it
	// take its name back as soon as the old incarnation is declared dead
	// (memberlist treats 0 as "never").
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.Delegate = (*delegate)(c)
	mc.Events = (*eventDelegate)(c)
	mc.Logger = log.New(logWriter{log: c.log}, "", 0)

	c.wg.Add(2)
	go c.eventLoop()
	go c.dispatchLoop()
	ml, err := memberlist.Create(mc)
	if err != nil {
		c.closed.Do(func() { close(c.stop) })
		c.wg.Wait()
		return nil, fmt.Errorf("cluster: create memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	c.ml = ml
	c.log.Info("cluster node started", zap.String("addr", c.LocalNode().Addr))
	return c, nil
}

// Join contacts the configured seeds and the addresses JoinDNS resolves to,
// and returns how many of them it exchanged state with. It fails when none
// admitted this node; when encryption is the likely cause, the error says so.
func (c *Cluster) Join(ctx context.Context) (int, error) {
	seeds := append([]string(nil), c.cfg.Seeds...)
	if c.cfg.JoinDNS != "" {
		port := c.cfg.JoinDNSPort
		if port == 0 {
			_, p, _ := net.SplitHostPort(c.LocalNode().Addr)
			port, _ = strconv.Atoi(p)
		}
		found, err := resolveSeeds(ctx, c.cfg.JoinDNS, port)
		if err != nil {
			return 0, err
		}
		seeds = append(seeds, found...)
	}
	if len(seeds) == 0 {
		return 0, errors.New("cluster: join: no Seeds and no JoinDNS configured")
	}
	c.mu.Lock()
	c.joined = true
	c.mu.Unlock()

	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := c.ml.Join(seeds)
		done <- result{n, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("cluster: join %v: %w", seeds, ctx.Err())
	}
	if r.n > 0 {
		if r.err != nil {
			c.log.Warn("some seeds did not answer", zap.Int("joined", r.n), zap.Error(r.err))
		}
		c.log.Info("joined cluster", zap.Int("contacted", r.n), zap.Strings("seeds", seeds))
		return r.n, nil
	}
	if r.err == nil {
		r.err = errors.New("no seed answered")
	}
	hint := "if the cluster uses gossip encryption, set SecretKey to its key"
	if len(c.cfg.SecretKey) > 0 {
		hint = "check that SecretKey matches the cluster's gossip encryption key"
	}
	err := fmt.Errorf("cluster: join: none of %d seeds admitted this node (%s): %w", len(seeds), hint, r.err)
	c.log.Warn("join failed", zap.Strings("seeds", seeds), zap.Error(err))
	return 0, err
}

// resolveSeeds returns host:port for each A/AAAA record of name.
func resolveSeeds(ctx context.Context, name string, port int) ([]string, error) {
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cluster: resolve JoinDNS %q: %w", name, err)
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, net.JoinHostPort(a.IP.String(), strconv.Itoa(port)))
	}
	return out, nil
}

// Members returns every known member, including this node and members that
// died or left less than Config.ForgetAfter ago, sorted by name.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetLocked(time.Now())
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LocalNode returns this node as a Member.
func (c *Cluster) LocalNode() Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[c.cfg.NodeName]; ok {
		return *m
	}
	meta, _ := DecodeNodeMeta(*c.meta.Load())
	return Member{Name: c.cfg.NodeName, State: StateAlive, Meta: meta}
}

// OnChange registers fn to be called for every change of another member
// (this node's own changes are not reported). All
// OnChange and OnEpoch callbacks run on one goroutine owned by the Cluster,
// one at a time, in the order the changes were observed. A callback must
// return promptly (events queue behind it and are dropped, counted, when the
// queue is full); it may call any Cluster method except Shutdown. Register
// callbacks before Join to see every change.
func (c *Cluster) OnChange(fn func(Member, EventKind)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changeSubs = append(c.changeSubs, fn)
}

// OnEpoch registers fn to be called when a remote node's metadata, push/pull
// state or epoch announcement shows an epoch higher than any this node has
// seen (its own included). It runs under the same contract as OnChange.
func (c *Cluster) OnEpoch(fn func(epoch int64, from string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epochSubs = append(c.epochSubs, fn)
}

// UpdateMeta calls Config.Meta again and gossips the result. It waits until
// the update has been handed to the cluster or ctx ends. An oversized meta is
// an error and leaves the published meta unchanged.
func (c *Cluster) UpdateMeta(ctx context.Context) error {
	if err := c.refreshMeta(); err != nil {
		return err
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return fmt.Errorf("cluster: update meta: %w", context.DeadlineExceeded)
		}
	}
	if err := c.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("cluster: update meta: %w", err)
	}
	return nil
}

// refreshMeta encodes Config.Meta's current value and stores it for
// memberlist's NodeMeta callback.
func (c *Cluster) refreshMeta() error {
	m := NodeMeta{Name: c.cfg.NodeName}
	if c.cfg.Meta != nil {
		m = c.cfg.Meta()
		if m.Name == "" {
			m.Name = c.cfg.NodeName
		}
	}
	b, err := m.Encode()
	if err != nil {
		return err
	}
	c.meta.Store(&b)
	c.mu.Lock()
	c.localEpoch = m.Epoch
	if m.Epoch > c.maxEpoch {
		c.maxEpoch = m.Epoch
	}
	c.mu.Unlock()
	return nil
}

// Leave announces a graceful departure and waits up to timeout for it to be
// gossiped; other members then list this node as left rather than dead. It
// first tells every live member directly (spending up to half of timeout
// waiting for their acks, which is best effort), then runs memberlist's
// leave. Call Shutdown afterwards.
func (c *Cluster) Leave(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout/2)
	_, err := c.BroadcastAndWait(ctx, leaveKind, nil)
	cancel()
	if err != nil {
		c.log.Warn("not every member acknowledged our departure", zap.Error(err))
	}
	if err := c.ml.Leave(timeout - timeout/2); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

// handleLeave is the built-in handler for kind "leave": from is about to
// leave, so its coming NotifyLeave means left, not dead.
func (c *Cluster) handleLeave(from string, _ []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaving[from] = time.Now()
	return nil
}

// Shutdown stops gossip without announcing anything (others will declare the
// node dead unless Leave was called first) and stops the Cluster's
// goroutines. It is idempotent.
func (c *Cluster) Shutdown() error {
	var err error
	c.closed.Do(func() {
		c.mu.Lock()
		c.stopped = true
		c.mu.Unlock()
		if e := c.ml.Shutdown(); e != nil {
			err = fmt.Errorf("cluster: shutdown: %w", e)
		}
		close(c.stop)
		c.wg.Wait()
	})
	return err
}

// spawn runs fn on a goroutine Shutdown waits for, unless Shutdown began; it reports whether
// fn was started.
func (c *Cluster) spawn(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// numAlive counts alive members including this node.
func (c *Cluster) numAlive() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.members {
		if m.State == StateAlive {
			n++
		}
	}
	return n
}

// post hands ev to the event goroutine without blocking.
func (c *Cluster) post(ev event) {
	select {
	case c.events <- ev:
	default:
		c.metrics.eventsDropped.Inc()
	}
}

func (c *Cluster) eventLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case ev := <-c.events:
			c.mu.Lock()
			changeSubs, epochSubs := c.changeSubs, c.epochSubs
			c.mu.Unlock()
			if ev.isEpoch {
				for _, fn := range epochSubs {
					fn(ev.epoch, ev.from)
				}
				continue
			}
			for _, fn := range changeSubs {
				fn(ev.member, ev.kind)
			}
		}
	}
}

// setMember records a member change reported by memberlist. It runs inside
// memberlist's state lock, so it only copies and posts.
func (c *Cluster) setMember(n *memberlist.Node, state MemberState, kind EventKind) {
	m := Member{
		Name:  n.Name,
		State: state,
		Since: time.Now(),
		ip:    append(net.IP(nil), n.Addr...),
		port:  n.Port,
	}
	m.Addr = hostPort(m.ip, m.port)
	m.Meta, m.MetaErr = DecodeNodeMeta(n.Meta)
	c.mu.Lock()
	c.members[m.Name] = &m
	c.forgetLocked(m.Since)
	c.updateGaugeLocked()
	c.mu.Unlock()
	if m.Name != c.cfg.NodeName {
		c.post(event{member: m, kind: kind})
	}
	if state == StateAlive && m.MetaErr == nil {
		c.observeEpoch(m.Meta.Epoch, m.Name)
	}
}

// observeEpoch posts an epoch event when a remote node shows an epoch above
// every one seen so far.
// Epochs this node itself shows or announces count as seen but fire nothing.
func (c *Cluster) observeEpoch(epoch int64, from string) {
	c.mu.Lock()
	higher := epoch > c.maxEpoch
	if higher {
		c.maxEpoch = epoch
	}
	c.mu.Unlock()
	if higher && from != c.cfg.NodeName {
		c.post(event{isEpoch: true, epoch: epoch, from: from})
	}
}

// forgetLocked drops members dead or departed for longer than ForgetAfter.
func (c *Cluster) forgetLocked(now time.Time) {
	for name, m := range c.members {
		if m.State != StateAlive && now.Sub(m.Since) > c.cfg.ForgetAfter {
			delete(c.members, name)
		}
	}
	for name, at := range c.leaving {
		if now.Sub(at) > c.cfg.ForgetAfter {
			delete(c.leaving, name)
		}
	}
}

func (c *Cluster) updateGaugeLocked() {
	var counts [3]int
	for _, m := range c.members {
		counts[m.State]++
	}
	for _, s := range []MemberState{StateAlive, StateDead, StateLeft} {
		c.metrics.members.WithLabelValues(s.String()).Set(float64(counts[s]))
	}
}
