package health

import "time"

// EndpointStatus is one endpoint's state as the checker sees it, for the admin API and tests.
type EndpointStatus struct {
	Group  string `json:"group"`
	Addr   string `json:"addr"`
	Region string `json:"region"`
	// Role is RoleWriter for the group's current writer (Writer), else RoleReplica.
	Role string `json:"role"`
	// Up: the latest check succeeded. Checked: a check has completed at all.
	Up      bool `json:"up"`
	Checked bool `json:"checked"`
	// InRecovery is pg_is_in_recovery() from the latest successful check.
	InRecovery bool `json:"in_recovery"`
	// Lag is the replica's measured lag (0 for the writer); LagKnown is false when it cannot
	// be measured (down, not in recovery, or no data yet). Lag is in nanoseconds in JSON.
	Lag      time.Duration `json:"lag"`
	LagKnown bool          `json:"lag_known"`
	// ReplayLSN is the replay position of an endpoint in recovery; WriteLSN the write
	// position of one that is not; ReceiveLSN the last WAL a replica received.
	ReplayLSN  LSN `json:"replay_lsn"`
	WriteLSN   LSN `json:"write_lsn"`
	ReceiveLSN LSN `json:"receive_lsn"`
	// Receiving: a replica's WAL receipt moved recently or has caught up with the writer.
	Receiving bool `json:"receiving"`
	// Timeline is a writable endpoint's WAL timeline.
	Timeline uint32 `json:"timeline,omitempty"`
	// BannedUntil is the end of the endpoint's current read ban; zero when not banned.
	BannedUntil time.Time `json:"banned_until,omitzero"`
	// LastCheck is when the latest check ended; LastError its error, if it failed.
	LastCheck time.Time `json:"last_check,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Snapshot returns the state of every endpoint, groups and endpoints in configuration order
// (each group's configured writer first). It takes the checker's lock briefly; it is not for
// the per-transaction path.
func (c *Checker) Snapshot() []EndpointStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []EndpointStatus
	for _, g := range c.top.Load().order {
		for _, ep := range g.endpoints {
			st := &ep.state
			s := EndpointStatus{
				Group:      g.name,
				Addr:       ep.addr,
				Region:     ep.region,
				Role:       RoleReplica,
				Up:         st.up,
				Checked:    st.checked,
				InRecovery: st.inRecovery,
				Lag:        st.lag,
				LagKnown:   st.lagKnown,
				ReceiveLSN: LSN(st.receiveLSN),
				Receiving:  st.receiving,
				Timeline:   st.timeline,
				LastError:  st.lastErr,
			}
			if ep == g.writer {
				s.Role = RoleWriter
			}
			if st.answered && st.inRecovery {
				s.ReplayLSN = LSN(st.lsn)
			} else if st.answered {
				s.WriteLSN = LSN(st.lsn)
			}
			if until := ep.bannedUntil.Load(); until > now {
				s.BannedUntil = c.base.Add(time.Duration(until))
			}
			if st.checked {
				s.LastCheck = st.lastCheck
			}
			out = append(out, s)
		}
	}
	return out
}
