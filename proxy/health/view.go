package health

import (
	"cmp"
	"slices"
	"time"

	"go.uber.org/zap"
)

// groupView is the immutable state of one group that the per-transaction questions read.
// A new one replaces it after every check of one of the group's endpoints.
type groupView struct {
	writer   string    // Writer's answer
	writerEP *endpoint // for its ban
	// writerUsable: the writer is not known to be down.
	writerUsable bool
	// readers are the replicas eligible for reads (up, in recovery, lag within bound),
	// best first: this proxy's region first, then by lag, then in configuration order.
	readers []reader
	// local is how many of readers (the first ones) are in this proxy's region.
	local int
	// samples are the writer's checks, oldest first (shared, never written).
	samples []lsnSample
}

// reader is one eligible replica as of the view.
type reader struct {
	ep        *endpoint
	addr      string
	replayLSN uint64
}

// publish rebuilds g's view from its endpoints' states: lags, eligibility, order. The
// caller holds c.mu.
func (c *Checker) publish(g *group) {
	now := time.Now()
	samples := g.samples[max(0, len(g.samples)-c.cfg.sampleCapacity()):]
	type ranked struct {
		reader
		local bool
		lag   time.Duration
		index int
	}
	var cands []ranked
	for _, ep := range g.endpoints {
		st := &ep.state
		if ep == g.writer {
			st.lag, st.lagKnown, st.receiving = 0, true, false
			c.m.export(ep, RoleWriter)
			continue
		}
		st.lag, st.lagKnown = 0, false
		if !st.up || !st.inRecovery {
			st.receiving = false
		} else {
			st.lag, st.lagKnown = replicaLag(st, samples)
			if rec := receiving(st, samples, now, c.cfg.MaxReplicaLag); rec != st.receiving {
				st.receiving = rec
				if !rec {
					c.log.Warn("health: replica stopped receiving WAL", zap.String("group", g.name), zap.String("endpoint", ep.addr),
						zap.Stringer("receive_lsn", LSN(st.receiveLSN)))
				}
			}
			if st.lagKnown && st.lag <= c.cfg.MaxReplicaLag {
				cands = append(cands, ranked{
					reader: reader{ep: ep, addr: ep.addr, replayLSN: st.lsn},
					local:  ep.region == c.cfg.Region,
					lag:    st.lag,
					index:  ep.index,
				})
			}
		}
		c.m.export(ep, RoleReplica)
	}
	slices.SortFunc(cands, func(a, b ranked) int {
		switch {
		case a.local != b.local:
			if a.local {
				return -1
			}
			return 1
		case a.lag != b.lag:
			return cmp.Compare(a.lag, b.lag)
		}
		return cmp.Compare(a.index, b.index)
	})
	v := &groupView{
		writer:       g.writer.addr,
		writerEP:     g.writer,
		writerUsable: !g.writer.state.checked || g.writer.state.up,
		readers:      make([]reader, len(cands)),
		samples:      samples,
	}
	for i := range cands {
		v.readers[i] = cands[i].reader
		if cands[i].local {
			v.local++
		}
	}
	g.view.Store(v)
}

// view returns the current view of a group, or nil if the group is unknown.
func (c *Checker) view(name string) *groupView {
	g := c.top.Load().groups[name]
	if g == nil {
		return nil
	}
	return g.view.Load()
}

// Writer returns the endpoint to send group's writes to: the endpoint that most recently
// answered pg_is_in_recovery() = false (with several at once, the newest promotion); before
// any check, or when no endpoint has claimed to be writable, the configured writer. It
// returns the writer even while it is down or banned. "" if the group is unknown.
// No I/O, no lock, no allocation.
func (c *Checker) Writer(group string) string {
	if v := c.view(group); v != nil {
		return v.writer
	}
	return ""
}

// ReadTargets appends to dst the endpoints a read for group may go to, best first, and
// returns the extended slice:
//   - replicas that answered their latest check, are in recovery, lag at most
//     MaxReplicaLag, are not banned and, when minLSN > 0, have replayed at least minLSN;
//     those in this proxy's region first, then the others, each by increasing lag;
//   - then the writer, unless it is banned or down;
//   - and if that leaves nothing, the writer anyway, so there is always a target to try.
//
// It appends nothing for an unknown group. No I/O, no lock, and no allocation when dst has
// room.
func (c *Checker) ReadTargets(group string, minLSN uint64, dst []string) []string {
	return c.ReadTargetsFrom(group, minLSN, 0, dst)
}

// ReadTargetsFrom is ReadTargets with the replicas of this proxy's region taken in turn:
// the list starts at the one numbered start modulo their count, so that callers passing
// different (or successive) numbers spread reads over equivalent replicas. The order of the
// other candidates is ReadTargets'. No I/O, no lock, no allocation when dst has room.
func (c *Checker) ReadTargetsFrom(group string, minLSN uint64, start uint32, dst []string) []string {
	v := c.view(group)
	if v == nil {
		return dst
	}
	now := c.now()
	n := len(dst)
	var first int
	if v.local > 1 {
		first = int(start % uint32(v.local))
	}
	for k := range v.readers {
		i := k
		if k < v.local {
			i = (k + first) % v.local
		}
		r := &v.readers[i]
		if (minLSN > 0 && r.replayLSN < minLSN) || r.ep.banned(now) {
			continue
		}
		dst = append(dst, r.addr)
	}
	if len(dst) == n || (v.writerUsable && !v.writerEP.banned(now)) {
		dst = append(dst, v.writer)
	}
	return dst
}

// WriterLSNAfter returns the WAL insert position the group's writer reported in the earliest
// check that started after t, and ok=false if no such check of the current writer has
// completed yet (or the group is unknown). Every transaction the writer committed before t is
// at or below that position, so after a session's write commits at t, a replica whose replay
// position has reached it serves that session's reads consistently: pass it as ReadTargets'
// minLSN. No I/O, no lock, no allocation.
func (c *Checker) WriterLSNAfter(group string, t time.Time) (lsn uint64, ok bool) {
	v := c.view(group)
	if v == nil {
		return 0, false
	}
	s := v.samples
	i, _ := slices.BinarySearchFunc(s, t, func(x lsnSample, t time.Time) int {
		if x.start.After(t) {
			return 1
		}
		return -1
	})
	if i == len(s) {
		return 0, false
	}
	return s[i].insertLSN, true
}
