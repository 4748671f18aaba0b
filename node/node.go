package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/cluster"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy"
	"github.com/shardwire/shardwire/shardmap"
)

// Timings of the node's background work.
const (
	// metaEvery is how often the node re-checks what it publishes in its gossip metadata
	// (epoch, lease, readiness); a change is gossiped at once.
	metaEvery = 250 * time.Millisecond
	// readyEvery spaces out the readiness probes behind the Ready flag in the metadata.
	readyEvery = time.Second
	// joinRetryMax caps the wait between attempts to join the seeds.
	joinRetryMax = 5 * time.Second
	// leaveTimeout bounds the graceful leave on shutdown.
	leaveTimeout = 2 * time.Second
)

// cancelKind is the cluster message that carries a forwarded CancelRequest.
const cancelKind = "cancel"

// Options are a node's collaborators.
type Options struct {
	// Log receives the node's logs; nil discards them.
	Log *zap.Logger
	// Registry receives every metric of the node; nil: a private registry.
	Registry *prometheus.Registry
	// Version is the build version published to the other nodes.
	Version string
	// GossipTransport replaces the UDP/TCP gossip transport on cluster.bind (tests cut a
	// node's gossip with it); nil: the network.
	GossipTransport memberlist.Transport
}

// Node is one running shardwire node.
type Node struct {
	cfg     config.Config
	log     *zap.Logger
	reg     *prometheus.Registry
	version string

	proxy   *proxy.Server
	cluster *cluster.Cluster // nil when the node runs alone

	pgAddr, adminAddr atomic.Pointer[string]
	ready             atomic.Bool
	metaChanged       chan struct{}

	cancelsForwarded *prometheus.CounterVec
}

// New builds a node from a validated configuration: the proxy and, when cluster.bind is set,
// the gossip member (its listeners are bound here, nobody is contacted until Serve).
func New(cfg config.Config, opts Options) (*Node, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	n := &Node{
		cfg:         cfg,
		log:         opts.Log,
		reg:         opts.Registry,
		version:     opts.Version,
		metaChanged: make(chan struct{}, 1),
		cancelsForwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cluster_cancels_forwarded_total",
			Help: "CancelRequests for another node's key, by result: sent (to the node that issued it), failed, no_owner (no alive node has the key's tag).",
		}, []string{"result"}),
	}
	for _, r := range []string{"sent", "failed", "no_owner"} {
		n.cancelsForwarded.WithLabelValues(r)
	}
	empty := ""
	n.pgAddr.Store(&empty)
	n.adminAddr.Store(&empty)
	srv, err := proxy.New(cfg, opts.Log, opts.Registry)
	if err != nil {
		return nil, err
	}
	n.proxy = srv
	srv.SetConsole(n.ConsoleData()) // the SQL admin console shows the node's view of the cluster
	if err := n.reg.Register(&shardStateCollector{store: srv.MapStore()}); err != nil {
		srv.Close()
		return nil, fmt.Errorf("node metrics: %w", err)
	}
	if cfg.Cluster.Bind == "" {
		return n, nil
	}
	if err := n.reg.Register(n.cancelsForwarded); err != nil {
		srv.Close()
		return nil, fmt.Errorf("node metrics: %w", err)
	}
	if n.cluster, err = n.newCluster(opts.GossipTransport); err != nil {
		srv.Close()
		return nil, err
	}
	n.reg.MustRegister(&memberCollector{c: n.cluster})
	srv.SetCancelForwarder(n.forwardCancel)
	return n, nil
}

// newCluster creates the gossip member and registers the node's handlers on it.
func (n *Node) newCluster(transport memberlist.Transport) (*cluster.Cluster, error) {
	cc := n.cfg.Cluster
	ccfg := cluster.DefaultConfig()
	ccfg.NodeName = n.cfg.NodeName
	host, port, err := splitPort(cc.Bind)
	if err != nil {
		return nil, fmt.Errorf("cluster.bind: %w", err)
	}
	ccfg.BindAddr, ccfg.BindPort = host, port
	if cc.Advertise != "" {
		if ccfg.AdvertiseAddr, ccfg.AdvertisePort, err = splitPort(cc.Advertise); err != nil {
			return nil, fmt.Errorf("cluster.advertise: %w", err)
		}
	}
	ccfg.Seeds = cc.Seeds
	ccfg.JoinDNS, ccfg.JoinDNSPort = cc.JoinDNS, cc.JoinDNSPort
	if ccfg.SecretKey, err = cc.Key(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	ccfg.Profile = cc.Profile
	ccfg.DeadTimeout = cc.DeadTimeout.D()
	ccfg.Logger = n.log.Named("cluster")
	ccfg.Registerer = n.reg
	ccfg.Meta = n.meta
	ccfg.Transport = transport
	c, err := cluster.New(ccfg)
	if err != nil {
		return nil, err
	}
	if err := c.Handle(cancelKind, n.handleCancel); err != nil {
		_ = c.Shutdown()
		return nil, err
	}
	c.OnEpoch(func(epoch int64, from string) {
		if cur := n.proxy.MapStore().Current(); cur == nil || epoch > cur.Epoch {
			n.log.Debug("epoch announced", zap.Int64("epoch", epoch), zap.String("from", from))
			n.proxy.HintEpoch()
		}
	})
	return c, nil
}

func splitPort(hostPort string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", hostPort)
	}
	return host, port, nil
}

