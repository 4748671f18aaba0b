package rebalance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/internal/ctxwait"
	"github.com/shardwire/shardwire/shardmap"
	"github.com/shardwire/shardwire/shardmap/move"
)

// Member is one proxy node as the cluster's gossip shows it.
type Member struct {
	Name string
	// State is alive, suspect, dead or left. A node that left gracefully has closed its
	// clients; every other one may still serve.
	State string
	// Epoch is the shard map epoch the node serves.
	Epoch int64
}

// Connector opens the runner's connections to the groups' writers.
type Connector interface {
	// Connect opens a connection to database db on group g's writer, as a role that may
	// create publications, subscriptions and triggers.
	Connect(ctx context.Context, g shardmap.Group, db string) (*pgx.Conn, error)
	// ConnInfo is the libpq connection string a subscription on another group's writer uses
	// to reach database db on g's writer.
	ConnInfo(g shardmap.Group, db string) string
}

// Options configure a Runner. Catalog, Connector, Members and Databases are required.
type Options struct {
	Catalog   *shardmap.Catalog
	Connector Connector
	// Members lists the cluster's proxy nodes (from any node's admin API).
	Members func(ctx context.Context) ([]Member, error)
	// Databases are the databases whose sharded tables move.
	Databases []string
	// By names the driver in the catalog's history (e.g. "shardctl@host").
	By string
	// Log receives the runner's logs; nil discards them.
	Log *zap.Logger
	// OnProgress, when set, is called on every phase change and about every second during
	// long steps.
	OnProgress func(Progress)

	// MaxLagBytes is the replication lag under which the copy counts as caught up enough
	// to buffer (default 1 MiB).
	MaxLagBytes int64
	// AckTimeout bounds the wait for every live proxy to serve a new epoch (default 10s).
	AckTimeout time.Duration
	// Grace is the wait between the last proxy's confirmation of the frozen epoch and the
	// fence: open transactions on the shard get this long to finish (default 1s; keep it at
	// least the proxies' moves.grace).
	Grace time.Duration
	// FenceLockTimeout is the fence transaction's lock_timeout (default 200ms); the fence is
	// retried with back-off until FenceDeadline has passed since it began (default 30s).
	FenceLockTimeout time.Duration
	FenceDeadline    time.Duration
	// CatchUpTimeout bounds the proof of catch-up (default 60s).
	CatchUpTimeout time.Duration
	// Verify tunes the live verification of the copy.
	Verify move.VerifyOptions
	// CleanupBatch is the number of rows cleanup deletes per transaction (default 1000).
	CleanupBatch int
	// CleanupAfter is how long after the switch cleanup waits at least: the proxies' lease
	// plus their buffer window (default 30s).
	CleanupAfter time.Duration

	// StopAfter, when set, makes Drive return ErrStopped as soon as the move is in that
	// phase, before any of the phase's work — what a driver killed right after entering it
	// leaves behind (tests).
	StopAfter shardmap.MovePhase
}

// ErrStopped is Drive's error when Options.StopAfter stopped it.
var ErrStopped = errors.New("stopped after the requested phase")

// AbortedError is Drive's error when the move could not go on and was aborted.
type AbortedError struct {
	Move   *shardmap.Move
	Reason string
}

// Error says which move was aborted and why.
func (e *AbortedError) Error() string {
	return fmt.Sprintf("move %d of shard %d was aborted: %s", e.Move.ID, e.Move.Shard, e.Reason)
}

// Progress is a snapshot of a running move for display.
type Progress struct {
	Move    *shardmap.Move
	Step    string // what the runner is doing now
	Rows    int64  // the shard's rows on the target (copy)
	Lag     int64  // replication lag in bytes (copy), -1 unknown
	Ready   int    // tables whose copy is done
	Tables  int    // tables moved
	Elapsed time.Duration
}

// Runner drives shard moves. It is not safe for concurrent use; run one per move.
type Runner struct {
	o   Options
	log *zap.Logger
}

