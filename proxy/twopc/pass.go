package twopc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// SQLSTATEs that finishing a prepared transaction may meet without anything being wrong.
const (
	// sqlstateUndefinedObject: no transaction of that name is prepared (any more): another
	// session finished it meanwhile.
	sqlstateUndefinedObject = "42704"
	// sqlstateNotInPrerequisiteState: another session is finishing it right now.
	sqlstateNotInPrerequisiteState = "55000"
)

// branchKey names the connection that may finish a branch: to a group's writer, in the
// branch's database, as its owner.
type branchKey struct{ group, database, user string }

// pass is the state of one Pass of the leader.
type pass struct {
	r      *Recovery
	report Report
	errs   []error

	groups   []string                       // scanned, sorted
	scans    map[string]groupScan           // by group
	branches map[string]map[string]prepared // by gid, then group: what the scans found
	conns    map[branchKey]*pgx.Conn        // opened to finish branches, closed at the end
}

// run makes the pass.
func (p *pass) run(ctx context.Context) {
	r := p.r
	lctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	records, now, err := r.dlog.list(lctx)
	cancel()
	if ctx.Err() != nil {
		p.errs = append(p.errs, ctx.Err()) // shutting down: no failure to report
		return
	}
	if err != nil {
		p.catalogFailed(err)
		return
	}
	p.groups = groupsToScan(r.cfg.Groups(), records)
	p.scans = scanGroups(ctx, r.connector, p.groups, r.cfg.Timeout)
	if ctx.Err() != nil {
		p.errs = append(p.errs, ctx.Err())
		return
	}
	p.branches = make(map[string]map[string]prepared)
	for _, g := range p.groups {
		s := p.scans[g]
		if s.err != nil {
			p.report.Unreachable = append(p.report.Unreachable, g)
			p.groupFailed(g, s.err)
			continue
		}
		p.groupReached(g)
		for _, x := range s.xacts {
			p.report.InDoubt++
			if p.branches[x.gid] == nil {
				p.branches[x.gid] = make(map[string]prepared)
			}
			p.branches[x.gid][g] = x
		}
	}
	r.metrics.inDoubt.Set(float64(p.report.InDoubt))
	recorded := make(map[string]bool, len(records))
	for _, rec := range records {
		recorded[rec.GID] = true
		if ctx.Err() != nil {
			p.errs = append(p.errs, ctx.Err())
			return
		}
		p.resolveRecord(ctx, rec, now)
	}
	p.resolveOrphans(ctx, recorded)
}

