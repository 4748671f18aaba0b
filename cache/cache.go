package cache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
)

// ErrUnavailable is returned (wrapped) by Generations when cached reads may not be served:
// Redis is down (or has not answered yet), or the node is clustered without Redis.
var ErrUnavailable = errors.New("cache unavailable")

// Limits that are not configured.
const (
	// pendingLimit bounds the retry list of bumps kept while Redis is down.
	pendingLimit = 100_000
	// localGenLimit bounds the generations a node without Redis holds.
	localGenLimit = 1 << 20
	// replayBatch is the most generations one replayed bump script carries.
	replayBatch = 1000
)

// Options configures New.
type Options struct {
	// Config is the cache configuration; zero durations and sizes take config.Default's.
	Config config.Cache
	// Log receives the cache's logs; nil discards them.
	Log *zap.Logger
	// Registry receives the cache's metrics; nil registers none.
	Registry prometheus.Registerer
	// Clustered says this node runs with peers: without Redis it must not cache, because it
	// would not see their writes.
	Clustered bool
}

// mode is how the cache keeps generations.
type mode uint8

const (
	modeRedis mode = iota // generations in Redis, L2 in Redis
	modeLocal             // generations in this process, no L2
	modeOff               // clustered without Redis: never usable
)

func (m mode) String() string {
	switch m {
	case modeRedis:
		return "redis"
	case modeLocal:
		return "local"
	}
	return "off"
}

// Cache is one node's read-through cache. Its methods are safe for concurrent use.
type Cache struct {
	id   string // random; names this cache's own messages on the bump channel
	cfg  config.Cache
	log  *zap.Logger
	mode mode
	m    *metrics

	// l1mu keeps L1 operations and Close apart: ristretto may panic or block when used
	// while it closes.
	l1mu     sync.RWMutex
	l1closed bool
	l1       *ristretto.Cache[string, *l1Entry]

	rdb     redis.UniversalClient // modeRedis only
	mem     *genMemory            // modeRedis only
	local   *localGens            // modeLocal only
	flights flightGroup

	// up says Redis answers and any bumps it missed were applied. It changes only under
	// stateMu, which also guards pending, so that a bump is either applied, or held in
	// pending and applied before up turns true.
	up atomic.Bool
	// usableAt (unix nanoseconds) is when cached reads resume after Redis came back: a
	// recovery grace (recoveryGrace) lets every other node notice too and apply the bumps
	// it kept meanwhile.
	usableAt atomic.Int64
	// runID is the run_id of the Redis the last probe reached.
	runID   atomic.Pointer[string]
	stateMu sync.Mutex
	pending *pendingBumps

	closeOnce sync.Once
	closed    chan struct{}
}

// New builds a cache. It does no I/O: Redis is connected on first use, and Run must run
// for Redis to be marked up (until then Usable is false in Redis mode).
func New(opts Options) (*Cache, error) {
	cfg, err := withDefaults(opts.Config)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	c := &Cache{id: strconv.FormatUint(rand.Uint64(), 16), cfg: cfg, log: log, closed: make(chan struct{})}
	switch {
	case len(cfg.Redis.Addrs) > 0:
		c.mode = modeRedis
	case opts.Clustered:
		c.mode = modeOff
		log.Warn("cache is off: this node runs with peers but no Redis is configured (cache.redis.addrs), " +
			"so it could not see their writes")
	default:
		c.mode = modeLocal
	}

	c.l1, err = ristretto.NewCache(&ristretto.Config[string, *l1Entry]{
		NumCounters:        min(max(cfg.L1Bytes/100, 10_000), 10_000_000),
		MaxCost:            cfg.L1Bytes,
		BufferItems:        64,
		Metrics:            true,
		IgnoreInternalCost: true, // l1Cost counts the overhead
		KeyToHash:          l1KeyHash,
		OnEvict:            c.onL1Evict,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: L1: %w", err)
	}
	c.m = newMetrics(c.l1Bytes, c.l1Entries)
	if err := c.m.register(opts.Registry); err != nil {
		c.l1.Close()
		return nil, err
	}

	switch c.mode {
	case modeRedis:
		t := cfg.Timeout.D()
		c.rdb = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:                 cfg.Redis.Addrs,
			MasterName:            cfg.Redis.MasterName,
			Username:              cfg.Redis.Username,
			Password:              cfg.Redis.Password,
			DB:                    cfg.Redis.DB,
			DialTimeout:           t,
			ReadTimeout:           t,
			WriteTimeout:          t,
			PoolTimeout:           t,
			MaxRetries:            -1, // a slow or failing Redis counts as down at once
			ContextTimeoutEnabled: true,
		})
		c.mem = newGenMemory(cfg.Staleness.D(), cfg.Staleness.D()+4*t)
		c.pending = newPendingBumps(pendingLimit)
	case modeLocal:
		c.local = newLocalGens(localGenLimit)
	}
	return c, nil
}

// withDefaults fills zero settings from config.Default and rejects negative ones.
func withDefaults(cfg config.Cache) (config.Cache, error) {
	def := config.Default().Cache
	if cfg.L1Bytes == 0 {
		cfg.L1Bytes = def.L1Bytes
	}
	if cfg.MaxResultBytes == 0 {
		cfg.MaxResultBytes = def.MaxResultBytes
	}
	if cfg.Staleness == 0 {
		cfg.Staleness = def.Staleness
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = def.Timeout
	}
	switch {
	case cfg.L1Bytes < 0:
		return cfg, fmt.Errorf("cache: l1_bytes must be positive, got %d", cfg.L1Bytes)
	case cfg.MaxResultBytes < 0:
		return cfg, fmt.Errorf("cache: max_result_bytes must be positive, got %d", cfg.MaxResultBytes)
	case cfg.Staleness < 0:
		return cfg, fmt.Errorf("cache: staleness must be positive, got %s", cfg.Staleness.D())
	case cfg.Timeout < 0:
		return cfg, fmt.Errorf("cache: timeout must be positive, got %s", cfg.Timeout.D())
	}
	return cfg, nil
}

// Close releases the cache: Run returns, Redis connections close, L1 is dropped. Later
// calls find nothing cached and generations unavailable. Close is idempotent.
func (c *Cache) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		c.stateMu.Lock()
		c.up.Store(false)
		c.stateMu.Unlock()
		if c.rdb != nil {
			if cerr := c.rdb.Close(); cerr != nil {
				err = fmt.Errorf("cache: close redis client: %w", cerr)
			}
		}
		c.l1mu.Lock()
		c.l1closed = true
		c.l1.Close()
		c.l1mu.Unlock()
	})
	return err
}

// isClosed reports whether Close was called.
func (c *Cache) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Usable reports whether cached reads may be served now: Redis answers (and every bump it
// missed has been applied), or the node runs alone without Redis. When false the proxy
// reads from Postgres.
func (c *Cache) Usable() bool {
	switch c.mode {
	case modeRedis:
		return c.up.Load() && time.Now().UnixNano() >= c.usableAt.Load() && !c.isClosed()
	case modeLocal:
		return !c.isClosed()
	}
	return false
}