// New returns a Runner with opts' defaults filled in.
func New(opts Options) (*Runner, error) {
	if opts.Catalog == nil || opts.Connector == nil || opts.Members == nil {
		return nil, errors.New("rebalance: a catalog, a connector and a member list are required")
	}
	if len(opts.Databases) == 0 {
		return nil, errors.New("rebalance: no database to move")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.MaxLagBytes <= 0 {
		opts.MaxLagBytes = 1 << 20
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Second
	}
	if opts.FenceLockTimeout <= 0 {
		opts.FenceLockTimeout = 200 * time.Millisecond
	}
	if opts.FenceDeadline <= 0 {
		opts.FenceDeadline = 30 * time.Second
	}
	if opts.CatchUpTimeout <= 0 {
		opts.CatchUpTimeout = time.Minute
	}
	if opts.CleanupBatch <= 0 {
		opts.CleanupBatch = 1000
	}
	if opts.CleanupAfter <= 0 {
		opts.CleanupAfter = 30 * time.Second
	}
	if opts.By == "" {
		opts.By = "shardctl"
	}
	if opts.Verify.ChunkCustomers <= 0 {
		// Small chunks: the busy ones are compared again inside the write pause.
		opts.Verify.ChunkCustomers = 100
	}
	return &Runner{o: opts, log: opts.Log}, nil
}

// Start records a move of shard to the target group and drives it to its end.
func (r *Runner) Start(ctx context.Context, shard shardmap.Shard, target string) (*shardmap.Move, error) {
	mv, err := r.o.Catalog.CreateMove(ctx, shardmap.MoveRequest{Shard: shard, Target: target, By: r.o.By, Databases: r.o.Databases})
	if err != nil {
		return nil, err
	}
	return r.Drive(ctx, mv.ID)
}

// Reverse records the reverse of a done move (the shard goes back to that move's source
// over the reverse replication, without a new copy) and drives it to its end.
func (r *Runner) Reverse(ctx context.Context, id int64) (*shardmap.Move, error) {
	// Holding the reversed move's lock keeps a cleanup of it from running meanwhile.
	lock, err := r.o.Catalog.LockMove(ctx, id)
	if err != nil {
		return nil, err
	}
	mv, err := r.o.Catalog.CreateMove(ctx, shardmap.MoveRequest{ReverseOf: id, By: r.o.By, Databases: r.o.Databases})
	lock.Release()
	if err != nil {
		return nil, err
	}
	return r.Drive(ctx, mv.ID)
}

// session is everything one drive of one move holds: the move's lock, the current map,
// and connections to source and target per database.
type session struct {
	r       *Runner
	id      int64
	dbs     []string // the databases the move covers
	lock    *shardmap.MoveLock
	mv      *shardmap.Move
	source  shardmap.Group
	target  shardmap.Group
	conns   map[string][2]*pgx.Conn // database → {source, target}
	tables  []move.Table
	started time.Time
}

func (r *Runner) open(ctx context.Context, id int64) (*session, error) {
	lock, err := r.o.Catalog.LockMove(ctx, id)
	if err != nil {
		return nil, err
	}
	s := &session{r: r, id: id, lock: lock, conns: make(map[string][2]*pgx.Conn), started: time.Now()}
	if err := s.reload(ctx); err != nil {
		s.close()
		return nil, err
	}
	m, err := r.o.Catalog.Load(ctx)
	if err != nil {
		s.close()
		return nil, err
	}
	si, ti := m.GroupIndex(s.mv.Source), m.GroupIndex(s.mv.Target)
	if si < 0 || ti < 0 {
		s.close()
		return nil, fmt.Errorf("move %d: group %q or %q is no longer in the map", id, s.mv.Source, s.mv.Target)
	}
	s.source, s.target = m.Groups[si], m.Groups[ti]
	// A move keeps the databases it was created with: resuming, aborting or cleaning it up
	// with another list would leave the others half moved.
	s.dbs = r.o.Databases
	if len(s.mv.Detail.Databases) > 0 {
		if !slices.Equal(s.mv.Detail.Databases, r.o.Databases) {
			r.log.Warn("using the databases the move was created with", zap.Int64("move", id),
				zap.Strings("move_databases", s.mv.Detail.Databases), zap.Strings("given", r.o.Databases))
		}
		s.dbs = s.mv.Detail.Databases
	}
	for _, db := range s.dbs {
		src, err := r.o.Connector.Connect(ctx, s.source, db)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("move %d: connect to database %s on source group %s: %w", id, db, s.source.Name, err)
		}
		tgt, err := r.o.Connector.Connect(ctx, s.target, db)
		if err != nil {
			_ = src.Close(ctx)
			s.close()
			return nil, fmt.Errorf("move %d: connect to database %s on target group %s: %w", id, db, s.target.Name, err)
		}
		s.conns[db] = [2]*pgx.Conn{src, tgt}
	}
	tables, err := shardedTables(ctx, s.conns[s.dbs[0]][0], m.Rules)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("move %d: %w", id, err)
	}
	s.tables = tables
	return s, nil
}

