package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// listenIdle is how long the pub/sub listener waits for a message before it pings the
// subscription connection; a ping unanswered for as long again means the connection is
// dead.
const listenIdle = time.Second

// Run keeps the cache's view of Redis current until ctx ends or Close is called: it pings
// Redis every 100-250 ms (marking it down on failure, and up again once the bumps it missed
// are applied), listens on the bump channel to drop generations other nodes bumped, and
// sweeps the generation memory. Without Redis it only waits. Call it once.
func (c *Cache) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	if c.mode != modeRedis {
		<-ctx.Done()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.listen(ctx) })
	c.probeLoop(ctx)
	wg.Wait()
}

// probeInterval returns a random pause of 100-250 ms between probes, so that nodes do not
// probe in step.
func probeInterval() time.Duration {
	return 100*time.Millisecond + rand.N(maxProbeInterval-100*time.Millisecond)
}

// maxProbeInterval is the longest pause between two probes.
const maxProbeInterval = 250 * time.Millisecond

// recoveryGrace is how long cached reads stay off after Redis answers again. Writes
// acknowledged while Redis was unreachable bumped nothing: the nodes that made them apply
// those bumps when their own probe finds Redis back, within maxProbeInterval (twice, for
// the replay's own round trips). Until then another node's entries and generations could
// be older than what its sessions read from the writers during the outage; after it they
// are not (this node's generation memory starts empty).
func (c *Cache) recoveryGrace() time.Duration {
	return 2 * maxProbeInterval
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// probeLoop pings Redis until ctx ends.
func (c *Cache) probeLoop(ctx context.Context) {
	lastSweep, lastStats := time.Now(), time.Time{}
	var evicted int64 // Redis's count at the last read; what it evicted before counts at the first
	for {
		c.probe(ctx)
		if now := time.Now(); now.Sub(lastSweep) >= c.cfg.Staleness.D() {
			c.mem.sweep(now)
			lastSweep = now
		}
		if now := time.Now(); now.Sub(lastStats) >= redisStatsInterval && c.up.Load() {
			evicted = c.countRedisEvictions(ctx, evicted)
			lastStats = now
		}
		if !sleep(ctx, probeInterval()) {
			return
		}
	}
}

// probe asks Redis for its run_id once, marking it down on failure and recovering when it
// was down. A new run_id means Redis restarted, maybe from a snapshot whose counters lag
// behind bumps made since: the probe gives the epoch key a new random value, so that no
// cache key built before is built again, and recovers as after an outage.
func (c *Cache) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	info, err := c.rdb.Info(pctx, "server").Result()
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.markDown("ping", err)
		}
		return
	}
	id := runID(info)
	if last := c.runID.Swap(&id); last != nil && *last != id {
		ectx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
		err := c.rdb.Set(ectx, epochKey, randomArg(), 0).Err()
		cancel()
		c.markDown("restart", fmt.Errorf("redis restarted (run_id %s, was %s): %w", id, *last, errRestarted))
		if err != nil {
			return
		}
	}
	if !c.up.Load() {
		c.recover(ctx)
	}
}

// redisStatsInterval is how often the probe reads Redis's eviction count.
const redisStatsInterval = 5 * time.Second

// countRedisEvictions adds the keys Redis evicted since its count was last read (last) to the
// l2 evictions counter and returns the count now. A count below the
// last one means Redis restarted: all of it is new. A Redis Cluster answers INFO from one
// node, so it is not counted there.
func (c *Cache) countRedisEvictions(ctx context.Context, last int64) int64 {
	if _, cluster := c.rdb.(*redis.ClusterClient); cluster {
		return last
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	info, err := c.rdb.Info(sctx, "stats").Result()
	cancel()
	if err != nil {
		return last
	}
	now := int64(-1)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "evicted_keys:"); ok {
			now, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	switch {
	case now < 0:
		return last
	case now >= last:
		c.m.evictionsL2.Add(float64(now - last))
	default:
		c.m.evictionsL2.Add(float64(now))
	}
	return now
}

// errRestarted says that Redis restarted.
var errRestarted = errors.New("a new epoch begins")

// runID returns the run_id field of INFO server's answer ("" when missing).
func runID(info string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v
		}
	}
	return ""
}

