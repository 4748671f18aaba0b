package health

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// endpoint is one backend server of one group, with its check connection, its last check
// result and its ban. An endpoint keeps its identity (and state) across SetGroups as long as
// the group still lists its address.
type endpoint struct {
	addr  string
	group *group

	// sem admits one check at a time; its holder owns conn and retired.
	sem     chan struct{}
	connCfg *pgconn.Config
	connErr error // the address cannot be dialled at all (bad host:port)
	conn    *pgconn.PgConn
	retired bool // removed by SetGroups: no more checks

	// Guarded by Checker.mu.
	gone       bool   // removed by SetGroups: its results are dropped
	region     string // the endpoint's region (today its group's)
	index      int    // position in the group's configuration: the writer first
	state      endpointState
	metricRole string // the role label last exported for endpoint_up

	// bannedUntil is the ban deadline in Checker clock nanoseconds; read lock-free.
	bannedUntil atomic.Int64
	banMu       sync.Mutex
	banCount    int // consecutive bans since the last successful check after a ban
	bans        prometheus.Counter
}

// endpointState is what the checker knows of an endpoint.
type endpointState struct {
	checked   bool // a check completed (well or not)
	answered  bool // a check succeeded at least once
	up        bool // the latest check succeeded
	lastCheck time.Time
	lastErr   string

	// From the latest successful check.
	inRecovery   bool
	lsn          uint64
	insertLSN    uint64
	receiveLSN   uint64
	replayAge    time.Duration
	hasReplayAge bool
	timeline     uint32
	observedAt   time.Time

	// promotedAt is when a check first saw the endpoint out of recovery after seeing it in
	// recovery; zero if never seen.
	promotedAt time.Time
	// receiveAdvancedAt is when the receive position was last seen to move.
	receiveAdvancedAt time.Time

	// Derived when the group view is rebuilt.
	lag       time.Duration
	lagKnown  bool
	receiving bool
}

// apply folds a check result into the state and reports whether the endpoint just left
// recovery and whether it just changed between up and down.
func (s *endpointState) apply(res probeResult) (promoted, upChanged bool) {
	wasUp, wasChecked := s.up, s.checked
	s.checked = true
	s.lastCheck = res.end
	if res.err != nil {
		s.up = false
		s.lastErr = res.err.Error()
		return false, wasUp || !wasChecked
	}
	s.up = true
	s.lastErr = ""
	promoted = s.answered && s.inRecovery && !res.inRecovery
	if promoted {
		s.promotedAt = res.end
	}
	if res.receiveLSN != s.receiveLSN || s.receiveAdvancedAt.IsZero() {
		s.receiveAdvancedAt = res.end
	}
	s.answered = true
	s.inRecovery = res.inRecovery
	s.lsn = res.lsn
	s.insertLSN = res.insertLSN
	s.receiveLSN = res.receiveLSN
	s.replayAge, s.hasReplayAge = res.replayAge, res.hasReplayAge
	s.timeline = res.timeline
	s.observedAt = res.end
	return promoted, !wasUp
}

// banned reports whether the endpoint is banned at now (Checker clock nanoseconds).
func (ep *endpoint) banned(now int64) bool { return ep.bannedUntil.Load() > now }