func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, c := range s.conns {
		_ = c[0].Close(ctx)
		_ = c[1].Close(ctx)
	}
	s.lock.Release()
}

func (s *session) reload(ctx context.Context) error {
	mv, err := s.r.o.Catalog.Move(ctx, s.id)
	if err != nil {
		return err
	}
	s.mv = mv
	return nil
}

// forward is the spec of the replication from source to target; reverse the other way.
func (s *session) forward(db string) move.Spec {
	fwd, _ := move.Names(s.mv.ID)
	copyData := true
	if s.mv.ReverseOf != 0 {
		// A reverse move streams over the reversed move's reverse replication.
		_, fwd = move.Names(s.mv.ReverseOf)
		copyData = false
	}
	return move.Spec{Move: s.mv.ID, Shard: s.mv.Shard, Tables: s.tables, Name: fwd,
		SourceConnInfo: s.r.o.Connector.ConnInfo(s.source, db), CopyData: copyData,
		SourceGroup: s.source.Name, TargetGroup: s.target.Name}
}

func (s *session) reverse(db string) move.Spec {
	_, rev := move.Names(s.mv.ID)
	return move.Spec{Move: s.mv.ID, Shard: s.mv.Shard, Tables: s.tables, Name: rev,
		SourceConnInfo: s.r.o.Connector.ConnInfo(s.target, db), CopyData: false,
		SourceGroup: s.target.Name, TargetGroup: s.source.Name}
}

func (s *session) progress(step string, p Progress) {
	if s.r.o.OnProgress == nil {
		return
	}
	p.Move, p.Step, p.Elapsed = s.mv, step, time.Since(s.started)
	if p.Tables == 0 {
		p.Tables = len(s.tables)
	}
	s.r.o.OnProgress(p)
}

// advance compare-and-sets the move's phase and keeps the stored record.
func (s *session) advance(ctx context.Context, to shardmap.MovePhase, update func(*shardmap.Move) error, edit shardmap.MapEdit) error {
	mv, _, err := s.r.o.Catalog.AdvanceMove(ctx, s.mv.ID, s.mv.Phase, to, s.r.o.By, update, edit)
	if err != nil {
		return err
	}
	s.mv = mv
	s.progress("entered "+string(to), Progress{Lag: -1})
	return nil
}

// setState is a map edit giving shard the state st at its current owner, which must be the
// move's source.
func setState(st shardmap.ShardState) shardmap.MapEdit {
	return func(cur *shardmap.Map, mv *shardmap.Move) (*shardmap.Map, error) {
		if owner := cur.OwnerOf(mv.Shard).Name; owner != mv.Source {
			return nil, fmt.Errorf("the map gives shard %d to group %s, not to the move's source %s", mv.Shard, owner, mv.Source)
		}
		if cur.State[mv.Shard] == st {
			return nil, nil
		}
		next := *cur
		next.State[mv.Shard] = st
		return &next, nil
	}
}

// switchOwner is the map edit of the point of no return: the shard belongs to the target.
func switchOwner(cur *shardmap.Map, mv *shardmap.Move) (*shardmap.Map, error) {
	if owner := cur.OwnerOf(mv.Shard).Name; owner != mv.Source {
		return nil, fmt.Errorf("the map gives shard %d to group %s, not to the move's source %s", mv.Shard, owner, mv.Source)
	}
	ti := cur.GroupIndex(mv.Target)
	if ti < 0 {
		return nil, fmt.Errorf("target group %s is no longer in the map", mv.Target)
	}
	next := *cur
	next.Owner[mv.Shard] = ti
	next.State[mv.Shard] = shardmap.StateActive
	return &next, nil
}

