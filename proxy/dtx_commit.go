package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/proxy/health"
	"github.com/shardwire/shardwire/proxy/twopc"
	"github.com/shardwire/shardwire/proxy/wire"
)

// Steps of a two-phase commit, named for the crash hook (TwoPhaseHook): the coordinator calls
// the hook as it reaches each one.
const (
	StepBeforePrepare   = "before-prepare"   // the transaction is recorded, nothing prepared
	StepBetweenPrepares = "between-prepares" // the first group prepared, the others not yet
	StepAfterDecision   = "after-decision"   // the commit decision is recorded, nothing committed
	StepBetweenCommits  = "between-commits"  // the first group committed, the others not yet
)

// branchBudget bounds one step (PREPARE, COMMIT PREPARED, ...) on one branch.
const branchBudget = 30 * time.Second

// branchResult is the outcome of one statement on one branch.
type branchResult struct {
	fail   []byte // the backend's ErrorResponse body, if it refused
	status byte
	lsn    uint64 // the writer's WAL insert position after it, when asked
	err    error  // the backend connection failed: the outcome is unknown
}

// endMultiGroupTx ends a transaction spanning groups, for COMMIT (commit) or ROLLBACK, and
// answers the client: NoData when it described the portal, CommandComplete, and ReadyForQuery
// for a simple query.
func (s *session) endMultiGroupTx(commit, simple, describe bool) error {
	s.mu.Lock()
	if !s.drainBranchLocked() && s.server != nil && s.queue.len() > 0 {
		s.mu.Unlock()
		s.routeFailed(newClientError(codeFeatureNotSupp, "COMMIT must wait for the replies of the transaction's statements").
			withHint("send a Sync before COMMIT"), simple)
		return nil
	}
	s.mu.Unlock()
	tag, ce := s.finishMultiGroupTx(commit)
	if ce != nil {
		s.localError(ce, simple)
		return nil
	}
	if describe {
		s.reply(noDataFrame)
	}
	s.reply(commandCompleteFrame(tag))
	if simple {
		s.reply(nil)
	}
	return nil
}

// finishMultiGroupTx commits (or rolls back) the session's transaction on every branch — the
// attached backend alone when it has no other — and gives the backends back. It returns the
// command tag (COMMIT, or ROLLBACK for a failed transaction) or the error for the client.
// No request of the attached backend may be pending.
func (s *session) finishMultiGroupTx(commit bool) (string, *clientError) {
	s.mu.Lock()
	if len(s.branches) == 0 && s.server != nil {
		s.branches = append(s.branches, branch{group: s.srvGroup, sc: s.server, entry: s.pool, status: s.txStatus, wrote: s.wrote})
	}
	for i := range s.branches {
		if b := &s.branches[i]; b.sc == s.server {
			b.status, b.wrote = s.txStatus, b.wrote || s.wrote
		}
	}
	branches := append([]branch(nil), s.branches...)
	failed := s.virtualTx == 'E'
	for _, b := range branches {
		if b.status != 'T' {
			failed = true
		}
	}
	m := s.curMap
	names := s.branchGroupsLocked(m)
	touches := append([]posTouch(nil), s.touches...)
	s.touches = s.touches[:0]
	s.hasTouches.Store(false)
	s.mu.Unlock()

	tag := "ROLLBACK"
	var ce *clientError
	var lsns map[string]uint64
	switch {
	case !commit || failed:
		s.rollbackBranches(branches)
		s.srv.multi.outcome("rolled_back")
	default:
		tag = "COMMIT"
		lsns, ce = s.commitBranches(branches, names)
	}
	partial := ce != nil && len(lsns) > 0 // committed on some groups only (commitEach)

	s.mu.Lock()
	now := time.Now()
	for i, b := range branches {
		if b.wrote && ce == nil && tag == "COMMIT" {
			if s.lastWrite == nil {
				s.lastWrite = make(map[string]time.Time)
			}
			s.lastWrite[names[i]] = now
		}
	}
	s.server, s.pool = nil, nil
	s.branches = s.branches[:0]
	s.txStatus = 'I'
	s.virtualTx = 0
	s.deferredBegin = nil
	s.implicitTx = false
	s.savepoints = false
	s.txBeginFrame = s.txBeginFrame[:0]
	s.wrote = false
	s.mu.Unlock()
	for _, b := range branches {
		b.entry.release(b.sc)
	}
	if tag == "COMMIT" && (ce == nil || ce.code == codeTxResolutionUnknown || partial) && s.srv.cache != nil && len(touches) > 0 {
		// Committed — or perhaps, or on some groups: the generations move on either way
		// (an extra bump costs a miss, a missing one a stale read).
		s.bumpEach(touches, func(g string) uint64 { return lsns[g] })
	}
	return tag, ce
}

