package proxy

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// A transaction of a database with two_phase_commit may span shard groups. It runs on one
// writer backend per group it touches — its branches — each in a transaction of its own; the
// session's attached backend (s.server) is the branch of the group the current request is
// for, the others wait, checked out of their pools. COMMIT commits them together
// (dtx_commit.go). Each branch sees its own group's snapshot: the transaction commits
// atomically but does not read one snapshot across groups.

// branch is one group's backend in a transaction over several groups.
type branch struct {
	group  int
	sc     *pool.Conn
	entry  *poolEntry
	status byte // the branch's transaction status: 'T', or 'E' after an error
	wrote  bool // a write ran on it
}

// beginFrame is the BEGIN a branch opened for a transaction without a BEGIN the proxy kept.
var beginFrame = simpleQueryFrame("BEGIN")

// simpleQueryFrame encodes a Query message.
func simpleQueryFrame(sql string) []byte {
	msg := wire.AppendHeader(nil, wire.Query, len(sql)+1)
	return append(append(msg, sql...), 0)
}

// multiGroupTx reports whether the session's transaction spans several groups (s.mu held).
func (s *session) multiGroupTxLocked() bool { return len(s.branches) > 0 }

// twoPhaseEnabled reports whether the session's database lets transactions span groups.
func (s *session) twoPhaseEnabled() bool {
	return s.db.TwoPhaseCommit && s.srv.twoPhase != nil
}

// canBranchLocked reports whether the attached backend's transaction may take another group
// for t as a new or parked branch (s.mu held): a database with two_phase_commit, a transaction
// open on a writer and in good state, a writer target, no savepoint, no session pinning, and
// no request of the current branch still unanswered.
func (s *session) canBranchLocked(t routeTarget) bool {
	return (s.twoPhaseEnabled() || s.implicitTx) && t.writer && t.group != anyGroup && s.srvWriter &&
		s.txStatus == 'T' && !s.savepoints && s.mode != config.PoolModeSession &&
		s.relayDone == nil && s.pinReason == "" && s.advisory == 0 && !s.copyIn
}

// drainBranchLocked asks the attached backend to send what it holds back (a Flush) and reads
// its replies until none is pending, so that the session can turn to another branch; it
// reports false when that did not leave the branch idle in its transaction. s.mu is held,
// released meanwhile.
func (s *session) drainBranchLocked() bool {
	if s.queue.len() == 0 {
		return true
	}
	sc := s.server
	if s.queue.syncs == 0 {
		_, _ = sc.W.Write(flushFrame)
		s.flushMark = s.queue.pushed()
	}
	s.mu.Unlock()
	s.pump()
	s.mu.Lock()
	return s.server == sc && s.queue.len() == 0 && s.txStatus == 'T'
}

// flushFrame is a Flush message.
var flushFrame = []byte{wire.Flush, 0, 0, 0, 4}