// Drive takes a move from whatever phase the catalog records to its end: done, or aborted
// when it could not go on (an *AbortedError). Any other error leaves the move where it
// stands, to be resumed by Drive or undone by Abort.
func (r *Runner) Drive(ctx context.Context, id int64) (*shardmap.Move, error) {
	s, err := r.open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer s.close()
	for {
		phase := s.mv.Phase
		if phase == shardmap.PhaseAborted {
			return s.mv, &AbortedError{Move: s.mv, Reason: s.mv.Detail.Error}
		}
		if phase.Finished() {
			return s.mv, nil
		}
		if r.o.StopAfter != "" && phase == r.o.StopAfter {
			return s.mv, ErrStopped
		}
		if err := s.lock.Held(ctx); err != nil {
			return s.mv, fmt.Errorf("move %d: %w", id, err)
		}
		var (
			stepErr error
			refusal string // a reason to abort the move
		)
		switch phase {
		case shardmap.PhasePlanned:
			refusal, stepErr = s.precheck(ctx)
		case shardmap.PhaseCopying:
			refusal, stepErr = s.copy(ctx)
		case shardmap.PhaseBuffering:
			refusal, stepErr = s.fence(ctx)
		case shardmap.PhaseFenced:
			refusal, stepErr = s.catchUp(ctx)
		case shardmap.PhaseCaughtUp:
			stepErr = s.startReverse(ctx)
		case shardmap.PhaseReverseReady:
			stepErr = s.switchOver(ctx)
		case shardmap.PhaseSwitched:
			stepErr = s.confirm(ctx)
		case shardmap.PhaseAborting:
			stepErr = s.finishAbort(ctx)
			if stepErr == nil {
				return s.mv, &AbortedError{Move: s.mv, Reason: s.mv.Detail.Error}
			}
		default:
			return s.mv, fmt.Errorf("move %d is in phase %q, which this build does not know", id, phase)
		}
		if refusal != "" {
			if err := s.startAbort(ctx, refusal); err != nil {
				return s.mv, err
			}
			continue
		}
		if stepErr != nil {
			if errors.Is(stepErr, shardmap.ErrMoveConflict) {
				before := s.mv.Phase
				if err := s.reload(ctx); err != nil {
					return s.mv, err
				}
				if s.mv.Phase == before {
					// The conflict was not about this move's phase (the reversed move's,
					// say): retrying would only repeat it.
					return s.mv, fmt.Errorf("move %d, phase %s: %w", id, phase, stepErr)
				}
				continue
			}
			return s.mv, fmt.Errorf("move %d, phase %s: %w", id, phase, stepErr)
		}
	}
}

// precheck refuses what would make the move fail and then starts the copying phase.
func (s *session) precheck(ctx context.Context) (string, error) {
	s.progress("pre-checks", Progress{Lag: -1})
	var problems []string
	for _, db := range s.dbs {
		c := s.conns[db]
		rep, err := move.Precheck(ctx, c[0], c[1], s.tables)
		if err != nil {
			return "", fmt.Errorf("pre-checks on database %s: %w", db, err)
		}
		if len(rep.MissingOnTarget) > 0 {
			// Tables the target lacks get the source's definitions; then check again.
			if err := s.copySchema(ctx, db, rep.MissingOnTarget); err != nil {
				return fmt.Sprintf("database %s: copying the definitions of tables missing on the target failed: %v", db, err), nil
			}
			if rep, err = move.Precheck(ctx, c[0], c[1], s.tables); err != nil {
				return "", fmt.Errorf("pre-checks on database %s: %w", db, err)
			}
		}
		if !rep.OK() {
			problems = append(problems, fmt.Sprintf("database %s: %v", db, rep))
		}
		if s.mv.ReverseOf == 0 {
			n, err := shardRows(ctx, c[1], s.tables, s.mv.Shard)
			if err != nil {
				return "", fmt.Errorf("pre-checks on database %s: %w", db, err)
			}
			if n > 0 {
				problems = append(problems, fmt.Sprintf("database %s: target group %s already holds %d rows of shard %d (left by an earlier move?): delete them first",
					db, s.target.Name, n, s.mv.Shard))
			}
		}
	}
	if len(problems) > 0 {
		return "pre-checks failed: " + strings.Join(problems, "; "), nil
	}
	// The target refuses the shard's application writes from now until the switch; the
	// subscription's apply worker is not affected.
	for _, db := range s.dbs {
		if _, err := move.Fence(ctx, s.conns[db][1], move.FenceOptions{Shard: s.mv.Shard, Move: s.mv.ID, Tables: s.tables,
			Reason:      "arriving from group " + s.source.Name + ", not owned yet",
			LockTimeout: s.r.o.FenceLockTimeout, Deadline: time.Now().Add(s.r.o.FenceDeadline)}); err != nil {
			return "", fmt.Errorf("fence database %s on target group %s: %w", db, s.target.Name, err)
		}
	}
	tables := make([]string, len(s.tables))
	for i, t := range s.tables {
		tables[i] = t.Name
	}
	return "", s.advance(ctx, shardmap.PhaseCopying, func(mv *shardmap.Move) error {
		mv.Detail.Tables = tables
		mv.Detail.Databases = s.dbs
		return nil
	}, setState(shardmap.StateMoving))
}