// rollbackBranches rolls every branch back; a branch that fails to is closed.
func (s *session) rollbackBranches(branches []branch) {
	s.onBranches(branches, func(b branch) string { return "ROLLBACK" }, false, func(i int, r branchResult) {
		if r.err != nil || r.fail != nil || r.status != 'I' {
			branches[i].sc.MarkBroken()
		}
	})
}

// commitBranches commits the branches together. Branches that only read are committed first
// on their own (nothing of theirs needs to be atomic); one writing branch left commits
// directly; several commit with two-phase commit. It returns each group's WAL position after
// its commit (for the cache) or the error for the client, the transaction then rolled back,
// or its outcome unknown (08007).
func (s *session) commitBranches(branches []branch, names []string) (map[string]uint64, *clientError) {
	var writers, readers []int
	for i, b := range branches {
		if b.wrote {
			writers = append(writers, i)
		} else {
			readers = append(readers, i)
		}
	}
	if len(readers) > 0 {
		rb := pick(branches, readers)
		s.onBranches(rb, func(branch) string { return "COMMIT" }, false, func(i int, r branchResult) {
			if r.err != nil || r.fail != nil || r.status != 'I' {
				rb[i].sc.MarkBroken() // it only read: its outcome changes nothing
			}
		})
	}
	lsns := make(map[string]uint64, len(writers))
	switch len(writers) {
	case 0:
		s.srv.multi.outcome("committed")
		return lsns, nil
	case 1:
		b := branches[writers[0]]
		r := runBranch(b, "COMMIT", s.srv.cache != nil)
		switch {
		case r.err != nil:
			b.sc.MarkBroken()
			s.srv.multi.outcome("unknown")
			return nil, newClientError(codeTxResolutionUnknown, "the connection to group "+names[writers[0]]+" was lost during COMMIT: the transaction's outcome is unknown").
				withHint("check whether the transaction's changes are there before retrying").withCause(r.err)
		case r.fail != nil:
			s.srv.multi.outcome("rolled_back")
			return nil, backendClientError(r.fail)
		}
		lsns[names[writers[0]]] = r.lsn
		s.srv.multi.outcome("committed")
		return lsns, nil
	}
	wb := pick(branches, writers)
	wn := make([]string, len(writers))
	for i, w := range writers {
		wn[i] = names[w]
	}
	if !s.twoPhaseEnabled() {
		return s.commitEach(wb, wn)
	}
	return s.twoPhaseCommit(wb, wn)
}

// commitEach commits a split statement's groups one after another, for a database without
// two_phase_commit: every group ran its part successfully, so a COMMIT fails only on a
// deferred constraint or a lost connection. Until the first COMMIT the transaction rolls
// back as a whole; a failure after it leaves the groups committed so far committed, and the
// error names them (the positions returned are then those of the committed groups).
func (s *session) commitEach(branches []branch, names []string) (map[string]uint64, *clientError) {
	lsns := make(map[string]uint64, len(branches))
	var committed []string
	for i, b := range branches {
		r := runBranch(b, "COMMIT", s.srv.cache != nil)
		if r.err == nil && r.fail == nil {
			lsns[names[i]] = r.lsn
			committed = append(committed, names[i])
			continue
		}
		if r.err != nil {
			b.sc.MarkBroken()
		}
		s.rollbackBranches(branches[i+1:])
		if len(committed) == 0 && r.err == nil {
			s.srv.multi.outcome("rolled_back")
			return nil, backendClientError(r.fail)
		}
		s.srv.multi.outcome("unknown")
		code, msg := codeTxResolutionUnknown, "the connection was lost during COMMIT"
		if r.fail != nil {
			code, msg = errorCode(r.fail), errorMessage(r.fail)
		}
		s.logger().Error("a statement split over shard groups committed on some groups only",
			zap.Strings("committed", committed), zap.String("failed", names[i]), zap.String("error", msg))
		return lsns, newClientError(code, fmt.Sprintf("%s (on group %s); the statement committed on groups %s only",
			msg, names[i], strings.Join(committed, ", "))).
			withHint("set two_phase_commit on the database for atomic commits across shard groups").withCause(r.err)
	}
	s.srv.multi.outcome("committed")
	return lsns, nil
}

