package cache

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// l1Overhead is what an L1 entry costs beyond its value: the entry, ristretto's item and
// its index.
const l1Overhead = 160

// l1Entry is one L1 value with its full key: ristretto indexes 128 bits of it, the rest is
// checked on a hit.
type l1Entry struct {
	key Key
	val []byte
}

// l1Key is the ristretto key of k (its bytes as a string; only l1KeyHash reads it).
func l1Key(k Key) string { return string(k[:]) }

// l1KeyHash returns the first 128 bits of a key, already uniformly distributed.
func l1KeyHash(s string) (uint64, uint64) {
	var a, b uint64
	for i := range 8 {
		a = a<<8 | uint64(s[i])
		b = b<<8 | uint64(s[8+i])
	}
	return a, b
}

// onL1Evict counts entries removed to make room; ristretto also reports expired entries
// here, with their (past) expiration, and victims of room-making without one.
func (c *Cache) onL1Evict(it *ristretto.Item[*l1Entry]) {
	if it.Expiration.IsZero() || it.Expiration.After(time.Now()) {
		c.m.evictions.Inc()
	}
}

func (c *Cache) l1Bytes() float64 {
	m := c.l1.Metrics
	return float64(int64(m.CostAdded() - m.CostEvicted()))
}

func (c *Cache) l1Entries() float64 {
	m := c.l1.Metrics
	return float64(int64(m.KeysAdded() - m.KeysEvicted()))
}

// Get looks key up in L1, then in L2 (Redis mode); an L2 hit is copied into L1 for the rest
// of its TTL. It misses whenever Usable is false. The returned value is shared: the caller
// must not modify it. Get does not count hits or misses (the caller reports them with Hit
// and Miss).
func (c *Cache) Get(ctx context.Context, key Key) ([]byte, Layer, bool) {
	if !c.Usable() {
		return nil, LayerNone, false
	}
	if val, ok := c.l1Get(key); ok {
		return val, LayerL1, true
	}
	if c.mode != modeRedis {
		return nil, LayerNone, false
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	defer cancel()
	rk := entryKey(key)
	pipe := c.rdb.Pipeline()
	get := pipe.Get(rctx, rk)
	pttl := pipe.PTTL(rctx, rk)
	if _, err := pipe.Exec(rctx); err != nil {
		if !errors.Is(err, redis.Nil) {
			c.entryFailed(ctx, start, "get", err)
		}
		return nil, LayerNone, false
	}
	val, err := get.Bytes()
	if err != nil {
		return nil, LayerNone, false
	}
	if ttl := pttl.Val(); ttl > 0 {
		c.l1Set(key, val, ttl, false)
	}
	return val, LayerL2, true
}

// Set stores a copy of val under key for at most ttl: in L1 (cost len(val) plus overhead)
// and, in Redis mode, in L2. The TTL is shortened by up to 10% at random, so that entries
// filled together do not expire together. It returns false, storing nothing, when val is
// larger than Config.MaxResultBytes, ttl is not positive, or the cache is not usable;
// otherwise true when at least one layer took it (L1 may decline an entry its admission
// policy deems not worth keeping). When Set returns, a Get on this node finds the entry
// unless L1 declined it.
//
// The first fill of a key wins, in both layers: a key's entry never changes once stored, so
// a session that read it never reads another (older) reply under the same key. When Redis
// already holds the key (another node filled it first), L1 takes Redis's value.
func (c *Cache) Set(ctx context.Context, key Key, val []byte, ttl time.Duration) bool {
	_, ok := c.Fill(ctx, key, val, ttl)
	return ok
}

// Fill is Set that also returns the entry the key holds afterwards: val's copy, or the one
// an earlier fill stored (the caller must not modify it). ok is Set's result.
func (c *Cache) Fill(ctx context.Context, key Key, val []byte, ttl time.Duration) (stored []byte, ok bool) {
	if len(val) > c.cfg.MaxResultBytes || ttl <= 0 || !c.Usable() {
		return nil, false
	}
	ttl = jitter(ttl)
	if held, ok := c.l1Get(key); ok {
		return held, true // filled already on this node
	}
	v := bytes.Clone(val)
	if v == nil {
		v = []byte{}
	}
	if c.mode != modeRedis {
		// Wait: the entry must be visible to the singleflight followers woken next.
		if !c.l1Set(key, v, ttl, true) {
			return nil, false
		}
		return v, true
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	defer cancel()
	created, err := c.rdb.SetNX(rctx, entryKey(key), v, ttl).Result()
	if err != nil {
		c.entryFailed(ctx, start, "set", err)
		if !c.l1Set(key, v, ttl, false) {
			return nil, false
		}
		return v, true
	}
	if !created {
		won, err := c.rdb.Get(rctx, entryKey(key)).Bytes()
		if err != nil {
			if !errors.Is(err, redis.Nil) {
				c.entryFailed(ctx, start, "get", err)
			}
			return nil, false // the winner expired meanwhile: store nothing rather than differ
		}
		v = won
	}
	// No wait for L1 here: a follower that does not find the entry there yet gets it from
	// Redis, which has it.
	c.l1Set(key, v, ttl, false)
	return v, true
}

// entryFailed handles an error of an L2 read or write. An error reply (say OOM, with
// noeviction and a full Redis) means Redis answers: the entry is skipped and cached reads
// go on. Anything else (no answer in time, a broken connection) marks Redis down.
func (c *Cache) entryFailed(ctx context.Context, start time.Time, op string, err error) {
	var reply redis.Error
	if errors.As(err, &reply) {
		c.log.Debug("redis refused an entry operation", zap.String("op", op), zap.Error(err))
		return
	}
	c.failed(ctx, start, op, err)
}

// l1Get returns key's L1 value.
func (c *Cache) l1Get(key Key) ([]byte, bool) {
	c.l1mu.RLock()
	defer c.l1mu.RUnlock()
	if c.l1closed {
		return nil, false
	}
	if e, ok := c.l1.Get(l1Key(key)); ok && e.key == key {
		return e.val, true
	}
	return nil, false
}

// l1Set stores val (owned by L1 from now on) under key for ttl, and reports whether L1
// took it. With wait, it returns only once a Get can find the entry.
func (c *Cache) l1Set(key Key, val []byte, ttl time.Duration, wait bool) bool {
	c.l1mu.RLock()
	defer c.l1mu.RUnlock()
	if c.l1closed {
		return false
	}
	ok := c.l1.SetWithTTL(l1Key(key), &l1Entry{key: key, val: val}, l1Cost(val), ttl)
	if ok && wait {
		c.l1.Wait()
	}
	return ok
}

func l1Cost(val []byte) int64 { return int64(len(val)) + l1Overhead }

// jitter shortens ttl by a random 0-10%.
func jitter(ttl time.Duration) time.Duration {
	if ttl < 10 {
		return ttl
	}
	return ttl - rand.N(ttl/10+1)
}
