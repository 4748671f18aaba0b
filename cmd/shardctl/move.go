package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/shardmap"
	"github.com/shardwire/shardwire/shardmap/rebalance"
)

// Where the move commands' database settings come from when their flags are not given.
const (
	envCatalog    = "SHARDWIRE_CATALOG"
	envDBUser     = "SHARDWIRE_DB_USER"
	envDBPassword = "SHARDWIRE_DB_PASSWORD"
)

// moveOptions are the flags of the commands that drive moves: they connect to the catalog
// and to the groups' writers themselves (the nodes never see the credentials).
type moveOptions struct {
	g          *globalOptions
	catalog    string
	schema     string
	user       string
	password   string
	sslmode    string
	databases  []string
	ackTimeout time.Duration
	grace      time.Duration
	maxLag     int64
	lockWait   time.Duration
	fenceDL    time.Duration
	cleanAfter time.Duration
}

func (m *moveOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&m.catalog, "catalog", os.Getenv(envCatalog), "DSN of the shard map catalog's database (env "+envCatalog+")")
	f.StringVar(&m.schema, "catalog-schema", shardmap.DefaultSchema, "schema of the shard map catalog")
	f.StringVar(&m.user, "db-user", os.Getenv(envDBUser), "role on every group's writer that may create publications, subscriptions and triggers (env "+envDBUser+"; default: the catalog DSN's user)")
	f.StringVar(&m.password, "db-password", os.Getenv(envDBPassword), "its password (env "+envDBPassword+"; default: the catalog DSN's password)")
	f.StringVar(&m.sslmode, "db-sslmode", "prefer", "sslmode of the connections to the writers (also used by the subscriptions)")
	f.StringArrayVar(&m.databases, "database", nil, "database whose sharded tables move; repeat for several (default: the catalog DSN's database)")
	f.DurationVar(&m.ackTimeout, "ack-timeout", 10*time.Second, "how long every live proxy gets to confirm a new map epoch before the move aborts")
	f.DurationVar(&m.grace, "grace", time.Second, "time open transactions on the shard get to finish before the fence (at least the proxies' moves.grace)")
	f.Int64Var(&m.maxLag, "max-lag", 1<<20, "replication lag in bytes under which the copy may switch")
	f.DurationVar(&m.lockWait, "fence-lock-timeout", 200*time.Millisecond, "lock_timeout of one fence attempt")
	f.DurationVar(&m.fenceDL, "fence-deadline", 30*time.Second, "how long the fence is retried before the move aborts")
	f.DurationVar(&m.cleanAfter, "cleanup-after", 30*time.Second, "minimum time between the switch and cleanup (the proxies' lease TTL plus buffer window)")
}

// opened is what a move command holds while it runs.
type opened struct {
	cat    *shardmap.Catalog
	runner *rebalance.Runner
}

func (o *opened) close() { o.cat.Close() }

// open connects to the catalog and builds a runner reporting progress on w.
func (m *moveOptions) open(ctx context.Context, w io.Writer) (*opened, error) {
	if m.catalog == "" {
		return nil, fmt.Errorf("no catalog: give --catalog DSN or set %s (the DSN the nodes use under catalog.dsn)", envCatalog)
	}
	cfg, err := pgx.ParseConfig(m.catalog)
	if err != nil {
		return nil, fmt.Errorf("invalid --catalog DSN: %w", err)
	}
	user, password := m.user, m.password
	if user == "" {
		user, password = cfg.User, cfg.Password
	}
	dbs := m.databases
	if len(dbs) == 0 {
		dbs = []string{cfg.Database}
	}
	cat, err := shardmap.OpenCatalog(ctx, m.catalog, m.schema, nil)
	if err != nil {
		return nil, fmt.Errorf("open the catalog: %w", err)
	}
	host, _ := os.Hostname()
	client, err := m.g.client()
	if err != nil {
		cat.Close()
		return nil, err
	}
	members := func(ctx context.Context) ([]rebalance.Member, error) {
		st, err := client.Cluster(ctx)
		if err != nil {
			return nil, m.g.explain(client, err)
		}
		out := make([]rebalance.Member, len(st.Members))
		for i, mb := range st.Members {
			out[i] = rebalance.Member{Name: mb.Name, State: mb.State, Epoch: mb.Epoch}
		}
		return out, nil
	}
	r, err := rebalance.New(rebalance.Options{
		Catalog:   cat,
		Connector: rebalance.DSNConnector{User: user, Password: password, Params: map[string]string{"sslmode": m.sslmode}},
		Members:   members, Databases: dbs, By: "shardctl@" + host, Log: zap.NewNop(),
		OnProgress: progressPrinter(w), MaxLagBytes: m.maxLag, AckTimeout: m.ackTimeout, Grace: m.grace,
		FenceLockTimeout: m.lockWait, FenceDeadline: m.fenceDL, CleanupAfter: m.cleanAfter,
	})
	if err != nil {
		cat.Close()
		return nil, err
	}
	return &opened{cat: cat, runner: r}, nil
}