// pick returns the branches at the given indexes.
func pick(branches []branch, idx []int) []branch {
	out := make([]branch, len(idx))
	for i, j := range idx {
		out[i] = branches[j]
	}
	return out
}

// twoPhaseCommit commits writing branches atomically: the transaction is recorded in the
// catalog, prepared on every group, the decision recorded, then committed everywhere. Whatever
// a crash leaves, the recovery loop of some node finishes from the catalog's record.
func (s *session) twoPhaseCommit(branches []branch, names []string) (map[string]uint64, *clientError) {
	tp := s.srv.twoPhase
	start := time.Now()
	gid := twopc.NewGID(s.srv.config().NodeName)
	rec := twopc.Record{GID: gid, Node: s.srv.config().NodeName, Database: s.db.BackendName, User: s.serverUser(), Groups: names}
	ctx, cancel := context.WithTimeout(context.Background(), branchBudget)
	defer cancel()
	if err := tp.log.Begin(ctx, rec); err != nil {
		s.rollbackBranches(branches)
		s.srv.multi.outcome("rolled_back")
		s.logger().Warn("two-phase commit: cannot record the transaction; rolled back", zap.Error(err))
		return nil, newClientError(codeConnectionFailure, "the transaction was rolled back: the two-phase commit log in the catalog is unreachable").
			withHint("retry; if this persists, check the catalog database").withCause(err)
	}
	tp.step(StepBeforePrepare)
	prepare := twopc.PrepareSQL(gid)
	prepared := make([]bool, len(branches))
	var refusal []byte
	var lost error
	s.onBranches(branches, func(branch) string { return prepare }, true, func(i int, r branchResult) {
		switch {
		case r.err != nil:
			branches[i].sc.MarkBroken()
			lost = fmt.Errorf("group %s: %w", names[i], r.err)
		case r.fail != nil:
			if refusal == nil {
				refusal = r.fail
			}
		default:
			prepared[i] = true
		}
		if i == 0 {
			tp.step(StepBetweenPrepares)
		}
	})
	if refusal != nil || lost != nil {
		s.abortPrepared(ctx, gid, branches, prepared, names)
		s.srv.multi.outcome("rolled_back")
		if refusal != nil {
			return nil, backendClientError(refusal)
		}
		return nil, newClientError(codeConnectionFailure, "a shard group's connection was lost while the transaction prepared: it was rolled back").
			withHint("retry the transaction").withCause(lost)
	}
	if err := tp.log.Decide(ctx, gid, true); err != nil {
		var de *twopc.DecidedError
		if errors.As(err, &de) && de.State == twopc.StateAbort {
			s.abortPrepared(ctx, gid, branches, prepared, names)
			s.srv.multi.outcome("rolled_back")
			return nil, newClientError(codeSerializationFailure, "the transaction was rolled back by two-phase commit recovery: its commit took longer than two_phase.abort_after").
				withHint("retry the transaction")
		}
		s.srv.multi.outcome("unknown")
		s.logger().Error("two-phase commit: cannot record the decision; recovery will resolve the transaction", zap.String("gid", gid), zap.Error(err))
		return nil, newClientError(codeTxResolutionUnknown, "the transaction's outcome is unknown: the commit decision could not be recorded in the catalog").
			withHint("two-phase commit recovery will commit or roll it back everywhere; check before retrying").withCause(err)
	}
	tp.step(StepAfterDecision)
	commit := twopc.CommitPreparedSQL(gid)
	lsns := make(map[string]uint64, len(branches))
	done := true
	s.onBranchesLSN(branches, func(branch) string { return commit }, true, s.srv.cache != nil, func(i int, r branchResult) {
		if r.err != nil || r.fail != nil {
			done = false
			if r.err != nil {
				branches[i].sc.MarkBroken()
			}
			s.logger().Warn("two-phase commit: COMMIT PREPARED failed; recovery will finish it", zap.String("gid", gid),
				zap.String("group", names[i]), zap.Error(r.err), zap.String("server_error", errorMessage(r.fail)))
		} else {
			lsns[names[i]] = r.lsn
		}
		if i == 0 {
			tp.step(StepBetweenCommits)
		}
	})
	if done {
		tp.forget(gid)
	}
	s.srv.multi.outcome("committed")
	s.srv.multi.commitSeconds.Observe(time.Since(start).Seconds())
	return lsns, nil
}

