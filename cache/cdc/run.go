package cdc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cache"
	"github.com/shardwire/shardwire/internal/ctxwait"
)

// closeTimeout bounds closing a connection and the clean-up done after a term ends.
const closeTimeout = 5 * time.Second

// errNotLeader ends a term in which another feed held the lock.
var errNotLeader = errors.New("another node runs the feed")

// feed is one Run: its configuration and what it derives from it.
type feed struct {
	cfg Config
	log *zap.Logger
	key int64 // advisory lock key
}

// Run runs the feed of cfg.Database on cfg.Group's writer until ctx ends: it campaigns for
// the feed's advisory lock every cfg.Retry, and while it holds the lock it streams the
// writer's changes and bumps the generations they touched. When the lock's connection, the
// stream or a setup step fails, it lets the lock go and campaigns again after cfg.Retry.
//
// Run returns an error only for an invalid cfg; it returns nil once ctx ends. The slot and
// publication it creates are permanent and stay after it returns.
//
// The connections cfg opens must keep pgconn's default handling of context deadlines (as
// pgconn.ParseConfig sets it up), which interrupts a read without breaking the connection.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	f := &feed{
		cfg: cfg,
		log: cfg.Log.With(zap.String("group", cfg.Group), zap.String("database", cfg.Database),
			zap.String("slot", cfg.SlotName)),
		key: lockKey(cfg.Database, cfg.SlotName),
	}
	leader := cfg.Metrics.leader.WithLabelValues(cfg.Group, cfg.Database)
	leader.Set(0)
	for {
		err := f.term(ctx, leader.Set)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errNotLeader):
			f.log.Debug("cache feed: not leader, campaigning again", zap.Duration("retry", cfg.Retry))
		case err != nil:
			f.log.Warn("cache feed: attempt failed, retrying", zap.Error(err), zap.Duration("retry", cfg.Retry))
		}
		if ctxwait.Sleep(ctx, cfg.Retry) != nil {
			return nil
		}
	}
}

// term campaigns once and, when elected, leads until something fails or ctx ends.
// setLeader reports leadership to the metric.
func (f *feed) term(ctx context.Context, setLeader func(float64)) error {
	conn, err := f.cfg.Connect(ctx)
	if err != nil {
		return fmt.Errorf("connect to writer: %w", err)
	}
	// Closing the connection releases the lock.
	defer closeConn(conn)
	ok, err := tryLock(ctx, conn, f.key)
	if err != nil {
		return err
	}
	if !ok {
		return errNotLeader
	}
	setLeader(1)
	f.log.Info("cache feed: became leader")
	start := time.Now()
	err = f.lead(ctx, conn)
	setLeader(0)
	f.log.Info("cache feed: lost leadership", zap.NamedError("reason", err),
		zap.Duration("led_for", time.Since(start)))
	return err
}

// lead sets the publication and slot up and streams, holding the lock on lockConn.
func (f *feed) lead(ctx context.Context, lockConn *pgconn.PgConn) (err error) {
	if err := syncPublication(ctx, lockConn, f.cfg.PublicationName, f.cfg.Cacheable); err != nil {
		return err
	}
	repl, err := f.cfg.ConnectReplication(ctx)
	if err != nil {
		return fmt.Errorf("connect for replication: %w", err)
	}
	defer closeConn(repl)
	start, created, err := f.ensureSlot(ctx, lockConn, repl)
	if err != nil {
		return err
	}
	var tables []string // with a created slot: every table, to bump whole
	if created {
		f.log.Info("cache feed: created replication slot; bumping every cacheable table",
			zap.Stringer("lsn", start))
		// Until the writes made before the slot are accounted for, the slot must not
		// survive this term: the next leader would take it as complete. (Should this
		// node's lock connection alone break meanwhile, a new leader could start on the
		// slot before it is dropped; the drop then fails as the slot is in use.)
		defer func() {
			if err != nil && created {
				dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
				defer cancel()
				if dropErr := dropSlot(dropCtx, repl, f.cfg.SlotName); dropErr != nil {
					err = errors.Join(err, dropErr)
				}
			}
		}()
		if tables, err = listTables(ctx, lockConn); err != nil {
			return err
		}
	}

	termCtx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		watchLock(termCtx, lockConn, cancel, f.cfg.PublicationSync, func(ctx context.Context) error {
			return syncPublication(ctx, lockConn, f.cfg.PublicationName, f.cfg.Cacheable)
		})
	})
	defer func() {
		cancel(nil)
		wg.Wait()
	}()

	if created {
		if err := f.bumpTables(termCtx, tables, start); err != nil {
			return err
		}
		created = false // accounted for: keep the slot whatever happens next
	}
	return f.stream(termCtx, repl, start)
}

// ensureSlot returns where the slot's stream starts, creating the slot if it does not
// exist (created is true then).
func (f *feed) ensureSlot(ctx context.Context, conn, repl *pgconn.PgConn) (start pglogrepl.LSN, created bool, err error) {
	slot, err := lookupSlot(ctx, conn, f.cfg.SlotName)
	if err != nil || slot != nil {
		return slotStart(slot), false, err
	}
	if start, created, err = createSlot(ctx, repl, f.cfg.SlotName); err != nil || created {
		return start, created, err
	}
	// Created concurrently by someone else.
	if slot, err = lookupSlot(ctx, conn, f.cfg.SlotName); err != nil {
		return 0, false, err
	}
	if slot == nil {
		return 0, false, fmt.Errorf("slot %s was created concurrently and is gone again", f.cfg.SlotName)
	}
	return slot.confirmed, false, nil
}

// slotStart returns the confirmed position of slot, 0 for nil.
func slotStart(slot *slotInfo) pglogrepl.LSN {
	if slot == nil {
		return 0
	}
	return slot.confirmed
}

// bumpTables bumps the whole-table generation of every cacheable table in tables, at lsn.
func (f *feed) bumpTables(ctx context.Context, tables []string, lsn pglogrepl.LSN) error {
	var touches []cache.Touch
	for _, t := range tables {
		if !f.cfg.Cacheable(t) {
			continue
		}
		_, sharded := f.cfg.KeyColumn(t)
		touches = append(touches, cache.Touch{DB: f.cfg.Database, Table: t, Sharded: sharded})
	}
	if len(touches) == 0 {
		return nil
	}
	return f.bump(ctx, lsn, touches, nil)
}

// bump calls Bump until it succeeds or ctx ends, pausing cfg.Retry between attempts and
// calling whilePaused (when not nil) before each pause.
func (f *feed) bump(ctx context.Context, lsn pglogrepl.LSN, touches []cache.Touch, whilePaused func()) error {
	for {
		err := f.cfg.Bump(ctx, f.cfg.Group, uint64(lsn), touches)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		f.cfg.Metrics.bumpErrs.WithLabelValues(f.cfg.Group).Inc()
		f.log.Warn("cache feed: bump failed, retrying", zap.Stringer("lsn", lsn),
			zap.Int("touches", len(touches)), zap.Error(err), zap.Duration("retry", f.cfg.Retry))
		if whilePaused != nil {
			whilePaused()
		}
		if ctxwait.Sleep(ctx, f.cfg.Retry) != nil {
			return context.Cause(ctx)
		}
	}
}

// closeConn closes conn, waiting at most closeTimeout.
func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}