// Proxy returns the node's proxy server.
func (n *Node) Proxy() *proxy.Server { return n.proxy }

// Cluster returns the node's gossip member; nil when the node runs alone.
func (n *Node) Cluster() *cluster.Cluster { return n.cluster }

// Registry returns the registry holding the node's metrics.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Serve runs the node: clients on pg, the admin API on adminLn (nil: none), gossip when
// configured. It returns when ctx ends (after a graceful leave and closing every client) or
// when a listener fails.
func (n *Node) Serve(ctx context.Context, pg, adminLn net.Listener) error {
	pgAddr := pg.Addr().String()
	n.pgAddr.Store(&pgAddr)
	if adminLn != nil {
		a := adminLn.Addr().String()
		n.adminAddr.Store(&a)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Start before accepting anything: the catalog's map (and the lease) must be in place.
	if err := n.proxy.Start(ctx); err != nil {
		_ = pg.Close()
		if adminLn != nil {
			_ = adminLn.Close()
		}
		n.shutdownCluster()
		n.proxy.Close()
		return err
	}
	unsubscribe := n.proxy.MapStore().Subscribe(func(*shardmap.Map) { n.touchMeta() })
	defer unsubscribe()

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() { errc <- n.proxy.Serve(ctx, pg) })
	if adminLn != nil {
		adm := admin.New(admin.Config{Addr: adminLn.Addr().String(), API: api{n}, Registerer: n.reg}, n.log.Named("admin"), n.reg, n.proxy.Ready)
		wg.Go(func() { errc <- adm.Serve(ctx, adminLn) })
	}
	var bg sync.WaitGroup
	bg.Go(func() { n.watchReady(ctx) })
	if n.cluster != nil {
		bg.Go(func() { n.join(ctx) })
		bg.Go(func() { n.publishMeta(ctx) })
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if err != nil {
			n.log.Error("listener stopped", zap.Error(err))
		}
	}
	cancel()
	bg.Wait()
	n.shutdownCluster()
	n.proxy.Close()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// shutdownCluster leaves the cluster gracefully, then stops gossiping.
func (n *Node) shutdownCluster() {
	if n.cluster == nil {
		return
	}
	if err := n.cluster.Leave(leaveTimeout); err != nil {
		n.log.Warn("leaving the cluster", zap.Error(err))
	}
	if err := n.cluster.Shutdown(); err != nil {
		n.log.Warn("stopping gossip", zap.Error(err))
	}
}

// join contacts the seeds until one admits this node. The first node of a cluster finds no
// seed up; the others join it, and it stops trying once it has a peer.
func (n *Node) join(ctx context.Context) {
	cc := n.cfg.Cluster
	if len(cc.Seeds) == 0 && cc.JoinDNS == "" {
		return
	}
	wait := 250 * time.Millisecond
	for ctx.Err() == nil {
		// A push-pull with the seeds even when some node reached this one first: a node
		// restarted under its name learns only from the others' full state that they hold
		// it dead, and only then refutes it (a higher incarnation); gossip alone may not
		// carry that news any more.
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.cluster.Join(jctx)
		cancel()
		if err == nil || len(n.cluster.Members()) > 1 {
			return // joined, or someone joined us
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, joinRetryMax)
	}
}

// meta is what the node publishes in its gossip metadata.
func (n *Node) meta() cluster.NodeMeta {
	m := cluster.NodeMeta{
		Name:      n.cfg.NodeName,
		Region:    n.cfg.Region,
		Version:   n.version,
		PgAddr:    *n.pgAddr.Load(),
		AdminAddr: *n.adminAddr.Load(),
		LeaseOK:   n.proxy.Lease().Valid(),
		Ready:     n.ready.Load(),
	}
	if cur := n.proxy.MapStore().Current(); cur != nil {
		m.Epoch = cur.Epoch
	}
	return m
}

// touchMeta asks publishMeta to look at the metadata now.
func (n *Node) touchMeta() {
	select {
	case n.metaChanged <- struct{}{}:
	default:
	}
}

// publishMeta gossips the node's metadata whenever it changes: the map's epoch on a new map
// (at once), lease and readiness within metaEvery.
func (n *Node) publishMeta(ctx context.Context) {
	tick := time.NewTicker(metaEvery)
	defer tick.Stop()
	var last cluster.NodeMeta // New gossiped the metadata from before Serve: publish at once
	n.touchMeta()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.metaChanged:
		}
		m := n.meta()
		if m == last {
			continue
		}
		uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := n.cluster.UpdateMeta(uctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("gossiping node metadata", zap.Error(err))
			}
			continue
		}
		last = m
	}
}

// watchReady keeps the Ready flag of the metadata current.
func (n *Node) watchReady(ctx context.Context) {
	tick := time.NewTicker(readyEvery)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, admin.ReadyTimeout)
		ok := n.proxy.Ready(rctx) == nil
		cancel()
		if n.ready.Swap(ok) != ok {
			n.touchMeta()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Close releases what New built, for a node that never served (Serve cleans up after
// itself).
func (n *Node) Close() {
	n.shutdownCluster()
	n.proxy.Close()
}
