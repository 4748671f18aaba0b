package health

import "time"

// lsnSample is one successful check of a group's elected writer.
type lsnSample struct {
	start     time.Time // when the check began (monotonic)
	writeLSN  uint64    // pg_current_wal_lsn(): what replicas can have received
	insertLSN uint64    // pg_current_wal_insert_lsn(): past every commit made before start
}

// replicaLag returns a replica's lag from its latest check and the group writer's samples
// (oldest first), and whether the lag is known at all.
//
// A replica that has replayed at least the writer's latest observed write position has no
// lag: this is what keeps an idle cluster from looking ever more lagged. Otherwise two upper
// bounds are available, and the smaller one is the answer:
//   - the age of the last transaction it replayed (now() - pg_last_xact_replay_timestamp(),
//     on the replica): anything it misses was committed after that one;
//   - the time since the newest writer sample it has replayed past: anything it misses was
//     inserted after that sample began. This one keeps a stray WAL record on an idle writer
//     (a checkpoint, a standby snapshot) from making a replica whose last transaction is old
//     look lagged by all that age.
//
// A replica that stopped receiving WAL (cut off from its writer) while the writer moves on
// keeps falling behind by both measures and so is excluded once past the bound.
func replicaLag(s *endpointState, samples []lsnSample) (lag time.Duration, known bool) {
	if n := len(samples); n > 0 && s.lsn >= samples[n-1].writeLSN {
		return 0, true
	}
	if s.hasReplayAge {
		lag, known = s.replayAge, true
	}
	for i := len(samples) - 1; i >= 0; i-- {
		if samples[i].insertLSN <= s.lsn {
			if d := max(0, s.observedAt.Sub(samples[i].start)); !known || d < lag {
				lag = d
			}
			known = true
			break
		}
	}
	return lag, known
}

// receiving reports whether a replica is still getting WAL: its receive position moved
// within window, or it has received all the writer wrote as of the latest sample. It is
// informational (Snapshot, logs); lag alone decides eligibility.
func receiving(s *endpointState, samples []lsnSample, now time.Time, window time.Duration) bool {
	if n := len(samples); n > 0 && s.receiveLSN >= samples[n-1].writeLSN {
		return true
	}
	return now.Sub(s.receiveAdvancedAt) <= window
}