// progressPrinter prints a line per phase change and, during long steps, one every two
// seconds at most.
func progressPrinter(w io.Writer) func(rebalance.Progress) {
	var last time.Time
	var lastStep string
	return func(p rebalance.Progress) {
		if p.Step == lastStep && time.Since(last) < 2*time.Second {
			return
		}
		last, lastStep = time.Now(), p.Step
		line := fmt.Sprintf("move %d shard %d %s→%s  %-9s %s", p.Move.ID, p.Move.Shard, p.Move.Source, p.Move.Target,
			p.Move.Phase, p.Step)
		if p.Rows > 0 {
			line += fmt.Sprintf("  rows %d", p.Rows)
		}
		if p.Tables > 0 && p.Move.Phase == shardmap.PhaseCopying {
			line += fmt.Sprintf("  tables ready %d/%d", p.Ready, p.Tables)
		}
		if p.Lag >= 0 {
			line += fmt.Sprintf("  lag %dB", p.Lag)
		}
		line += fmt.Sprintf("  elapsed %s", p.Elapsed.Round(100*time.Millisecond))
		_, _ = fmt.Fprintln(w, line)
	}
}

// newMoveCmd returns `shardctl move`.
func newMoveCmd(g *globalOptions) *cobra.Command {
	mo := &moveOptions{g: g}
	var (
		shard         int
		to            string
		resume, abort bool
		reverse       int64
	)
	cmd := &cobra.Command{
		Use:   "move --shard K --to GROUP",
		Short: "Move one logical shard to another group online",
		Long: "Move one logical shard to another shard group while clients keep working: copy it with\n" +
			"row-filtered logical replication, verify it, hold its writes on every proxy, fence the source,\n" +
			"prove the target caught up, set up reverse replication, and switch the map. The move's state\n" +
			"is in the catalog: --resume continues a move whose shardctl was killed, --abort undoes one that\n" +
			"has not switched, --reverse MOVE takes a done move's shard back over its reverse replication.",
		Example: "  shardctl move --shard 5 --to g4 --catalog postgres://sw:pw@catalog:5432/app\n" +
			"  shardctl move --shard 5 --resume\n  shardctl move --shard 5 --abort\n  shardctl move --reverse 12",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			modes := 0
			for _, b := range []bool{resume, abort, reverse != 0} {
				if b {
					modes++
				}
			}
			if modes > 1 {
				return errors.New("--resume, --abort and --reverse exclude each other")
			}
			if reverse == 0 && (shard < 0 || shard >= shardmap.NumShards) {
				return fmt.Errorf("--shard %d: give a shard 0..%d", shard, shardmap.NumShards-1)
			}
			if modes == 0 && to == "" {
				return errors.New("--to GROUP is required (or --resume, --abort, --reverse)")
			}
			op, err := mo.open(ctx, out)
			if err != nil {
				return err
			}
			defer op.close()
			var mv *shardmap.Move
			switch {
			case reverse != 0:
				mv, err = op.runner.Reverse(ctx, reverse)
			case resume || abort:
				open, oerr := op.cat.OpenMove(ctx, shardmap.Shard(shard))
				if oerr != nil {
					return oerr
				}
				if open == nil {
					return fmt.Errorf("shard %d has no open move (shardctl moves lists them)", shard)
				}
				if abort {
					mv, err = op.runner.Abort(ctx, open.ID, "")
				} else {
					mv, err = op.runner.Drive(ctx, open.ID)
				}
			default:
				mv, err = op.runner.Start(ctx, shardmap.Shard(shard), to)
			}
			if mv != nil {
				writeMoveSummary(out, mv)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&shard, "shard", -1, "the logical shard, 0..15")
	f.StringVar(&to, "to", "", "the group to move it to")
	f.BoolVar(&resume, "resume", false, "continue the shard's open move from its recorded phase")
	f.BoolVar(&abort, "abort", false, "undo the shard's open move (only before its switch)")
	f.Int64Var(&reverse, "reverse", 0, "take the shard of this done move back to its source")
	mo.register(cmd)
	return cmd
}

// writeMoveSummary prints a move's outcome.
func writeMoveSummary(w io.Writer, mv *shardmap.Move) {
	d := mv.Detail
	_, _ = fmt.Fprintf(w, "move %d: shard %d %s → %s: %s", mv.ID, mv.Shard, mv.Source, mv.Target, mv.Phase)
	if d.PauseSeconds > 0 {
		_, _ = fmt.Fprintf(w, ", writes held %.3fs", d.PauseSeconds)
	}
	if d.Rows > 0 {
		_, _ = fmt.Fprintf(w, ", %d rows", d.Rows)
	}
	if d.Verification != "" {
		_, _ = fmt.Fprintf(w, ", verified (%s)", d.Verification)
	}
	if d.Error != "" {
		_, _ = fmt.Fprintf(w, "; %s", d.Error)
	}
	_, _ = fmt.Fprintln(w)
}

// newMovesCmd returns `shardctl moves`.
func newMovesCmd(g *globalOptions) *cobra.Command {
	mo := &moveOptions{g: g}
	var limit int
	cmd := &cobra.Command{
		Use:   "moves",
		Short: "List shard moves with their phases and timings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mo.catalog == "" {
				return fmt.Errorf("no catalog: give --catalog DSN or set %s", envCatalog)
			}
			cat, err := shardmap.OpenCatalog(cmd.Context(), mo.catalog, mo.schema, nil)
			if err != nil {
				return fmt.Errorf("open the catalog: %w", err)
			}
			defer cat.Close()
			moves, err := cat.Moves(cmd.Context(), limit)
			if err != nil {
				return err
			}
			writeMoves(cmd.OutOrStdout(), moves)
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many moves, newest first (0: all)")
	mo.register(cmd)
	return cmd
}

// writeMoves prints moves as a table.
func writeMoves(w io.Writer, moves []*shardmap.Move) {
	if len(moves) == 0 {
		_, _ = fmt.Fprintln(w, "no moves")
		return
	}
	t := newTable(w)
	row(t, "MOVE", "SHARD", "FROM", "TO", "PHASE", "STARTED", "DURATION", "PAUSE", "ROWS", "NOTE")
	for _, mv := range moves {
		d := mv.Detail
		start := d.Phases[shardmap.PhasePlanned]
		if start.IsZero() {
			start = mv.CreatedAt
		}
		end := mv.UpdatedAt
		pause := "-"
		if d.PauseSeconds > 0 {
			pause = fmt.Sprintf("%.3fs", d.PauseSeconds)
		}
		note := d.Error
		if mv.ReverseOf != 0 {
			note = strings.TrimSpace(fmt.Sprintf("reverses move %d %s", mv.ReverseOf, note))
		}
		row(t, fmt.Sprint(mv.ID), fmt.Sprint(mv.Shard), mv.Source, mv.Target, string(mv.Phase),
			start.Local().Format("2006-01-02 15:04:05"), end.Sub(start).Round(100*time.Millisecond).String(),
			pause, fmt.Sprint(d.Rows), note)
	}
	_ = t.Flush()
}

// newCleanupCmd returns `shardctl cleanup`.
func newCleanupCmd(g *globalOptions) *cobra.Command {
	mo := &moveOptions{g: g}
	var shard int
	cmd := &cobra.Command{
		Use:   "cleanup --shard K",
		Short: "Delete the old copy of a moved shard once it is safe",
		Long: "Drop the reverse replication of the shard's done move and delete the shard's rows from its\n" +
			"old group in small batches, leaving a permanent fence there. It refuses until every live proxy\n" +
			"serves the switched map and --cleanup-after has passed since the switch.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if shard < 0 || shard >= shardmap.NumShards {
				return fmt.Errorf("--shard %d: give a shard 0..%d", shard, shardmap.NumShards-1)
			}
			op, err := mo.open(cmd.Context(), cmd.OutOrStdout())
			if err != nil {
				return err
			}
			defer op.close()
			open, err := op.cat.OpenMove(cmd.Context(), shardmap.Shard(shard))
			if err != nil {
				return err
			}
			if open == nil || open.Phase != shardmap.PhaseDone {
				return fmt.Errorf("shard %d has no done move to clean up (shardctl moves lists them)", shard)
			}
			mv, err := op.runner.Cleanup(cmd.Context(), open.ID)
			if mv != nil && err == nil {
				_, _ = fmt.Fprintf(cmd.OutOrStdout(), "move %d: cleaned up: %d rows of shard %d deleted from %s\n",
					mv.ID, mv.Detail.RowsDeleted, mv.Shard, mv.Source)
			}
			return err
		},
	}
	cmd.Flags().IntVar(&shard, "shard", -1, "the logical shard, 0..15")
	mo.register(cmd)
	return cmd
}