// copy creates the replication, waits for the copy to finish and the lag to be small,
// verifies it, and freezes the shard.
func (s *session) copy(ctx context.Context) (string, error) {
	for _, db := range s.dbs {
		c := s.conns[db]
		if err := move.Replicate(ctx, c[0], c[1], s.forward(db)); err != nil {
			return "", fmt.Errorf("replicate database %s: %w", db, err)
		}
	}
	var rows int64
	for _, db := range s.dbs {
		c := s.conns[db]
		spec := s.forward(db)
		for {
			p, err := move.Progress(ctx, c[0], c[1], spec)
			if err != nil {
				return "", fmt.Errorf("copy progress of database %s: %w", db, err)
			}
			ready := 0
			for _, t := range p.Tables {
				if t.State == "r" {
					ready++
				}
			}
			s.progress("copying "+db, Progress{Rows: rows + p.Rows, Lag: p.LagBytes, Ready: ready, Tables: len(p.Tables)})
			if p.Ready && p.LagBytes >= 0 && p.LagBytes <= s.r.o.MaxLagBytes {
				rows += p.Rows
				break
			}
			if err := ctxwait.Sleep(ctx, time.Second); err != nil {
				return "", err
			}
		}
	}
	var summary []string
	recheck := make(map[string][]shardmap.KeyRange)
	for _, db := range s.dbs {
		c := s.conns[db]
		s.progress("verifying "+db, Progress{Rows: rows, Lag: -1})
		res, err := move.Verify(ctx, c[0], c[1], s.tables, int(s.mv.Shard), s.r.o.Verify)
		if err != nil {
			return "", fmt.Errorf("verify database %s: %w", db, err)
		}
		chunks, busy := 0, 0
		for _, t := range res.Tables {
			chunks += t.Chunks
			for _, m := range t.Mismatches {
				busy++
				recheck[db] = append(recheck[db], shardmap.KeyRange{Table: t.Table, Lo: m.Lo, Hi: m.Hi})
			}
		}
		line := fmt.Sprintf("%s: %d of %d chunks match live", db, chunks-busy, chunks)
		if busy > 0 {
			line += fmt.Sprintf(", %d busy ones re-checked after the fence", busy)
		}
		summary = append(summary, line)
	}
	return "", s.advance(ctx, shardmap.PhaseBuffering, func(mv *shardmap.Move) error {
		mv.Detail.Rows = rows
		mv.Detail.Verification = strings.Join(summary, "; ")
		mv.Detail.Recheck = recheck
		return nil
	}, setState(shardmap.StateFrozen))
}

// recheck compares the chunks the live verification saw changing, now that neither side
// can change; it returns a reason to abort when any still differs.
func (s *session) recheck(ctx context.Context) (string, error) {
	for db, ranges := range s.mv.Detail.Recheck {
		c, ok := s.conns[db]
		if !ok || len(ranges) == 0 {
			continue
		}
		prev := &move.VerifyResult{Shard: int(s.mv.Shard)}
		at := make(map[string]int)
		for _, r := range ranges {
			i, ok := at[r.Table]
			if !ok {
				i = len(prev.Tables)
				at[r.Table] = i
				prev.Tables = append(prev.Tables, move.TableResult{Table: r.Table})
			}
			prev.Tables[i].Mismatches = append(prev.Tables[i].Mismatches, move.Mismatch{Lo: r.Lo, Hi: r.Hi})
		}
		res, err := move.Recheck(ctx, c[0], c[1], s.tables, prev)
		if err != nil {
			return "", fmt.Errorf("re-check database %s: %w", db, err)
		}
		if !res.OK() {
			var what []string
			for _, t := range res.Tables {
				for _, m := range t.Mismatches {
					what = append(what, t.Table+" "+m.String())
				}
			}
			return fmt.Sprintf("verification of database %s after the fence found differing chunks: %s", db, strings.Join(what, "; ")), nil
		}
	}
	return "", nil
}

