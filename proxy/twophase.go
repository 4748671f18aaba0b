package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/twopc"
)

// twoPhase is the node's part in transactions that span shard groups: the decision log in the
// catalog, the recovery loop, and the coordinator's metrics and crash hook.
type twoPhase struct {
	log      *twopc.Log
	recovery *twopc.Recovery
	hook     func(step string)
	logger   *zap.Logger
}

// multiGroupMetrics count statements and transactions that span shard groups.
type multiGroupMetrics struct {
	multiGroup    prometheus.Counter
	copyRows      prometheus.Counter
	outcomes      *prometheus.CounterVec
	commitSeconds prometheus.Histogram
}

func newMultiGroupMetrics(reg prometheus.Registerer) *multiGroupMetrics {
	m := &multiGroupMetrics{
		multiGroup: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_multigroup_transactions_total",
			Help: "Transactions that took on a second shard group: explicit ones (databases with two_phase_commit) and split statements (multi-row INSERT, COPY).",
		}),
		copyRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_copy_split_rows_total",
			Help: "Rows of COPY FROM STDIN into sharded tables that the proxy sent to their groups (copies that committed).",
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_multigroup_commits_total",
			Help: "Ends of transactions spanning shard groups, by outcome: committed, rolled_back, unknown (08007, left to recovery).",
		}, []string{"outcome"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shardwire_twopc_commit_seconds",
			Help:    "Time of a two-phase commit, from recording the transaction to the last COMMIT PREPARED.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.multiGroup, m.copyRows, m.outcomes, m.commitSeconds)
	}
	return m
}

func (m *multiGroupMetrics) outcome(o string) { m.outcomes.WithLabelValues(o).Inc() }

// step calls the crash hook at a step of a two-phase commit.
func (tp *twoPhase) step(name string) {
	if tp.hook != nil {
		tp.hook(name)
	}
}

// forget drops a resolved transaction's record, in the background: recovery forgets it
// anyway if this fails.
func (tp *twoPhase) forget(gid string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tp.log.Forget(ctx, gid); err != nil {
			tp.logger.Warn("two-phase commit: cannot forget a resolved transaction; recovery will", zap.String("gid", gid), zap.Error(err))
		}
	}()
}

// SetTwoPhaseHook installs a function the two-phase commit calls at each step (Step*
// constants) — tests kill the node there. Set it before serving.
func (s *Server) SetTwoPhaseHook(h func(step string)) { s.twoPhaseHook = h }

// TwoPhaseRecovery returns the node's two-phase commit recovery, or nil when no database uses
// two-phase commit.
func (s *Server) TwoPhaseRecovery() *twopc.Recovery {
	if s.twoPhase == nil {
		return nil
	}
	return s.twoPhase.recovery
}

// TwoPhaseLog returns the node's two-phase commit decision log, or nil.
func (s *Server) TwoPhaseLog() *twopc.Log {
	if s.twoPhase == nil {
		return nil
	}
	return s.twoPhase.log
}

// startTwoPhase opens the decision log and starts the recovery loop when a database uses
// two-phase commit (the configuration checked that a catalog is set).
func (s *Server) startTwoPhase(ctx context.Context, cfg *config.Config) error {
	used := false
	for _, d := range cfg.Databases {
		used = used || d.TwoPhaseCommit
	}
	if !used || cfg.Catalog.DSN == "" {
		return nil
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lg, err := twopc.OpenLog(octx, cfg.Catalog.DSN, cfg.Catalog.Schema, cfg.TwoPhase.LogConnections, s.log.Named("twopc"))
	if err != nil {
		return fmt.Errorf("two-phase commit log: %w", err)
	}
	since, err := lg.Now(octx)
	if err != nil {
		lg.Close()
		return fmt.Errorf("two-phase commit log: %w", err)
	}
	rec, err := twopc.NewRecovery(lg, backendConnector{s: s}, twopc.RecoveryConfig{
		Interval:   cfg.TwoPhase.RecoveryInterval.D(),
		AbortAfter: cfg.TwoPhase.AbortAfter.D(),
		Retention:  cfg.TwoPhase.Retention.D(),
		Node:       cfg.NodeName,
		Since:      since,
		Groups: func() []string {
			m := s.topo.store.Current()
			names := make([]string, len(m.Groups))
			for i, g := range m.Groups {
				names[i] = g.Name
			}
			return names
		},
	}, s.reg, s.log.Named("twopc"))
	if err != nil {
		lg.Close()
		return fmt.Errorf("two-phase commit recovery: %w", err)
	}
	s.twoPhase = &twoPhase{log: lg, recovery: rec, hook: s.twoPhaseHook, logger: s.log.Named("twopc")}
	go func() {
		rec.Run(ctx)
		lg.Close()
	}()
	return nil
}

// backendConnector opens recovery's connections to group writers with the credentials of the
// configured users.
type backendConnector struct{ s *Server }

// Connect implements twopc.Connector: user on database at group's current writer, or with
// both empty the health checker's login on its database.
func (c backendConnector) Connect(ctx context.Context, group, database, user string) (*pgx.Conn, error) {
	s := c.s
	cfg := s.config()
	addr := s.topo.health.Writer(group)
	if addr == "" {
		return nil, fmt.Errorf("group %s has no writer", group)
	}
	h := healthConfig(cfg)
	login, password := h.User, h.Password
	if database == "" {
		database = h.Database
		if database == "" {
			database = "postgres"
		}
	}
	if user != "" {
		login, password = "", ""
		for _, u := range cfg.Users {
			name, pw := u.Name, u.Password
			if u.ServerUser != "" {
				name = u.ServerUser
			}
			if u.ServerPassword != "" {
				pw = u.ServerPassword
			}
			if name == user {
				login, password = name, pw
				break
			}
		}
		if login == "" {
			return nil, fmt.Errorf("no configured user logs in to the backends as %s", user)
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("writer %q of %s: %w", addr, group, err)
	}
	pc, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pc.Host, pc.Database, pc.User, pc.Password = host, database, login, password
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("writer %q of %s: bad port: %w", addr, group, err)
	}
	pc.Port = uint16(p)
	pc.ConnectTimeout = cfg.Pool.ServerConnectTimeout.D()
	pc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s (%s) as %s: %w", group, addr, login, err)
	}
	return conn, nil
}
