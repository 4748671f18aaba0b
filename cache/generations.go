package cache

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
)

// Generations appends the current values of gens (in the same order) to dst and returns
// the extended slice. In Redis mode a value comes from this node's generation memory when
// it is fresh (read less than Config.Staleness ago and not bumped since, as far as pub/sub
// told), else from Redis: all the others in one round trip, by a script that creates
// missing counters at random values (Group "", LSN 0). On error dst is returned unchanged:
// the error wraps ErrUnavailable when Redis is known down or the cache is off; a Redis
// failure also marks Redis down (Usable turns false).
func (c *Cache) Generations(ctx context.Context, gens []Gen, dst []GenValue) ([]GenValue, error) {
	return c.generations(ctx, gens, dst, false)
}

// FreshGenerations is Generations read from Redis whatever this node remembers (and
// remembered afterwards). A cache miss asks it before it reads the database: a reply read
// now must not be filled under generations older than Redis's, or a session could read
// newer data under them than entries under the current ones hold.
func (c *Cache) FreshGenerations(ctx context.Context, gens []Gen, dst []GenValue) ([]GenValue, error) {
	return c.generations(ctx, gens, dst, true)
}

func (c *Cache) generations(ctx context.Context, gens []Gen, dst []GenValue, fresh bool) ([]GenValue, error) {
	switch c.mode {
	case modeOff:
		return dst, fmt.Errorf("generations: %w: clustered node without redis", ErrUnavailable)
	case modeLocal:
		keys, err := genKeys(gens, make([]string, 0, len(gens)))
		if err != nil {
			return dst, fmt.Errorf("generations: %w", err)
		}
		c.m.fetchMemory.Inc()
		return c.local.get(keys, dst), nil
	}
	if !c.up.Load() {
		c.m.fetchError.Inc()
		return dst, fmt.Errorf("generations: %w: redis is down", ErrUnavailable)
	}
	keys, err := genKeys(gens, make([]string, 0, len(gens)))
	if err != nil {
		return dst, fmt.Errorf("generations: %w", err)
	}
	n := len(dst)
	dst = append(dst, make([]GenValue, len(gens))...)
	out := dst[n:]
	start := time.Now()
	var seq0 uint64
	var missing []int
	if fresh {
		seq0 = c.mem.begin()
		missing = make([]int, len(keys))
		for i := range missing {
			missing[i] = i
		}
	} else {
		seq0, missing = c.mem.lookup(keys, out, start, nil)
	}
	if len(missing) == 0 {
		c.m.fetchMemory.Inc()
		return dst, nil
	}
	fetch := make([]string, len(missing))
	for i, j := range missing {
		fetch[i] = keys[j]
	}
	epoch, vals, err := c.runFetch(ctx, fetch)
	if err != nil {
		c.m.fetchError.Inc()
		c.failed(ctx, start, "generations", err)
		return dst[:n], fmt.Errorf("generations: %w", err)
	}
	for i, j := range missing {
		out[j] = vals[i]
	}
	c.mem.store(fetch, vals, seq0, start, epoch)
	c.m.fetchRedis.Inc()
	return dst, nil
}

// Bump advances every generation the touches map to on group (Touch.Gens), recording group
// and lsn (0: unknown) in each, in one atomic Redis script that also publishes the bumped
// keys to the other nodes; this node's generation memory holds the new values before Bump
// returns, so this node reads its own writes. The Redis call does not end early when ctx is
// cancelled (a committed write must be bumped); it is bounded by Config.Timeout.
//
// When Redis fails, or is already known down, the bumps are kept (bounded, merged) and
// applied before cached reads resume, Redis is marked down, and the error is returned: the
// caller logs it and still acknowledges the write. source labels
// shardwire_cache_invalidations_total ("proxy", "change_feed", "flush").
func (c *Cache) Bump(ctx context.Context, source, group string, lsn uint64, touches []Touch) error {
	var gens []Gen
	for i := range touches {
		gens = touches[i].Gens(group, gens)
	}
	return c.BumpGens(ctx, source, group, lsn, gens)
}

// BumpIfNewer is Bump for a write that may have been bumped already: the change feed's
// commits, most of which the proxy bumped before acknowledging them. A generation that
// records group at lsn or later is left alone; bumping it again would make a generation
// newer than later writes' (whose bumps the feed's trails), under which replies older
// than what sessions already read could be filled. Bumps kept while Redis is down are
// replayed unconditionally.
func (c *Cache) BumpIfNewer(ctx context.Context, source, group string, lsn uint64, touches []Touch) error {
	var gens []Gen
	for i := range touches {
		gens = touches[i].Gens(group, gens)
	}
	return c.bumpGens(ctx, source, group, lsn, gens, lsn != 0)
}

// BumpGens bumps explicit generations (a flush: GenGlobal, or GenTable on every group) as
// Bump does.
func (c *Cache) BumpGens(ctx context.Context, source, group string, lsn uint64, gens []Gen) error {
	return c.bumpGens(ctx, source, group, lsn, gens, false)
}

