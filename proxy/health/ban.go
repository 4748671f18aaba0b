package health

import (
	"time"

	"go.uber.org/zap"
)

// Ban takes addr out of ReadTargets (in every group that lists it) because a read failed
// there. The first ban lasts BanTime; a ban after that one expired, with no successful check
// of the endpoint in between, lasts twice the previous one, up to MaxBanTime. A Ban while the
// endpoint is already banned changes nothing (the many reads in flight when an endpoint dies
// count as one failure). An address no group lists is ignored. Ban never blocks on I/O and
// is safe for concurrent use.
func (c *Checker) Ban(addr string, cause error) {
	t := c.top.Load()
	eps := t.byAddr[addr]
	if len(eps) == 0 {
		c.log.Debug("ban of an unknown endpoint ignored", zap.String("endpoint", addr), zap.Error(cause))
		return
	}
	now := c.now()
	for _, ep := range eps {
		d, ok := ep.ban(now, c.cfg.BanTime, c.cfg.MaxBanTime)
		if !ok {
			continue
		}
		ep.bans.Inc()
		c.log.Warn("endpoint banned from reads", zap.String("group", ep.group.name), zap.String("endpoint", addr),
			zap.Duration("for", d), zap.Error(cause))
	}
}

// ban bans ep from now (Checker clock) unless it is banned already, and returns the ban's
// length.
func (ep *endpoint) ban(now int64, base, maxBan time.Duration) (time.Duration, bool) {
	ep.banMu.Lock()
	defer ep.banMu.Unlock()
	if ep.banned(now) {
		return 0, false
	}
	ep.banCount++
	d := banDuration(ep.banCount, base, maxBan)
	ep.bannedUntil.Store(now + int64(d))
	return d, true
}

// clearBackoff forgets past bans once a check succeeded after the last ban expired.
func (ep *endpoint) clearBackoff(now int64) {
	ep.banMu.Lock()
	defer ep.banMu.Unlock()
	if ep.banCount > 0 && !ep.banned(now) {
		ep.banCount = 0
	}
}

// banDuration returns the length of the n-th consecutive ban (n >= 1): base doubled n-1
// times, capped at maxBan.
func banDuration(n int, base, maxBan time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < maxBan; i++ {
		d *= 2
	}
	return min(d, maxBan)
}