// recover applies the bumps Redis missed and marks it up when none is left.
func (c *Cache) recover(ctx context.Context) {
	c.checkPolicy(ctx)
	for {
		c.stateMu.Lock()
		if c.isClosed() {
			c.stateMu.Unlock()
			return
		}
		if c.pending.len() == 0 {
			c.mem.clear()
			c.usableAt.Store(time.Now().Add(c.recoveryGrace()).UnixNano())
			c.up.Store(true)
			c.m.redisUp.Set(1)
			c.stateMu.Unlock()
			c.log.Info("redis answers; cached reads resume")
			return
		}
		items := c.pending.take()
		c.stateMu.Unlock()
		if err := c.replay(ctx, items); err != nil {
			c.log.Warn("redis answers but the bumps it missed could not be applied yet", zap.Int("bumps", len(items)), zap.Error(err))
			return
		}
		c.log.Info("applied bumps kept while redis was down", zap.Int("bumps", len(items)))
	}
}

// replay applies items in batches; on failure it puts back what was not applied.
func (c *Cache) replay(ctx context.Context, items []bumpItem) error {
	for i := 0; i < len(items); i += replayBatch {
		batch := items[i:min(i+replayBatch, len(items))]
		if _, _, err := c.runBump(ctx, batch, false); err != nil {
			c.stateMu.Lock()
			c.pending.restore(items[i:])
			c.stateMu.Unlock()
			return err
		}
	}
	return nil
}

// checkPolicy warns when Redis may evict generation counters.
func (c *Cache) checkPolicy(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	defer cancel()
	res, err := c.rdb.ConfigGet(pctx, "maxmemory-policy").Result()
	if err != nil {
		c.log.Debug("could not read redis maxmemory-policy", zap.Error(err))
		return
	}
	policy := res["maxmemory-policy"]
	if strings.HasPrefix(policy, "allkeys-") {
		c.m.evictingPolicy.Set(1)
		c.log.Warn("redis maxmemory-policy may evict generation counters; use noeviction, volatile-lru or volatile-ttl",
			zap.String("maxmemory-policy", policy))
		return
	}
	c.m.evictingPolicy.Set(0)
}

// markDown records that Redis failed: cached reads stop and the generation memory is
// cleared until a probe succeeds.
func (c *Cache) markDown(op string, err error) {
	c.stateMu.Lock()
	wasUp := c.up.Swap(false)
	c.m.redisUp.Set(0)
	c.stateMu.Unlock()
	c.mem.clear()
	if wasUp && !c.isClosed() {
		c.log.Warn("redis failed; cached reads stop until it answers", zap.String("op", op), zap.Error(err))
	}
}

// failed handles an error of a Redis operation begun at start under the caller's ctx: it
// marks Redis down unless the caller gave up first (cancelled, or a deadline shorter than
// the Redis timeout).
func (c *Cache) failed(ctx context.Context, start time.Time, op string, err error) {
	if errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	if ctx.Err() != nil && time.Since(start) < c.cfg.Timeout.D()*9/10 {
		return
	}
	c.markDown(op, err)
}

// listen follows the bump channel until ctx ends, resubscribing after failures.
func (c *Cache) listen(ctx context.Context) {
	for {
		c.listenOnce(ctx)
		c.mem.enable(false)
		if !sleep(ctx, probeInterval()) {
			return
		}
	}
}

// listenOnce subscribes and handles messages until the subscription fails or ctx ends. The
// generation memory serves values only while the subscription is live, and starts empty on
// every (re)subscription: messages may have been missed.
func (c *Cache) listenOnce(ctx context.Context) {
	ps := c.rdb.Subscribe(ctx, bumpChannel)
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		stop()
		_ = ps.Close()
	}()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, listenIdle)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err := ps.Ping(ctx); err != nil {
					c.log.Debug("redis subscription ping failed", zap.Error(err))
					return
				}
				pinged = true
				continue
			}
			c.log.Debug("redis subscription lost", zap.Error(err))
			return
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == bumpChannel {
				c.mem.enable(true)
			}
		case *redis.Message:
			origin, keys, _ := strings.Cut(m.Payload, "\n")
			if origin == c.id {
				// This node's own bump: its memory got the new values from the script.
				continue
			}
			c.mem.invalidate(strings.Split(keys, "\n"), time.Now())
		}
	}
}