// resolveRecord finishes the branches of one recorded transaction as its decision says,
// deciding abort first when it stayed in "prepare" past AbortAfter, and forgets it when
// every branch is resolved. now is the catalog's clock when the records were read.
func (p *pass) resolveRecord(ctx context.Context, rec Record, now time.Time) {
	r := p.r
	state := rec.State
	decidedNow := false
	if state == StatePrepare {
		age := now.Sub(rec.Created)
		earlierSelf := rec.Node == r.cfg.Node && !r.cfg.Since.IsZero() && rec.Created.Before(r.cfg.Since)
		if age < r.cfg.AbortAfter && !earlierSelf {
			return // its coordinator is presumably still at work
		}
		dctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		err := r.dlog.Decide(dctx, rec.GID, false)
		cancel()
		var decided *DecidedError
		switch {
		case err == nil:
			state = StateAbort
			p.report.Aborted++
			r.log.Warn("aborted a two-phase transaction left in prepare by its coordinator",
				zap.String("gid", rec.GID), zap.String("coordinator", rec.Node), zap.Duration("age", age))
		case errors.As(err, &decided):
			state = decided.State
			r.log.Info("two-phase transaction decided by its coordinator meanwhile",
				zap.String("gid", rec.GID), zap.String("state", string(state)))
		case errors.Is(err, ErrNotFound):
			return // its coordinator resolved and forgot it meanwhile
		default:
			p.catalogFailed(err)
			return
		}
		decidedNow = true
	}
	if state != StateCommit && state != StateAbort {
		p.catalogFailed(fmt.Errorf("record %q is in unknown state %q", rec.GID, state))
		return
	}
	commit := state == StateCommit
	resolved := true
	for _, g := range p.groupsOf(rec) {
		if p.scans[g].err != nil {
			resolved = false // cannot tell whether a branch waits there
			continue
		}
		if x, ok := p.branches[rec.GID][g]; ok && !p.finish(ctx, g, x, commit) {
			resolved = false
		}
	}
	// A decision taken in this pass may postdate a PREPARE that the scan missed: the next
	// pass, which reads the log before scanning, sees the whole picture.
	if !resolved || decidedNow || (!commit && now.Sub(rec.Updated) < r.cfg.Retention) {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if err := r.dlog.Forget(fctx, rec.GID); err != nil {
		p.catalogFailed(err)
		return
	}
	p.report.Forgotten++
	r.log.Debug("forgot a resolved two-phase transaction", zap.String("gid", rec.GID), zap.String("state", string(state)))
}

// groupsOf returns the groups a record names and those holding a branch of it, sorted.
func (p *pass) groupsOf(rec Record) []string {
	gs := slices.Clone(rec.Groups)
	for g := range p.branches[rec.GID] {
		gs = append(gs, g)
	}
	slices.Sort(gs)
	return slices.Compact(gs)
}

// resolveOrphans rolls back the prepared transactions older than AbortAfter that have no
// record (presumed abort). recorded holds the identifiers of the records read at the
// start of the pass; since a record may have been added after that read and before its
// PREPARE, the log is read again before anything is rolled back.
func (p *pass) resolveOrphans(ctx context.Context, recorded map[string]bool) {
	r := p.r
	type orphan struct {
		group string
		x     prepared
	}
	var orphans []orphan
	for _, g := range p.groups {
		for _, x := range p.scans[g].xacts {
			if !recorded[x.gid] && x.age >= r.cfg.AbortAfter {
				orphans = append(orphans, orphan{g, x})
			}
		}
	}
	if len(orphans) == 0 {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	records, _, err := r.dlog.list(lctx)
	cancel()
	if err != nil {
		p.catalogFailed(err)
		return
	}
	for _, rec := range records {
		recorded[rec.GID] = true
	}
	for _, o := range orphans {
		if recorded[o.x.gid] || ctx.Err() != nil {
			continue
		}
		r.log.Warn("rolling back a prepared transaction that has no two-phase record (presumed abort)",
			zap.String("group", o.group), zap.String("gid", o.x.gid), zap.Duration("age", o.x.age))
		p.finish(ctx, o.group, o.x, false)
	}
}

// finish commits or rolls back one prepared branch and reports whether it is resolved
// (finished now, or found finished by someone else).
func (p *pass) finish(ctx context.Context, group string, x prepared, commit bool) bool {
	r := p.r
	action, sql := actionRollback, RollbackPreparedSQL(x.gid)
	if commit {
		action, sql = actionCommit, CommitPreparedSQL(x.gid)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	key := branchKey{group: group, database: x.database, user: x.owner}
	conn, err := p.conn(ctx, key)
	if err != nil {
		p.groupFailed(group, fmt.Errorf("%s %q on group %s: connect as %q to database %q: %w", action, x.gid, group, x.owner, x.database, err))
		return false
	}
	_, err = conn.Exec(ctx, sql)
	var pgErr *pgconn.PgError
	isPg := errors.As(err, &pgErr)
	switch {
	case err == nil:
		r.metrics.recovered.WithLabelValues(action).Inc()
		if commit {
			p.report.Committed++
		} else {
			p.report.RolledBack++
		}
		r.log.Info("finished an in-doubt prepared transaction",
			zap.String("action", action), zap.String("group", group), zap.String("gid", x.gid))
		return true
	case isPg && pgErr.Code == sqlstateUndefinedObject:
		r.log.Debug("prepared transaction already finished", zap.String("group", group), zap.String("gid", x.gid))
		return true
	case isPg && pgErr.Code == sqlstateNotInPrerequisiteState:
		r.log.Debug("prepared transaction being finished by another session", zap.String("group", group), zap.String("gid", x.gid))
		return false
	}
	if !isPg || conn.IsClosed() {
		p.drop(key)
	}
	err = fmt.Errorf("%s %q on group %s: %w", action, x.gid, group, err)
	r.metrics.errors.WithLabelValues(group).Inc()
	r.log.Warn("two-phase recovery could not finish a prepared transaction", zap.Error(err))
	p.errs = append(p.errs, err)
	return false
}

// conn returns the pass's connection for key, opening it on first use.
func (p *pass) conn(ctx context.Context, key branchKey) (*pgx.Conn, error) {
	if c := p.conns[key]; c != nil && !c.IsClosed() {
		return c, nil
	}
	c, err := p.r.connector.Connect(ctx, key.group, key.database, key.user)
	if err != nil {
		return nil, err
	}
	p.conns[key] = c
	return c, nil
}

// drop closes and forgets the connection for key.
func (p *pass) drop(key branchKey) {
	if c := p.conns[key]; c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.r.cfg.Timeout)
		_ = c.Close(ctx)
		cancel()
		delete(p.conns, key)
	}
}

// close closes the pass's connections.
func (p *pass) close() {
	for key := range p.conns {
		p.drop(key)
	}
}

// catalogFailed records a failure on the catalog.
func (p *pass) catalogFailed(err error) {
	p.r.metrics.errors.WithLabelValues(catalogLabel).Inc()
	p.r.log.Warn("two-phase recovery: catalog failure", zap.Error(err))
	p.errs = append(p.errs, err)
}

// groupFailed records that a group could not be reached; it logs a warning when the
// group was reachable before, so that a group down for long does not flood the log.
func (p *pass) groupFailed(group string, err error) {
	r := p.r
	r.metrics.errors.WithLabelValues(group).Inc()
	if r.failing[group] {
		r.log.Debug("shard group still unreachable for the two-phase recovery", zap.String("group", group), zap.Error(err))
	} else {
		r.failing[group] = true
		r.log.Warn("shard group unreachable for the two-phase recovery: its in-doubt transactions wait",
			zap.String("group", group), zap.Error(err))
	}
	p.errs = append(p.errs, err)
}

// groupReached records that a group answered, logging when it had not before.
func (p *pass) groupReached(group string) {
	if p.r.failing[group] {
		delete(p.r.failing, group)
		p.r.log.Info("shard group reachable again for the two-phase recovery", zap.String("group", group))
	}
}