// waitEpoch waits until every proxy that may serve reports at least epoch, and returns the
// names of those that did not within AckTimeout.
func (s *session) waitEpoch(ctx context.Context, epoch int64) ([]string, error) {
	deadline := time.Now().Add(s.r.o.AckTimeout)
	for {
		members, err := s.r.o.Members(ctx)
		var behind []string
		if err == nil {
			for _, m := range members {
				if m.State == "left" {
					continue
				}
				if m.State != "alive" || m.Epoch < epoch {
					behind = append(behind, fmt.Sprintf("%s (%s, epoch %d)", m.Name, m.State, m.Epoch))
				}
			}
			if len(behind) == 0 {
				return nil, nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("list the cluster's proxies: %w", err)
			}
			return behind, nil
		}
		if err := ctxwait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// fence waits for every live proxy to buffer the shard, then fences the source.
func (s *session) fence(ctx context.Context) (string, error) {
	s.progress("waiting for every proxy to buffer", Progress{Lag: -1})
	behind, err := s.waitEpoch(ctx, s.mv.Detail.FrozenEpoch)
	if err != nil {
		return "", err
	}
	if len(behind) > 0 {
		return fmt.Sprintf("proxies did not confirm the frozen map (epoch %d) within %v: %s",
			s.mv.Detail.FrozenEpoch, s.r.o.AckTimeout, strings.Join(behind, ", ")), nil
	}
	if err := ctxwait.Sleep(ctx, s.r.o.Grace); err != nil {
		return "", err
	}
	s.progress("fencing the source", Progress{Lag: -1})
	lsns := make(map[string]string)
	deadline := time.Now().Add(s.r.o.FenceDeadline)
	for _, db := range s.dbs {
		lsn, err := move.Fence(ctx, s.conns[db][0], move.FenceOptions{
			Shard: s.mv.Shard, Move: s.mv.ID, Tables: s.tables, Marker: true,
			Reason:      "moving to group " + s.target.Name,
			LockTimeout: s.r.o.FenceLockTimeout, Deadline: deadline,
		})
		if err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			return fmt.Sprintf("fence of database %s on source group %s failed: %v", db, s.source.Name, err), nil
		}
		lsns[db] = fmt.Sprint(lsn)
	}
	return "", s.advance(ctx, shardmap.PhaseFenced, func(mv *shardmap.Move) error {
		mv.Detail.FenceLSN = lsns
		return nil
	}, nil)
}

// catchUp proves the target has everything the source committed before its fence.
func (s *session) catchUp(ctx context.Context) (string, error) {
	s.progress("proving catch-up", Progress{Lag: -1})
	for _, db := range s.dbs {
		cctx, cancel := context.WithTimeout(ctx, s.r.o.CatchUpTimeout)
		err := move.CatchUp(cctx, s.conns[db][1], s.forward(db), s.mv.Detail.FenceLSN[db])
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			return fmt.Sprintf("catch-up of database %s not proven within %v: %v", db, s.r.o.CatchUpTimeout, err), nil
		}
	}
	if refusal, err := s.recheck(ctx); refusal != "" || err != nil {
		return refusal, err
	}
	return "", s.advance(ctx, shardmap.PhaseCaughtUp, nil, nil)
}

// startReverse creates the replication from target back to source, while the shard is
// writable nowhere.
func (s *session) startReverse(ctx context.Context) error {
	s.progress("creating the reverse replication", Progress{Lag: -1})
	for _, db := range s.dbs {
		c := s.conns[db]
		if err := move.Replicate(ctx, c[1], c[0], s.reverse(db)); err != nil {
			return fmt.Errorf("reverse replication of database %s: %w", db, err)
		}
	}
	return s.advance(ctx, shardmap.PhaseReverseReady, nil, nil)
}

// switchOver drops the forward replication, unfences the target and gives it the shard in
// the map: the point of no return.
func (s *session) switchOver(ctx context.Context) error {
	s.progress("switching the owner", Progress{Lag: -1})
	for _, db := range s.dbs {
		c := s.conns[db]
		if err := move.DropReplication(ctx, c[0], c[1], s.forward(db)); err != nil {
			return fmt.Errorf("drop the forward replication of database %s: %w", db, err)
		}
		if err := move.Unfence(ctx, c[1], s.mv.Shard, s.tables); err != nil {
			return fmt.Errorf("unfence database %s on target group %s: %w", db, s.target.Name, err)
		}
	}
	return s.advance(ctx, shardmap.PhaseSwitched, notePause, switchOwner)
}

// confirm waits (bounded) for every live proxy to serve the switched map, then finishes.
func (s *session) confirm(ctx context.Context) error {
	s.progress("waiting for every proxy to load the new map", Progress{Lag: -1})
	behind, err := s.waitEpoch(ctx, s.mv.Detail.SwitchEpoch)
	if err != nil {
		return err
	}
	if len(behind) > 0 {
		// Not fatal: the switch is done and the source is fenced; a proxy that has not
		// loaded the map retries at the owner when its writes meet the fence, or stops
		// routing when its lease ends. Cleanup waits for every proxy.
		s.r.log.Warn("proxies have not loaded the switched map yet", zap.Int64("move", s.mv.ID), zap.Strings("proxies", behind))
	}
	return s.advance(ctx, shardmap.PhaseDone, nil, nil)
}

