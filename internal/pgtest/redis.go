package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/childproc"
)

const (
	// redisBinary is the server program StartRedis runs.
	redisBinary = "redis-server"
	// redisLogFile receives redis-server's stdout and stderr, in its Dir.
	redisLogFile = "redis.log"
	// redisInstallHint says how to get redisBinary.
	redisInstallHint = "install it with `sudo apt-get install -y redis-server` or run scripts/deps.sh"
	// redisStartTimeout bounds NewRedis's start and its cleanup's stop.
	redisStartTimeout = 30 * time.Second
)

// ErrNoRedisServer is returned (wrapped) by StartRedis when redis-server is
// not installed, so that callers such as `shardwire dev` can run without it.
var ErrNoRedisServer = errors.New(redisBinary + " not found on PATH")

// RedisOptions configures StartRedis.
type RedisOptions struct {
	// Dir is redis-server's working directory, which holds its log
	// (redis.log). Required; created if missing. Nothing is persisted there:
	// the server runs with snapshots and the append-only file off.
	Dir string
	// Port is the loopback TCP port; 0 picks a free one. The port is kept
	// across Stop/Kill and Start.
	Port int
}

// Redis is one redis-server, a child process of the caller, listening on
// 127.0.0.1 without persistence, so a restart starts empty.
//
// The exported fields are set by StartRedis and never change. Methods are
// safe for concurrent use; Start, Stop and Kill are serialized.
type Redis struct {
	Host string // always 127.0.0.1
	Port int
	Dir  string

	binary string // absolute path of redis-server

	mu   sync.Mutex
	proc *childproc.Process // nil until started; exited after Stop or Kill
}

// StartRedis starts a redis-server as described by opts and returns once it
// answers on its port. When redis-server is not installed, the error wraps
// ErrNoRedisServer and names the apt command that installs it. The caller
// stops the server with Stop (or Kill); it also gets SIGTERM when the caller
// dies.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgtest: RedisOptions.Dir is required")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("pgtest: RedisOptions.Port = %d, want 0..65535", opts.Port)
	}
	binary, err := redisServerPath()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgtest: redis dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgtest: redis dir: %w", err)
	}
	r := &Redis{Host: "127.0.0.1", Port: opts.Port, Dir: dir, binary: binary}
	if err := r.start(ctx, opts.Port == 0); err != nil {
		return nil, err
	}
	return r, nil
}

// NewRedis starts a redis-server for a test in a temporary directory, stops
// it in t.Cleanup and fails the test if it cannot start.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	r, err := StartRedis(ctx, RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return r
}

// redisServerPath finds redis-server on PATH.
func redisServerPath() (string, error) {
	p, err := exec.LookPath(redisBinary)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w; %s", ErrNoRedisServer, redisInstallHint)
	}
	return filepath.Abs(p)
}

// Addr returns "127.0.0.1:PORT".
func (r *Redis) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// LogPath returns the file that receives the server's log.
func (r *Redis) LogPath() string { return filepath.Join(r.Dir, redisLogFile) }

// Running reports whether the redis-server process is alive.
func (r *Redis) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc != nil && !r.proc.Exited()
}

// Start starts a stopped or killed server again on the same port, empty,
// and returns once it answers. It returns an error if the server is
// running. A failure includes the tail of the server's log.
func (r *Redis) Start(ctx context.Context) error {
	return r.start(ctx, false)
}

// start launches the server; with newPort it picks a free port first, and
// another one if that port turns out to be taken.
func (r *Redis) start(ctx context.Context, newPort bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.Exited() {
		return fmt.Errorf("start redis on %s: already running", r.Addr())
	}
	for attempt := 1; ; attempt++ {
		if newPort {
			port, err := freePort()
			if err != nil {
				return fmt.Errorf("start redis: %w", err)
			}
			r.Port = port
		}
		err := r.launch(ctx)
		if err == nil {
			return nil
		}
		var exit *redisExitError
		if newPort && errors.As(err, &exit) && exit.portTaken() && attempt < maxPortAttempts && ctx.Err() == nil {
			continue
		}
		return fmt.Errorf("start redis on %s: %w", r.Addr(), err)
	}
}