// newRebalanceCmd returns `shardctl rebalance`.
func newRebalanceCmd(g *globalOptions) *cobra.Command {
	mo := &moveOptions{g: g}
	var dryRun, bySize, yes, resume bool
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Even out shards across groups, one online move after another",
		Long: "Plan the moves that even out the shards (with --by-size, their bytes) across the map's groups,\n" +
			"print the plan, and after confirmation (--yes for scripts) run the moves one after another.\n" +
			"--resume first finishes moves a killed shardctl left open.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			op, err := mo.open(ctx, out)
			if err != nil {
				return err
			}
			defer op.close()
			if resume {
				if err := resumeOpen(ctx, op, out); err != nil {
					return err
				}
			}
			m, err := op.cat.Load(ctx)
			if err != nil {
				return err
			}
			if busy := m.Moving(); !busy.Empty() {
				return fmt.Errorf("shards %s are being moved: finish those moves first (shardctl moves; --resume)", busy)
			}
			var steps []rebalance.Step
			if bySize {
				sizes, err := op.runner.ShardSizes(ctx, m)
				if err != nil {
					return err
				}
				steps = rebalance.PlanBySize(m, sizes)
			} else {
				steps = rebalance.Plan(m)
			}
			writePlan(out, m, steps)
			if len(steps) == 0 || dryRun {
				return nil
			}
			if !yes && !confirm(cmd.InOrStdin(), out, fmt.Sprintf("run these %d moves?", len(steps))) {
				return errors.New("not confirmed: nothing moved")
			}
			for i, st := range steps {
				_, _ = fmt.Fprintf(out, "[%d/%d] %s\n", i+1, len(steps), st)
				mv, err := op.runner.Start(ctx, st.Shard, st.To)
				if mv != nil {
					writeMoveSummary(out, mv)
				}
				if err != nil {
					return fmt.Errorf("rebalance stopped at %s: %w", st, err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "print the plan only")
	f.BoolVar(&bySize, "by-size", false, "even out bytes rather than shard counts")
	f.BoolVarP(&yes, "yes", "y", false, "run the plan without asking")
	f.BoolVar(&resume, "resume", false, "finish open moves first")
	mo.register(cmd)
	return cmd
}

// resumeOpen drives every running move to its end.
func resumeOpen(ctx context.Context, op *opened, out io.Writer) error {
	moves, err := op.cat.Moves(ctx, 0)
	if err != nil {
		return err
	}
	for i := len(moves) - 1; i >= 0; i-- {
		mv := moves[i]
		if mv.Phase.Finished() || mv.Phase == shardmap.PhaseAborted {
			continue
		}
		_, _ = fmt.Fprintf(out, "resuming move %d (shard %d, %s)\n", mv.ID, mv.Shard, mv.Phase)
		done, err := op.runner.Drive(ctx, mv.ID)
		if done != nil {
			writeMoveSummary(out, done)
		}
		var aborted *rebalance.AbortedError
		if err != nil && !errors.As(err, &aborted) {
			return err
		}
	}
	return nil
}

// writePlan prints a rebalance plan and the shard counts it leads to.
func writePlan(w io.Writer, m *shardmap.Map, steps []rebalance.Step) {
	if len(steps) == 0 {
		_, _ = fmt.Fprintln(w, "the shards are balanced: nothing to move")
		return
	}
	t := newTable(w)
	row(t, "STEP", "SHARD", "FROM", "TO", "SIZE")
	for i, st := range steps {
		size := "-"
		if st.Bytes > 0 {
			size = fmt.Sprintf("%.1f MiB", float64(st.Bytes)/(1<<20))
		}
		row(t, fmt.Sprint(i+1), fmt.Sprint(st.Shard), st.From, st.To, size)
	}
	_ = t.Flush()
	owner := m.Owner
	for _, st := range steps {
		owner[st.Shard] = m.GroupIndex(st.To)
	}
	var after []string
	for g := range m.Groups {
		n := 0
		for _, o := range owner {
			if o == g {
				n++
			}
		}
		after = append(after, fmt.Sprintf("%s=%d", m.Groups[g].Name, n))
	}
	_, _ = fmt.Fprintf(w, "shards per group afterwards: %s\n", strings.Join(after, " "))
}

// confirm asks a yes/no question on in.
func confirm(in io.Reader, out io.Writer, question string) bool {
	_, _ = fmt.Fprintf(out, "%s [y/N] ", question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
