package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// checkQuery asks everything one check needs in one round trip. The OFFSET 0 fence makes
// pg_is_in_recovery() run once, so a promotion during the query cannot mix the two branches.
// A server in recovery reports its replay position; a writer reports its write position
// (what streaming replicas can have received: the standard comparison for lag) and its insert
// position (at or past every commit record already made, even with asynchronous commit: the
// bound read-your-writes needs). The WAL file name's first 8 hex digits are the writer's
// timeline, which grows with each promotion.
const checkQuery = `SELECT r,
  CASE WHEN r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
  CASE WHEN r THEN NULL ELSE pg_current_wal_insert_lsn() END,
  pg_last_wal_receive_lsn(),
  extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()),
  CASE WHEN r THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END
FROM (SELECT pg_is_in_recovery() AS r OFFSET 0) AS s`

// probeResult is what one check of one endpoint found.
type probeResult struct {
	start, end time.Time // when the check began and ended (monotonic)
	err        error     // nil when the endpoint answered

	inRecovery bool
	lsn        uint64 // replay position (in recovery) or write position (writer)
	insertLSN  uint64 // writer only: insert position
	receiveLSN uint64 // replica only: last WAL received; 0 if unknown
	// replayAge is now() - pg_last_xact_replay_timestamp(), measured on the replica;
	// hasReplayAge is false when no transaction was replayed since it started.
	replayAge    time.Duration
	hasReplayAge bool
	timeline     uint32 // writer only
}

// connConfig builds the check connection's configuration for addr.
func connConfig(addr string, cfg Config) (*pgconn.Config, error) {
	cc, err := ConnConfig(addr, cfg.User, cfg.Password, cfg.Database, "shardwire-health")
	if err != nil {
		return nil, err
	}
	cc.ConnectTimeout = cfg.ConnectTimeout
	return cc, nil
}

// ConnConfig builds the configuration of a connection of the proxy's own (health checks, the
// cache's change feed) to the endpoint addr. Every parameter is set here: nothing may come
// from the libpq environment (PGHOST, PGSSLMODE, PGTARGETSESSIONATTRS, PGOPTIONS, ...) of the
// proxy's process. Any endpoint is acceptable, a replica as well as a writer.
func ConnConfig(addr, user, password, database, application string) (*pgconn.Config, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: bad port: %w", addr, err)
	}
	cc, err := pgconn.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: connection config: %w", addr, err)
	}
	cc.Host, cc.Port = host, uint16(port)
	cc.Fallbacks = nil
	cc.TLSConfig = nil
	cc.Database, cc.User, cc.Password = database, user, password
	cc.RuntimeParams = map[string]string{"application_name": application}
	cc.ValidateConnect = nil
	cc.AfterConnect = nil
	cc.KerberosSrvName, cc.KerberosSpn = "", ""
	cc.MinProtocolVersion, cc.MaxProtocolVersion = "3.0", "3.0"
	cc.ChannelBinding = "disable"
	cc.RequireAuth = ""
	cc.OAuthTokenProvider = nil
	return cc, nil
}

// probe runs one check on ep over its persistent connection, opening it first if needed. A
// reused connection that fails is replaced once within the same check, so a connection the
// server dropped while idle does not mark the endpoint down. The caller holds ep.sem.
func (ep *endpoint) probe(ctx context.Context, cfg Config) probeResult {
	res := probeResult{start: time.Now()}
	if ep.connErr != nil {
		res.err, res.end = ep.connErr, time.Now()
		return res
	}
	for attempt := 0; ; attempt++ {
		fresh := ep.conn == nil
		if fresh {
			if err := ep.connect(ctx, cfg); err != nil {
				res.err, res.end = err, time.Now()
				return res
			}
		}
		err := ep.query(ctx, cfg.CheckTimeout, &res)
		if err == nil {
			res.end = time.Now()
			return res
		}
		// Retry once on a new connection only when an old one turned out to be dead; a
		// timeout is the endpoint's answer and is not tried again.
		retry := !fresh && attempt == 0 && ctx.Err() == nil && !pgconn.Timeout(err) &&
			(ep.conn.IsClosed() || connectionLost(err))
		ep.closeConn()
		if !retry {
			res.err, res.end = err, time.Now()
			return res
		}
	}
}

// connect opens ep's check connection.
func (ep *endpoint) connect(ctx context.Context, cfg Config) error {
	if cfg.User == "" {
		return errors.New("no user configured for health checks")
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, ep.connCfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	ep.conn = conn
	return nil
}

// closeConn closes ep's check connection, if any. The caller holds ep.sem.
func (ep *endpoint) closeConn() {
	if ep.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = ep.conn.Close(ctx)
	ep.conn = nil
}

// connectionLost reports whether err means the connection is unusable (rather than that
// the server answered with an error).
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr)
}

// query runs checkQuery on ep.conn and fills res.
func (ep *endpoint) query(ctx context.Context, timeout time.Duration, res *probeResult) error {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results, err := ep.conn.Exec(qctx, checkQuery).ReadAll()
	if err != nil {
		return fmt.Errorf("check query: %w", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 6 {
		return errors.New("check query: unexpected result shape")
	}
	if err := parseCheckRow(results[0].Rows[0], res); err != nil {
		return fmt.Errorf("check query: %w", err)
	}
	return nil
}

// parseCheckRow decodes checkQuery's text-format row into res.
func parseCheckRow(row [][]byte, res *probeResult) error {
	switch string(row[0]) {
	case "t":
		res.inRecovery = true
	case "f":
		res.inRecovery = false
	default:
		return fmt.Errorf("pg_is_in_recovery: unexpected %q", row[0])
	}
	var err error
	if row[1] != nil {
		if res.lsn, err = ParseLSN(string(row[1])); err != nil {
			return fmt.Errorf("position: %w", err)
		}
	} else if !res.inRecovery {
		return errors.New("writer reported no WAL position")
	}
	if row[2] != nil {
		if res.insertLSN, err = ParseLSN(string(row[2])); err != nil {
			return fmt.Errorf("insert position: %w", err)
		}
	}
	if row[3] != nil {
		if res.receiveLSN, err = ParseLSN(string(row[3])); err != nil {
			return fmt.Errorf("receive position: %w", err)
		}
	}
	if row[4] != nil {
		secs, err := strconv.ParseFloat(string(row[4]), 64)
		if err != nil {
			return fmt.Errorf("replay age %q: %w", row[4], err)
		}
		res.replayAge = max(0, time.Duration(secs*float64(time.Second)))
		res.hasReplayAge = true
	}
	if row[5] != nil {
		tl, err := strconv.ParseUint(string(row[5]), 16, 32)
		if err != nil {
			return fmt.Errorf("timeline %q: %w", row[5], err)
		}
		res.timeline = uint32(tl)
	}
	if !res.inRecovery && res.insertLSN < res.lsn {
		res.insertLSN = res.lsn
	}
	return nil
}