// switchBranchLocked makes the backend of t's group the attached one, opening a branch there
// (a writer backend and BEGIN) the first time. s.mu is held (released while a backend is
// checked out).
func (s *session) switchBranchLocked(t routeTarget) error {
	if len(s.branches) == 0 {
		s.branches = append(s.branches, branch{group: s.srvGroup, sc: s.server, entry: s.pool, status: 'T', wrote: s.wrote})
		if !s.implicitTx {
			s.srv.multi.multiGroup.Inc()
		}
		if d := s.srv.config().TwoPhase.LockTimeout.D(); d > 0 {
			// The first branch is idle (drained): set it on the spot.
			if err := runSimpleInTx(s.server, lockTimeoutSQL(d)); err != nil {
				return fmt.Errorf("bound the transaction's lock waits: %w", err)
			}
		}
	}
	for i := range s.branches {
		if b := &s.branches[i]; b.sc == s.server {
			b.status, b.wrote = s.txStatus, b.wrote || s.wrote
		}
	}
	for i := range s.branches {
		if b := &s.branches[i]; b.group == t.group {
			s.server, s.pool = b.sc, b.entry
			s.srvGroup, s.srvWriter, s.srvAddr = b.group, true, b.sc.Addr()
			s.txStatus, s.wrote = b.status, b.wrote
			return nil
		}
	}
	s.mu.Unlock()
	sc, entry, at, err := s.attach(t)
	s.mu.Lock()
	if err != nil {
		return err
	}
	if !at.writer { // cannot happen: t.writer
		entry.release(sc)
		return fmt.Errorf("branch for group %d attached a replica", t.group)
	}
	s.branches = append(s.branches, branch{group: at.group, sc: sc, entry: entry, status: 'T'})
	s.server, s.pool = sc, entry
	s.srvGroup, s.srvWriter, s.srvAddr = at.group, true, sc.Addr()
	s.wrote = false
	s.replayOK, s.fenceOK = false, false
	begin := s.txBeginFrame
	if len(begin) == 0 {
		begin = beginFrame
	}
	s.queue.push(pending{kind: pendQuery, action: actSwallow})
	_, _ = sc.W.Write(begin)
	s.boundLockWaitLocked(sc)
	s.txStatus = 'T'
	s.logger().Debug("transaction spans another shard group", zap.Int("group", at.group), zap.Int("branches", len(s.branches)))
	return nil
}

// boundLockWaitLocked sets the branch's lock_timeout for the rest of its transaction
// (two_phase.lock_timeout): a lock wait that crosses groups is a deadlock no group detects.
// s.mu is held; the reply is swallowed.
func (s *session) boundLockWaitLocked(sc *pool.Conn) {
	d := s.srv.config().TwoPhase.LockTimeout.D()
	if d <= 0 {
		return
	}
	s.queue.push(pending{kind: pendQuery, action: actSwallow})
	_, _ = sc.W.Write(simpleQueryFrame(lockTimeoutSQL(d)))
}

// lockTimeoutSQL sets lock_timeout for the rest of the transaction.
func lockTimeoutSQL(d time.Duration) string {
	return fmt.Sprintf("SET LOCAL lock_timeout = %d", max(d.Milliseconds(), 1))
}

// runSimpleInTx runs sql on a backend the caller owns that is idle in a transaction and must
// stay so.
func runSimpleInTx(sc *pool.Conn, sql string) error {
	fail, status, err := runQuery(sc, sql, 10*time.Second, func(wire.Frame) {})
	switch {
	case err != nil:
		sc.MarkBroken()
		return err
	case fail != nil:
		return fmt.Errorf("server error %s: %s", errorCode(fail), errorMessage(fail))
	case status != 'T':
		return fmt.Errorf("transaction status %q after %q", status, sql)
	}
	return nil
}

// branchGroupsLocked returns the groups of the session's branches (s.mu held).
func (s *session) branchGroupsLocked(m *shardmap.Map) []string {
	names := make([]string, 0, len(s.branches))
	for _, b := range s.branches {
		if m != nil && b.group < len(m.Groups) {
			names = append(names, m.Groups[b.group].Name)
		}
	}
	return names
}

// dropParkedBranchesLocked gives up every branch but the attached one: their backends are
// closed, which rolls their transactions back (s.mu held). The transaction is over.
func (s *session) dropParkedBranchesLocked() {
	for _, b := range s.branches {
		if b.sc != s.server {
			b.sc.MarkBroken()
			b.entry.release(b.sc)
		}
	}
	s.branches = s.branches[:0]
	s.savepoints = false
}

// multiGroupRefusal is the error for a statement a transaction over several groups cannot run.
func multiGroupRefusal(what string) *clientError {
	return newClientError(codeFeatureNotSupp, what+" is not supported in a transaction that spans shard groups").
		withHint("keep it in a transaction of one shard group, or run it outside the transaction")
}