// notePause records how long the shard's writes were held: from the frozen epoch (the
// buffering phase) to now, the switch or the abort.
func notePause(mv *shardmap.Move) error {
	if frozen, ok := mv.Detail.Phases[shardmap.PhaseBuffering]; ok {
		mv.Detail.PauseSeconds = time.Since(frozen).Seconds()
	}
	return nil
}

// startAbort records the reason and enters the aborting phase.
func (s *session) startAbort(ctx context.Context, reason string) error {
	s.r.log.Warn("aborting shard move", zap.Int64("move", s.mv.ID), zap.String("reason", reason))
	from := s.mv.Phase
	if !from.Abortable() {
		return fmt.Errorf("move %d is %s: past the switch it cannot be aborted (reverse it instead): %s", s.mv.ID, from, reason)
	}
	if from == shardmap.PhaseAborting {
		return nil
	}
	return s.advance(ctx, shardmap.PhaseAborting, func(mv *shardmap.Move) error {
		mv.Detail.Error = reason
		mv.Detail.AbortedFrom = from
		return nil
	}, nil)
}

// finishAbort undoes whatever the move created, in an order that loses no write, and gives
// the shard back to the source in the map.
func (s *session) finishAbort(ctx context.Context) error {
	s.progress("aborting", Progress{Lag: -1})
	if err := s.lock.Held(ctx); err != nil {
		return err
	}
	reverseMove := s.mv.ReverseOf != 0
	dbs := s.dbs
	if s.mv.Detail.AbortedFrom == shardmap.PhasePlanned {
		// Nothing was created yet but, perhaps, the target's fence, which a group that does
		// not own the shard may keep (and the target may lack the tables).
		dbs = nil
	}
	for _, db := range dbs {
		c := s.conns[db]
		src, tgt := c[0], c[1]
		// No direct write may land on the target any more, now or later: it does not own the
		// shard.
		if _, err := move.Fence(ctx, tgt, move.FenceOptions{Shard: s.mv.Shard, Move: s.mv.ID, Tables: s.tables,
			Reason: "not owned: the move from group " + s.source.Name + " was aborted", Permanent: !reverseMove,
			LockTimeout: s.r.o.FenceLockTimeout, Deadline: time.Now().Add(s.r.o.FenceDeadline)}); err != nil {
			return fmt.Errorf("fence database %s on target group %s: %w", db, s.target.Name, err)
		}
		if err := move.DropReplication(ctx, tgt, src, s.reverse(db)); err != nil {
			return fmt.Errorf("drop the reverse replication of database %s: %w", db, err)
		}
		if reverseMove {
			// The forward replication is the reversed move's reverse replication: it must
			// keep the old copy in sync. The source is still fenced, so re-creating it
			// without a copy loses nothing.
			if err := move.Replicate(ctx, src, tgt, s.forward(db)); err != nil {
				return fmt.Errorf("restore the reversed move's replication of database %s: %w", db, err)
			}
		} else {
			if err := move.DropReplication(ctx, src, tgt, s.forward(db)); err != nil {
				return fmt.Errorf("drop the forward replication of database %s: %w", db, err)
			}
			if s.mv.Detail.AbortedFrom != shardmap.PhasePlanned {
				if _, err := move.DeleteShardRows(ctx, tgt, s.mv.Shard, s.tables, s.r.o.CleanupBatch, nil); err != nil {
					return fmt.Errorf("delete the partial copy of database %s on target group %s: %w", db, s.target.Name, err)
				}
			}
			// The target keeps its "not owned" fence: it never owned the shard.
		}
		if err := move.Unfence(ctx, src, s.mv.Shard, s.tables); err != nil {
			return fmt.Errorf("unfence database %s on source group %s: %w", db, s.source.Name, err)
		}
	}
	return s.advance(ctx, shardmap.PhaseAborted, notePause, setState(shardmap.StateActive))
}

// Abort undoes a move that has not switched yet. A move already aborted is returned as it is.
func (r *Runner) Abort(ctx context.Context, id int64, reason string) (*shardmap.Move, error) {
	s, err := r.open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if s.mv.Phase == shardmap.PhaseAborted {
		return s.mv, nil
	}
	if reason == "" {
		reason = "aborted by " + r.o.By
	}
	if err := s.startAbort(ctx, reason); err != nil {
		return s.mv, err
	}
	if err := s.finishAbort(ctx); err != nil {
		return s.mv, fmt.Errorf("move %d: abort: %w", id, err)
	}
	return s.mv, nil
}