// launch runs redis-server and waits until it answers; on failure the
// process is gone when it returns.
func (r *Redis) launch(ctx context.Context) error {
	logPath := r.LogPath()
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var logStart int64
	if fi, err := log.Stat(); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(r.binary,
		"--bind", r.Host,
		"--port", strconv.Itoa(r.Port),
		"--dir", r.Dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Dir = r.Dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Redis shuts down at once on SIGTERM (nothing to save).
		Pdeathsig: syscall.SIGTERM,
		// Own process group: a terminal's Ctrl-C goes to the caller only.
		Setpgid: true,
	}
	p, err := childproc.Start(cmd)
	_ = log.Close() // the child has its own descriptor
	if err != nil {
		return err
	}
	r.proc = p
	err = r.waitReady(ctx, p, logStart)
	if err == nil {
		return nil
	}
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
	return fmt.Errorf("%w\n--- %s ---\n%s", err, logPath, tail(readFrom(logPath, logStart)))
}

// waitReady polls until the server answers as process p, p exits, or ctx
// ends. Checking the pid matters: another server may hold the port. logStart
// is the log's size before this start.
func (r *Redis) waitReady(ctx context.Context, p *childproc.Process, logStart int64) error {
	var lastErr error
	for {
		pid, err := redisPid(ctx, r.Addr())
		if err == nil && pid == p.Pid() {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s is answered by process %d, not %d", r.Addr(), pid, p.Pid())
		}
		lastErr = err
		select {
		case <-p.Done():
			return &redisExitError{err: p.Err(), log: string(readFrom(r.LogPath(), logStart))}
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(readyPollInterval):
		}
	}
}

// redisPid asks the server at addr for its process id (INFO server) on a
// fresh connection.
func redisPid(ctx context.Context, addr string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return 0, err
		}
	}
	if _, err := conn.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	br := bufio.NewReader(conn)
	header, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	header = strings.TrimRight(header, "\r\n")
	size, err := strconv.Atoi(strings.TrimPrefix(header, "$"))
	if !strings.HasPrefix(header, "$") || err != nil || size < 0 {
		// An error reply (-LOADING, -NOAUTH, ...) or garbage.
		return 0, fmt.Errorf("INFO server answered %q", header)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// Stop shuts the server down (SIGTERM) and waits for it to exit. When ctx
// ends first, it SIGKILLs it and returns ctx's error. Stopping a stopped
// server does nothing.
func (r *Redis) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil || r.proc.Exited() {
		return nil
	}
	if err := r.proc.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop redis on %s: %w", r.Addr(), err)
	}
	select {
	case <-r.proc.Done():
		return nil
	case <-ctx.Done():
		_ = r.proc.Signal(syscall.SIGKILL)
		<-r.proc.Done()
		return fmt.Errorf("stop redis on %s: %w", r.Addr(), ctx.Err())
	}
}

// Kill sends SIGKILL to the server, as in a crash, and waits for it to exit.
// Its clients see their connections reset and new ones refused.
func (r *Redis) Kill() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil || r.proc.Exited() {
		return nil
	}
	if err := r.proc.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill redis on %s: %w", r.Addr(), err)
	}
	<-r.proc.Done()
	return nil
}

// redisExitError reports a redis-server that exited before it was ready.
type redisExitError struct {
	err error  // from Wait
	log string // the server's log from this start on
}

func (e *redisExitError) Error() string {
	return fmt.Sprintf("redis-server exited during startup: %v", e.err)
}

func (e *redisExitError) Unwrap() error { return e.err }

// portTaken reports whether the server could not bind its port.
func (e *redisExitError) portTaken() bool {
	return strings.Contains(e.log, "Address already in use")
}