// refuseInMultiGroupTx answers a statement a transaction spanning groups cannot run, and
// reports whether it did: savepoints (a branch would roll back alone), PREPARE TRANSACTION,
// and transaction control inside a string of several statements.
func (s *session) refuseInMultiGroupTx(plan *router.Plan, simple bool) bool {
	s.mu.Lock()
	multi := len(s.branches) > 0
	s.mu.Unlock()
	if !multi {
		return false
	}
	var ce *clientError
	switch {
	case plan.Kind == router.KindSavepoint:
		ce = multiGroupRefusal("SAVEPOINT")
	case plan.Statements > 1 && plan.TxControl != 0:
		ce = newClientError(codeFeatureNotSupp, "COMMIT or ROLLBACK inside a string of several statements cannot end a transaction that spans shard groups").
			withHint("send COMMIT or ROLLBACK on its own")
	case plan.Kind == router.KindOther && plan.TxControl&router.TxCommit != 0:
		ce = multiGroupRefusal("PREPARE TRANSACTION")
	case plan.Target == router.TargetScatter:
		ce = multiGroupRefusal("a read without a shard key")
	default:
		return false
	}
	s.routeFailed(ce, simple)
	return true
}

// inMultiGroupTx reports whether the session's transaction spans groups.
func (s *session) inMultiGroupTx() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.branches) > 0
}

// broadcastInTx runs a statement for every group (DDL or TRUNCATE on sharded tables) inside
// the session's transaction of a database with two_phase_commit: on each group's branch in
// group order, opening the branches it lacks. The client sees the last group's replies; the
// first failure fails the transaction.
func (s *session) broadcastInTx(pp *proxyPortal, simple bool) error {
	var replies [][]byte
	for gi := range pp.m.Groups {
		sc, err := s.begin(routeTarget{group: gi, writer: true})
		if err != nil {
			return s.beginFailed(err, simple)
		}
		s.noteWriteTouchesLocked(&pp.plan, pp.m)
		s.ranDDL = s.ranDDL || pp.plan.Kind == router.KindDDL
		s.wrote = true
		s.mu.Unlock()
		_ = s.endWrite(sc) // sends what begin queued (a branch's BEGIN)
		s.pump()           // and reads its reply
		s.mu.Lock()
		attached := s.server == sc && s.queue.len() == 0
		s.mu.Unlock()
		if !attached {
			return nil // the backend was lost: the client was told
		}
		frames, fail, status, err := runCollectStatus(sc, pp.sql, 10*time.Minute)
		s.mu.Lock()
		if err != nil {
			sc.MarkBroken()
			s.txStatus = 'E'
			s.mu.Unlock()
			s.localError(lostServerError().withCause(err), simple)
			return nil
		}
		s.txStatus = status
		s.mu.Unlock()
		if fail != nil {
			body := wire.Frame(fail).Body()
			s.localError(&clientError{code: errorCode(body), message: errorMessage(body), raw: downgradeFatal(wire.Frame(fail))}, simple)
			return nil
		}
		replies = frames
	}
	s.wmu.Lock()
	if !simple && pp.describe {
		s.writeClient(noDataFrame)
	}
	for _, f := range replies {
		s.writeClient(f)
	}
	s.wmu.Unlock()
	if simple {
		s.reply(nil)
	}
	return nil
}

// runCollectStatus is runCollect that also returns the transaction status after the reply
// and the ErrorResponse frame whole.
func runCollectStatus(sc *pool.Conn, sql string, budget time.Duration) (frames [][]byte, fail []byte, status byte, err error) {
	msg := simpleQueryFrame(sql)
	sc.UnnamedOwner = nil
	fail, status, err = exchange(sc, msg, budget, func(f wire.Frame) {
		if f.Type() != wire.ParameterStatus {
			frames = append(frames, append([]byte(nil), f...))
		}
	})
	return frames, fail, status, err
}
