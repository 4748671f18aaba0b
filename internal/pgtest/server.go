package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardwire/shardwire/internal/childproc"
	"github.com/shardwire/shardwire/internal/ctxwait"
)

// Roles and database present on every server.
const (
	User      = "app"      // login role owning Database, SCRAM password Password
	Password  = "app"      // password of User
	Database  = "app"      // database owned by User
	SuperUser = "postgres" // superuser, trusted without a password on loopback
)

const (
	// serverConfFile holds a server's settings; the template's
	// postgresql.conf includes it.
	serverConfFile = "shardwire.conf"
	// logFile receives the postmaster's stdout and stderr, in the data dir.
	logFile = "postgres.log"
	// readyPollInterval is how often a starting server is probed.
	readyPollInterval = 10 * time.Millisecond
	// probeTimeout bounds one readiness connection attempt.
	probeTimeout = time.Second
	// maxPortAttempts bounds retries when a freshly picked port is taken.
	maxPortAttempts = 5
)

// Server is one Postgres server, a child process of the caller.
//
// The exported fields are set before the server is handed out and never
// change. Methods are safe for concurrent use; Start, Stop and Kill are
// serialized.
type Server struct {
	Name    string // e.g. "g0-writer", "g0-replica1"; also its cluster_name
	Host    string // always 127.0.0.1
	Port    int
	DataDir string

	binDir    string
	as        runAs
	extraConf map[string]string

	mu   sync.Mutex
	proc *childproc.Process // nil until started; exited after Stop or Kill
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DSN returns a postgres:// URL for user on database, without TLS.
func (s *Server) DSN(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     s.Addr(),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	if password == "" {
		u.User = url.User(user)
	}
	return u.String()
}

// AppDSN returns the DSN of User on Database (SCRAM authentication).
func (s *Server) AppDSN() string { return s.DSN(User, Password, Database) }

// SuperDSN returns the DSN of SuperUser on database (trust authentication).
func (s *Server) SuperDSN(database string) string { return s.DSN(SuperUser, "", database) }

// LogPath returns the file that receives the server's log.
func (s *Server) LogPath() string { return filepath.Join(s.DataDir, logFile) }

// Running reports whether the postmaster process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

// Start starts a stopped server on its port and returns once it accepts
// connections and, if it is a standby (standby.signal exists), is in
// recovery. It returns an error if the server is running. A failure includes
// the tail of the server's log.
func (s *Server) Start(ctx context.Context) error {
	return s.start(ctx, false)
}

// start starts the server; with newPort it picks a free port first and picks
// another one if that port turns out to be taken.
func (s *Server) start(ctx context.Context, newPort bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.Exited() {
		return fmt.Errorf("start %s: already running", s.Name)
	}
	for attempt := 1; ; attempt++ {
		if newPort {
			port, err := freePort()
			if err != nil {
				return fmt.Errorf("start %s: %w", s.Name, err)
			}
			s.Port = port
			if err := s.writeConf(); err != nil {
				return fmt.Errorf("start %s: %w", s.Name, err)
			}
		}
		err := s.launch(ctx)
		if err == nil {
			return nil
		}
		var exit *exitError
		if errors.As(err, &exit) && ctx.Err() == nil {
			switch {
			case newPort && exit.portTaken() && attempt < maxPortAttempts:
				continue
			case exit.shmemInUse():
				// Backends of a killed postmaster are still exiting.
				if ctxwait.Sleep(ctx, readyPollInterval) == nil {
					continue
				}
			}
		}
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
}

// launch runs the postmaster and waits until it is ready; on failure the
// process is gone when it returns.
func (s *Server) launch(ctx context.Context) error {
	logPath := s.LogPath()
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := s.as.chown(logPath); err != nil {
		_ = log.Close()
		return err
	}
	var logStart int64
	if fi, err := log.Stat(); err == nil {
		logStart = fi.Size()
	}
	cmd := s.as.command(s.DataDir, filepath.Join(s.binDir, "postgres"), "-D", s.DataDir)
	cmd.Stdout = log
	cmd.Stderr = log
	p, err := childproc.Start(cmd)
	_ = log.Close() // the child has its own descriptor
	if err != nil {
		return err
	}
	s.proc = p
	err = s.waitReady(ctx, p, logStart)
	if err == nil {
		return nil
	}
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
	return fmt.Errorf("%w\n--- %s ---\n%s", err, logPath, tail(readFrom(logPath, logStart)))
}

// waitReady polls until the server accepts a superuser connection (and is in
// recovery if it is a standby), the process exits, or ctx ends. logStart is
// the log's size before this start.
func (s *Server) waitReady(ctx context.Context, p *childproc.Process, logStart int64) error {
	cfg, err := pgconn.ParseConfig(s.SuperDSN("postgres"))
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = probeTimeout
	standby := fileExists(filepath.Join(s.DataDir, "standby.signal"))
	var lastErr error
	for {
		ready, err := probe(ctx, cfg, standby)
		if ready {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-p.Done():
			return &exitError{err: p.Err(), log: string(readFrom(s.LogPath(), logStart))}
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(readyPollInterval):
		}
	}
}

// probe connects once; a standby must also report pg_is_in_recovery().
func probe(ctx context.Context, cfg *pgconn.Config, standby bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	if !standby {
		return true, nil
	}
	recovering, err := inRecovery(ctx, conn)
	if err != nil {
		return false, err
	}
	if !recovering {
		return false, errors.New("standby is not in recovery")
	}
	return true, nil
}

// inRecovery returns pg_is_in_recovery().
func inRecovery(ctx context.Context, conn *pgconn.PgConn) (bool, error) {
	v, err := queryValue(ctx, conn, "SELECT pg_is_in_recovery()")
	return v == "t", err
}

// queryValue runs sql and returns the first column of its first row as text.
func queryValue(ctx context.Context, conn *pgconn.PgConn, sql string) (string, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	if len(results) == 0 || len(results[0].Rows) == 0 || len(results[0].Rows[0]) == 0 {
		return "", fmt.Errorf("%s: no rows", sql)
	}
	return string(results[0].Rows[0][0]), nil
}

// Stop shuts the server down (SIGINT: fast shutdown) and waits for the
// postmaster to exit. When ctx ends first, it SIGKILLs it and returns
// ctx's error. Stopping a stopped server does nothing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return nil
	}
	if err := s.proc.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("stop %s: %w", s.Name, err)
	}
	select {
	case <-s.proc.Done():
		return nil
	case <-ctx.Done():
		_ = s.proc.Signal(syscall.SIGKILL)
		<-s.proc.Done()
		return fmt.Errorf("stop %s: %w", s.Name, ctx.Err())
	}
}