// Cleanup drops the reverse replication of a done move and deletes the old copy from its
// source, keeping a permanent fence there. It refuses while a live proxy has not loaded the
// switched map or CleanupAfter has not passed since the switch.
func (r *Runner) Cleanup(ctx context.Context, id int64) (*shardmap.Move, error) {
	s, err := r.open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if s.mv.Phase == shardmap.PhaseCleaned {
		return s.mv, nil
	}
	if s.mv.Phase != shardmap.PhaseDone {
		return s.mv, fmt.Errorf("move %d is %s: only a done move is cleaned up", id, s.mv.Phase)
	}
	switched := s.mv.Detail.Phases[shardmap.PhaseSwitched]
	if wait := r.o.CleanupAfter - time.Since(switched); wait > 0 {
		return s.mv, fmt.Errorf("move %d switched %v ago: cleanup waits until the proxies' lease and buffer window have passed (%v more)",
			id, time.Since(switched).Round(time.Second), wait.Round(time.Second))
	}
	behind, err := s.waitEpoch(ctx, s.mv.Detail.SwitchEpoch)
	if err != nil {
		return s.mv, err
	}
	if len(behind) > 0 {
		return s.mv, fmt.Errorf("move %d: not every live proxy serves epoch %d yet (%s): cleanup waits for them",
			id, s.mv.Detail.SwitchEpoch, strings.Join(behind, ", "))
	}
	if err := s.lock.Held(ctx); err != nil {
		return s.mv, err
	}
	var deleted int64
	for _, db := range s.dbs {
		c := s.conns[db]
		if err := move.DropReplication(ctx, c[1], c[0], s.reverse(db)); err != nil {
			return s.mv, fmt.Errorf("drop the reverse replication of database %s: %w", db, err)
		}
		if _, err := move.Fence(ctx, c[0], move.FenceOptions{Shard: s.mv.Shard, Move: s.mv.ID, Tables: s.tables,
			Reason: "moved to group " + s.target.Name, Permanent: true,
			LockTimeout: r.o.FenceLockTimeout, Deadline: time.Now().Add(r.o.FenceDeadline)}); err != nil {
			return s.mv, fmt.Errorf("permanent fence of database %s on group %s: %w", db, s.source.Name, err)
		}
		n, err := move.DeleteShardRows(ctx, c[0], s.mv.Shard, s.tables, r.o.CleanupBatch, func(n int64) {
			s.progress("deleting the old copy from "+s.source.Name, Progress{Rows: deleted + n, Lag: -1})
		})
		if err != nil {
			return s.mv, fmt.Errorf("delete the old copy of database %s on group %s: %w", db, s.source.Name, err)
		}
		deleted += n
	}
	if err := s.advance(ctx, shardmap.PhaseCleaned, func(mv *shardmap.Move) error {
		mv.Detail.RowsDeleted = deleted
		return nil
	}, nil); err != nil {
		return s.mv, err
	}
	return s.mv, nil
}

// DSNConnector connects with one user and password to every group's writer (the host and
// port come from the map).
type DSNConnector struct {
	User, Password string
	// Params are extra libpq parameters, e.g. sslmode=disable.
	Params map[string]string
}

// ConnInfo builds the libpq key=value string for database db on g's writer.
func (d DSNConnector) ConnInfo(g shardmap.Group, db string) string {
	host, port, err := net.SplitHostPort(g.Writer)
	if err != nil {
		host, port = g.Writer, "5432"
	}
	parts := []string{"host=" + quote(host), "port=" + quote(port), "dbname=" + quote(db)}
	if d.User != "" {
		parts = append(parts, "user="+quote(d.User))
	}
	if d.Password != "" {
		parts = append(parts, "password="+quote(d.Password))
	}
	for k, v := range d.Params {
		parts = append(parts, k+"="+quote(v))
	}
	if _, ok := d.Params["connect_timeout"]; !ok {
		// A subscription whose source does not answer must not hang its worker.
		parts = append(parts, "connect_timeout=10")
	}
	return strings.Join(parts, " ")
}

// Connect opens a connection with ConnInfo.
func (d DSNConnector) Connect(ctx context.Context, g shardmap.Group, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(d.ConnInfo(g, db))
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "shardctl"
	return pgx.ConnectConfig(ctx, cfg)
}

// quote quotes a libpq value.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