// abortPrepared records the decision to roll back and rolls back the prepared branches; the
// others are rolled back by their own ROLLBACK (or by closing them).
func (s *session) abortPrepared(ctx context.Context, gid string, branches []branch, prepared []bool, names []string) {
	tp := s.srv.twoPhase
	if err := tp.log.Decide(ctx, gid, false); err != nil {
		s.logger().Warn("two-phase commit: cannot record the decision to roll back; recovery will", zap.String("gid", gid), zap.Error(err))
	}
	clean := true
	s.onBranches(branches, func(b branch) string {
		for i := range branches {
			if branches[i].sc == b.sc && prepared[i] {
				return twopc.RollbackPreparedSQL(gid)
			}
		}
		return "ROLLBACK"
	}, false, func(i int, r branchResult) {
		if r.err != nil || r.fail != nil || r.status != 'I' {
			branches[i].sc.MarkBroken()
			if prepared[i] {
				clean = false
				s.logger().Warn("two-phase commit: ROLLBACK PREPARED failed; recovery will finish it", zap.String("gid", gid),
					zap.String("group", names[i]), zap.Error(r.err))
			}
		}
	})
	if clean && allPreparedKnown(prepared, branches) {
		tp.forget(gid)
	}
}

// allPreparedKnown reports whether no branch's PREPARE outcome is unknown (a lost connection
// may still prepare: its decision record must stay for recovery).
func allPreparedKnown(prepared []bool, branches []branch) bool {
	for i, b := range branches {
		if !prepared[i] && b.sc.Broken() {
			return false
		}
	}
	return true
}

// onBranches runs a statement on every branch, in parallel — after the first alone when
// firstAlone, so that a crash between two groups is a well-defined step — and hands each
// result to done (called on this goroutine, in branch order).
func (s *session) onBranches(branches []branch, sql func(branch) string, firstAlone bool, done func(int, branchResult)) {
	s.onBranchesLSN(branches, sql, firstAlone, false, done)
}

// onBranchesLSN is onBranches that also reads each writer's WAL insert position after its
// statement succeeded, when withLSN.
func (s *session) onBranchesLSN(branches []branch, sql func(branch) string, firstAlone, withLSN bool, done func(int, branchResult)) {
	results := make([]branchResult, len(branches))
	from := 0
	if firstAlone && len(branches) > 0 {
		results[0] = runBranch(branches[0], sql(branches[0]), withLSN)
		done(0, results[0])
		from = 1
	}
	var wg sync.WaitGroup
	for i := from; i < len(branches); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runBranch(branches[i], sql(branches[i]), withLSN)
		}()
	}
	wg.Wait()
	for i := from; i < len(branches); i++ {
		done(i, results[i])
	}
}

// runBranch runs sql on a branch's backend; withLSN then reads the writer's WAL insert
// position (what the cache's generations of its writes need), when sql succeeded.
func runBranch(b branch, sql string, withLSN bool) branchResult {
	if b.sc.Broken() {
		return branchResult{err: errors.New("connection already lost")}
	}
	var r branchResult
	fail, status, err := runQuery(b.sc, sql, branchBudget, func(wire.Frame) {})
	r.fail, r.status, r.err = fail, status, err
	if fail != nil {
		r.fail = append([]byte(nil), fail...)
	}
	if withLSN && err == nil && fail == nil {
		_, _, _ = runQuery(b.sc, "SELECT pg_current_wal_insert_lsn()::text", branchBudget, func(f wire.Frame) {
			if f.Type() == wire.DataRow {
				if v, ok := dataRowText(f.Body()); ok {
					r.lsn, _ = health.ParseLSN(v)
				}
			}
		})
	}
	return r
}

// dataRowText returns the first column of a DataRow body as text.
func dataRowText(body []byte) (string, bool) {
	if len(body) < 6 {
		return "", false
	}
	n := int32(uint32(body[2])<<24 | uint32(body[3])<<16 | uint32(body[4])<<8 | uint32(body[5]))
	if n < 0 || int(n) > len(body)-6 {
		return "", false
	}
	return string(body[6 : 6+n]), true
}

// backendClientError is a backend's ErrorResponse body as the client's error.
func backendClientError(body []byte) *clientError {
	return newClientError(errorCode(body), errorMessage(body))
}

// serverUser is the login the session's backends use (the transaction's owner on them).
func (s *session) serverUser() string {
	if s.userCfg.ServerUser != "" {
		return s.userCfg.ServerUser
	}
	return s.userCfg.Name
}