// Kill sends SIGKILL to the postmaster, as in a crash, and waits for it to
// exit. Its backends notice and exit on their own; Start waits for them.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return nil
	}
	if err := s.proc.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", s.Name, err)
	}
	<-s.proc.Done()
	return nil
}

// Promote promotes a standby with pg_promote() and returns once it is out
// of recovery and accepts writes.
func (s *Server) Promote(ctx context.Context) error {
	conn, err := pgconn.Connect(ctx, s.SuperDSN("postgres"))
	if err != nil {
		return fmt.Errorf("promote %s: %w", s.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	waitSeconds := 60
	if deadline, ok := ctx.Deadline(); ok {
		waitSeconds = max(1, int(time.Until(deadline).Seconds()))
	}
	done, err := queryValue(ctx, conn, fmt.Sprintf("SELECT pg_promote(true, %d)", waitSeconds))
	if err != nil {
		return fmt.Errorf("promote %s: %w", s.Name, err)
	}
	if done != "t" {
		return fmt.Errorf("promote %s: not promoted within %ds", s.Name, waitSeconds)
	}
	if recovering, err := inRecovery(ctx, conn); err != nil || recovering {
		return fmt.Errorf("promote %s: still in recovery (err %v)", s.Name, err)
	}
	return nil
}

// writeConf writes the server's settings file.
func (s *Server) writeConf() error {
	settings := map[string]string{
		"cluster_name":            s.Name,
		"listen_addresses":        s.Host,
		"port":                    strconv.Itoa(s.Port),
		"unix_socket_directories": "",
		"password_encryption":     "scram-sha-256",
		"wal_level":               "logical",
		"max_wal_senders":         "20",
		"max_replication_slots":   "20",
		// Replicas made by pg_basebackup in parallel need the WAL written meanwhile.
		"wal_keep_size": "256MB",
		"hot_standby":   "on",
		// A standby retries a lost primary after this long (default 5s).
		"wal_retrieve_retry_interval": "100ms",
		"fsync":                       "off",
		"full_page_writes":            "off",
		"synchronous_commit":          "off",
		"shared_buffers":              "32MB",
		"max_connections":             "300",
		"max_prepared_transactions":   "50",
		"logging_collector":           "off",
		"log_destination":             "stderr",
	}
	var b strings.Builder
	b.WriteString("# Written by shardwire pgtest for " + s.Name + ".\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if _, ok := s.extraConf[k]; !ok {
			writeSetting(&b, k, settings[k])
		}
	}
	if len(s.extraConf) > 0 {
		b.WriteString("# Options.ExtraConf\n")
		for _, k := range slices.Sorted(maps.Keys(s.extraConf)) {
			writeSetting(&b, k, s.extraConf[k])
		}
	}
	return writeOwned(s.as, filepath.Join(s.DataDir, serverConfFile), []byte(b.String()))
}

// writeSetting writes one postgresql.conf line; any value may be quoted.
func writeSetting(b *strings.Builder, key, value string) {
	fmt.Fprintf(b, "%s = '%s'\n", key, strings.ReplaceAll(value, "'", "''"))
}

// exitError reports a postmaster that exited before it was ready.
type exitError struct {
	err error  // from Wait
	log string // the server's log
}

func (e *exitError) Error() string { return fmt.Sprintf("postgres exited during startup: %v", e.err) }
func (e *exitError) Unwrap() error { return e.err }

// portTaken reports whether the server could not bind its port.
func (e *exitError) portTaken() bool {
	return strings.Contains(e.log, "could not bind") || strings.Contains(e.log, "Address already in use")
}

// shmemInUse reports whether backends of a killed postmaster still hold its
// shared memory.
func (e *exitError) shmemInUse() bool {
	return strings.Contains(e.log, "pre-existing shared memory block")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readFrom returns the contents of path from offset on, or nothing.
func readFrom(path string, offset int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(f)
	return b
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