func (c *Cache) bumpGens(ctx context.Context, source, group string, lsn uint64, gens []Gen, conditional bool) error {
	if c.mode == modeOff || len(gens) == 0 {
		return nil
	}
	items := make([]bumpItem, 0, len(gens))
	seen := make(map[string]struct{}, len(gens))
	for _, g := range gens {
		k, err := genKey(g)
		if err != nil {
			return fmt.Errorf("bump: %w", err)
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		items = append(items, bumpItem{key: k, db: g.DB, group: group, lsn: lsn})
	}
	c.m.invalidations.WithLabelValues(source).Add(float64(len(items)))
	if c.mode == modeLocal {
		keys := make([]string, len(items))
		for i, it := range items {
			keys[i] = it.key
		}
		c.local.bump(keys, group, lsn, conditional, nil)
		return nil
	}

	c.stateMu.Lock()
	if !c.up.Load() {
		c.pending.add(items)
		c.stateMu.Unlock()
		return fmt.Errorf("bump: %w: redis is down; kept for retry", ErrUnavailable)
	}
	c.stateMu.Unlock()

	start := time.Now()
	seq0 := c.mem.begin()
	epoch, vals, err := c.runBump(context.WithoutCancel(ctx), items, conditional)
	if err != nil {
		c.stateMu.Lock()
		c.pending.add(items)
		c.stateMu.Unlock()
		c.markDown("bump", err)
		return fmt.Errorf("bump: kept for retry: %w", err)
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.key
	}
	c.mem.store(keys, vals, seq0, start, epoch)
	c.m.invalidationLag.WithLabelValues(source).Observe(time.Since(start).Seconds())
	return nil
}

// runFetch runs fetchScript for keys.
func (c *Cache) runFetch(ctx context.Context, keys []string) (string, []GenValue, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	defer cancel()
	rkeys := make([]string, 0, len(keys)+1)
	rkeys = append(append(rkeys, epochKey), keys...)
	args := make([]any, 0, len(keys)+1)
	args = append(args, randomArg())
	for range keys {
		args = append(args, randomArg())
	}
	res, err := fetchScript.Run(ctx, c.rdb, rkeys, args...).Result()
	if err != nil {
		return "", nil, fmt.Errorf("redis fetch script: %w", err)
	}
	return parseGenReply(res, len(keys))
}

// runBump runs bumpScript for items.
func (c *Cache) runBump(ctx context.Context, items []bumpItem, conditional bool) (string, []GenValue, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	defer cancel()
	rkeys := make([]string, 0, len(items)+1)
	rkeys = append(rkeys, epochKey)
	args := make([]any, 0, 3+3*len(items))
	args = append(args, randomArg(), bumpChannel, c.id)
	for _, it := range items {
		rkeys = append(rkeys, it.key)
		group := it.group
		if conditional {
			group = "?" + group
		}
		args = append(args, randomArg(), group, formatLSN(it.lsn))
	}
	res, err := bumpScript.Run(ctx, c.rdb, rkeys, args...).Result()
	if err != nil {
		return "", nil, fmt.Errorf("redis bump script: %w", err)
	}
	return parseGenReply(res, len(items))
}

// randomArg is a random 62-bit start value, as a script argument.
func randomArg() string { return strconv.FormatUint(randomStart(), 10) }

// parseGenReply decodes {epoch, v, g, l, ...} for n generations.
func parseGenReply(res any, n int) (string, []GenValue, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) != 1+3*n {
		return "", nil, fmt.Errorf("redis script: unexpected reply %T of %d items for %d generations", res, lenOf(res), n)
	}
	str := func(i int) (string, error) {
		s, ok := arr[i].(string)
		if !ok {
			return "", fmt.Errorf("redis script: reply item %d is %T, want a string", i, arr[i])
		}
		return s, nil
	}
	epoch, err := str(0)
	if err != nil {
		return "", nil, err
	}
	shift := epochShift(epoch)
	vals := make([]GenValue, n)
	for i := range vals {
		vs, err := str(1 + 3*i)
		if err != nil {
			return "", nil, err
		}
		g, err := str(2 + 3*i)
		if err != nil {
			return "", nil, err
		}
		ls, err := str(3 + 3*i)
		if err != nil {
			return "", nil, err
		}
		v, err := strconv.ParseUint(vs, 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("redis script: counter %q: %w", vs, err)
		}
		lsn, err := parseLSN(ls)
		if err != nil {
			return "", nil, fmt.Errorf("redis script: %w", err)
		}
		vals[i] = GenValue{V: v + shift, Group: g, LSN: lsn}
	}
	return epoch, vals, nil
}

// epochShift is what an epoch adds to its counters' values (wrapping): counters restored from
// a snapshot, or re-created after a restart, repeat values an earlier epoch used, and the
// shift keeps the cache keys built from them apart. Within an epoch a bump still adds one.
func epochShift(epoch string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(epoch))
	return h.Sum64()
}

func lenOf(res any) int {
	if arr, ok := res.([]any); ok {
		return len(arr)
	}
	return 0
}
