package cdc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
)

const (
	// statusInterval is the longest time between two standby status updates; well under
	// the server's wal_sender_timeout (60 s by default).
	statusInterval = 10 * time.Second
	// confirmDelay is how long a newly bumped position may wait before it is confirmed;
	// confirmations of busy streams are coalesced to one per confirmDelay.
	confirmDelay = 250 * time.Millisecond
)

// stream is one START_REPLICATION session. Only its goroutine uses it.
type stream struct {
	f    *feed
	conn *pgconn.PgConn
	dec  *decoder

	// flushed is the position to confirm: every commit that ends at or before it was
	// bumped. It never passes a commit whose Bump has not succeeded.
	flushed pglogrepl.LSN
	// sent is the position last confirmed, at lastStatus.
	sent       pglogrepl.LSN
	lastStatus time.Time
	replyNow   bool // the server asked for a status update
}

// stream starts replication on repl from start and consumes it until ctx ends or the
// stream fails; it returns the reason.
func (f *feed) stream(ctx context.Context, repl *pgconn.PgConn, start pglogrepl.LSN) error {
	err := pglogrepl.StartReplication(ctx, repl, f.cfg.SlotName, start, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names '" + f.cfg.PublicationName + "'", // validated: no quotes
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("start replication from %s: %w", start, err)
	}
	f.log.Info("cache feed: streaming", zap.Stringer("from", start))
	s := &stream{f: f, conn: repl, dec: newDecoder(&f.cfg), flushed: start, sent: start, lastStatus: time.Now()}
	err = s.run(ctx)
	if s.flushed > s.sent {
		// Confirm what was bumped, so the next leader does not bump it again.
		_ = s.sendStatus()
	}
	return err
}

// run receives and handles messages until ctx ends or the stream fails.
func (s *stream) run(ctx context.Context) error {
	for {
		if s.statusDue(time.Now()) {
			if err := s.sendStatus(); err != nil {
				return err
			}
		}
		recvCtx, cancel := context.WithDeadline(ctx, s.nextStatus())
		msg, err := s.conn.ReceiveMessage(recvCtx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive from replication stream: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("the server ended the replication stream")
		default:
			// Notices and parameter changes.
		}
	}
}

// handleCopyData handles one message of the replication stream.
func (s *stream) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("empty message in replication stream")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("replication stream: %w", err)
		}
		// Between transactions, every commit before the server's position was sent, and
		// (as this goroutine bumps each one before reading on) bumped; confirming it lets
		// the server recycle WAL that holds no change of this database.
		if !s.dec.inTransaction() && ka.ServerWALEnd > s.flushed {
			s.flushed = ka.ServerWALEnd
		}
		if ka.ReplyRequested {
			s.replyNow = true
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("replication stream: %w", err)
		}
		c, err := s.dec.decode(xld.WALData)
		if err != nil {
			return fmt.Errorf("replication stream at %s: %w", xld.WALStart, err)
		}
		if c != nil {
			return s.commit(ctx, c)
		}
	}
	return nil
}

// commit bumps a committed transaction's touches, retrying until Bump succeeds or ctx
// ends, and only then lets its end be confirmed.
func (s *stream) commit(ctx context.Context, c *commit) error {
	group := s.f.cfg.Group
	s.f.cfg.Metrics.txns.WithLabelValues(group).Inc()
	if len(c.touches) > 0 {
		// While Bump keeps failing, keep the server from timing the stream out; the
		// status sent still confirms only what was bumped before.
		keepAlive := func() { _ = s.sendStatus() }
		if err := s.f.bump(ctx, c.endLSN, c.touches, keepAlive); err != nil {
			return err
		}
		s.f.cfg.Metrics.lag.WithLabelValues(group).Observe(max(0, time.Since(c.time).Seconds()))
	}
	if c.endLSN > s.flushed {
		s.flushed = c.endLSN
	}
	return nil
}

// statusDue reports whether a status update should be sent at now.
func (s *stream) statusDue(now time.Time) bool {
	return s.replyNow || !now.Before(s.nextStatus())
}

// nextStatus is when the next status update is due unless the server asks earlier.
func (s *stream) nextStatus() time.Time {
	if s.flushed > s.sent {
		return s.lastStatus.Add(confirmDelay)
	}
	return s.lastStatus.Add(statusInterval)
}

// sendStatus sends a standby status update confirming s.flushed.
func (s *stream) sendStatus() error {
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: s.flushed,
		WALFlushPosition: s.flushed,
		WALApplyPosition: s.flushed,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.sent = s.flushed
	s.lastStatus = time.Now()
	s.replyNow = false
	return nil
}
