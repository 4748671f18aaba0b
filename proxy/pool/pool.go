package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// ErrWaitTimeout is returned by Acquire when no connection became free in time.
var ErrWaitTimeout = errors.New("no server connection became available in time")

// ErrClosed is returned by Acquire on a closed pool.
var ErrClosed = errors.New("pool is closed")

// Config describes one pool.
type Config struct {
	// Addr is the endpoint, host:port.
	Addr string
	// Database, User and Password log in to the backend.
	Database string
	User     string
	Password string
	// Size is the number of connections the pool may open; ReserveSize more may open for a
	// client that waited ReserveTimeout.
	Size           int
	ReserveSize    int
	ReserveTimeout time.Duration
	// MinSize connections are kept open.
	MinSize int
	// IdleTimeout closes connections idle for longer (above MinSize); 0 never.
	IdleTimeout time.Duration
	// Lifetime closes connections older than this at release; 0 never.
	Lifetime time.Duration
	// ConnectTimeout bounds opening one connection.
	ConnectTimeout time.Duration
	// MaxPrepared bounds each connection's prepared statements.
	MaxPrepared int
	// ApplicationName is sent at startup.
	ApplicationName string

	connConfig *pgconn.Config
}

// Stats is a snapshot of a pool's state.
type Stats struct {
	Addr, Database, User string
	Size, Reserve        int
	Active, Idle         int // connections checked out / idle
	Opening              int // connections being opened
	Waiting              int // sessions waiting for a connection
	Opened, Closed       uint64
	WaitTimeouts         uint64
}

// Pool holds the connections of one (endpoint, database, user).
type Pool struct {
	log *zap.Logger

	mu      sync.Mutex
	cfg     Config
	idle    []*Conn // most recently used last
	active  int
	opening int
	waiters []*waiter
	closed  bool
	stats   Stats

	stop chan struct{}
	done chan struct{}
}

type waiter struct {
	ch      chan *Conn // receives a connection, or nil when the waiter may open one
	granted bool
}

// New creates a pool and starts its maintenance loop. It opens no connection yet.
func New(cfg Config, log *zap.Logger) (*Pool, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("pool endpoint %q: %w", cfg.Addr, err)
	}
	// Every connection parameter is set here: nothing may come from the libpq environment
	// (PGHOST, PGSSLMODE, ...) of the proxy's process.
	cc, err := pgconn.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("pool config: %w", err)
	}
	cc.TLSConfig = nil
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("pool endpoint %q: bad port: %w", cfg.Addr, err)
	}
	cc.Host, cc.Port = host, uint16(p)
	cc.Fallbacks = nil
	cc.Database, cc.User, cc.Password = cfg.Database, cfg.User, cfg.Password
	cc.ConnectTimeout = cfg.ConnectTimeout
	cc.RuntimeParams = map[string]string{}
	if cfg.ApplicationName != "" {
		cc.RuntimeParams["application_name"] = cfg.ApplicationName
	}
	cfg.connConfig = cc
	pl := &Pool{
		log:  log.With(zap.String("endpoint", cfg.Addr), zap.String("database", cfg.Database), zap.String("user", cfg.User)),
		cfg:  cfg,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	pl.stats.Addr, pl.stats.Database, pl.stats.User = cfg.Addr, cfg.Database, cfg.User
	go pl.maintain()
	return pl, nil
}

// TryAcquire checks out an idle connection if there is one, without waiting or dialing.
func (p *Pool) TryAcquire() *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	return p.popIdleLocked()
}

// Acquire checks out a connection, waiting until ctx is done. A wait that ends by ctx's
// deadline returns ErrWaitTimeout; a failed connect returns the connect error.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if c := p.popIdleLocked(); c != nil {
		p.mu.Unlock()
		return c, nil
	}
	if p.active+len(p.idle)+p.opening < p.cfg.Size {
		p.opening++
		p.mu.Unlock()
		return p.open(ctx)
	}
	w := &waiter{ch: make(chan *Conn, 1)}
	p.waiters = append(p.waiters, w)
	reserveSize, reserveTimeout := p.cfg.ReserveSize, p.cfg.ReserveTimeout
	p.mu.Unlock()

	var reserve <-chan time.Time
	if reserveSize > 0 {
		t := time.NewTimer(reserveTimeout)
		defer t.Stop()
		reserve = t.C
	}
	for {
		select {
		case c, ok := <-w.ch:
			if !ok {
				return nil, ErrClosed
			}
			if c == nil { // a slot freed up: open a connection in it
				return p.open(ctx)
			}
			return c, nil
		case <-reserve:
			p.mu.Lock()
			if !w.granted && p.active+len(p.idle)+p.opening < p.cfg.Size+p.cfg.ReserveSize {
				p.removeWaiterLocked(w)
				p.opening++
				p.mu.Unlock()
				p.log.Info("opening reserve connection")
				return p.open(ctx)
			}
			p.mu.Unlock()
		case <-ctx.Done():
			p.mu.Lock()
			if w.granted {
				p.mu.Unlock()
				c, ok := <-w.ch
				switch {
				case !ok:
					return nil, ErrClosed
				case c != nil:
					return c, nil
				}
				return p.open(ctx)
			}
			p.removeWaiterLocked(w)
			p.stats.WaitTimeouts++
			p.mu.Unlock()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, ErrWaitTimeout
			}
			return nil, ctx.Err()
		}
	}
}

// open dials a connection in a slot already counted in p.opening.
func (p *Pool) open(ctx context.Context) (*Conn, error) {
	p.mu.Lock()
	cfg := p.cfg
	p.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	c, err := dial(dctx, &cfg)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opening--
	if err != nil {
		p.grantSlotLocked()
		return nil, err
	}
	p.stats.Opened++
	p.active++
	return c, nil
}

// Release returns a clean connection (idle, not in a transaction) to the pool.
func (p *Pool) Release(c *Conn) {
	if c.broken || (p.cfg.Lifetime > 0 && time.Since(c.createdAt) > p.cfg.Lifetime) {
		p.Discard(c)
		return
	}
	p.mu.Lock()
	// Over the base size (reserve connections, or after a shrinking reload) and nobody
	// waiting: close it rather than keep it idle.
	over := p.active+len(p.idle)+p.opening > p.cfg.Size && len(p.waiters) == 0
	if p.closed || over || p.active+len(p.idle)+p.opening > p.cfg.Size+p.cfg.ReserveSize {
		p.active--
		p.stats.Closed++
		p.grantSlotLocked()
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	for len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.granted = true
		w.ch <- c
		p.mu.Unlock()
		return
	}
	p.active--
	c.idleSince = time.Now()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// Discard closes a connection that must not be reused and frees its slot.
func (p *Pool) Discard(c *Conn) {
	p.mu.Lock()
	p.active--
	p.stats.Closed++
	p.grantSlotLocked()
	p.mu.Unlock()
	_ = c.Close()
}

// grantSlotLocked lets the first waiter open a connection in a slot that just freed up.
func (p *Pool) grantSlotLocked() {
	if len(p.waiters) == 0 || p.closed {
		return
	}
	if p.active+len(p.idle)+p.opening >= p.cfg.Size {
		return
	}
	w := p.waiters[0]
	p.waiters = p.waiters[1:]
	w.granted = true
	p.opening++
	w.ch <- nil
}

func (p *Pool) popIdleLocked() *Conn {
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(c.idleSince) > time.Second && !c.alive() {
			p.stats.Closed++
			go c.Close()
			continue
		}
		p.active++
		return c
	}
	return nil
}

func (p *Pool) removeWaiterLocked(w *waiter) {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return
		}
	}
}

// Resize changes the pool's size limits (configuration reload). Extra connections close as
// they are released or go idle.
func (p *Pool) Resize(size, reserve, minSize int) {
	p.mu.Lock()
	p.cfg.Size, p.cfg.ReserveSize, p.cfg.MinSize = size, reserve, minSize
	for p.active+len(p.idle)+p.opening < size && len(p.waiters) > 0 {
		p.grantSlotLocked()
	}
	p.mu.Unlock()
}

// Stats returns a snapshot.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Size, s.Reserve = p.cfg.Size, p.cfg.ReserveSize
	s.Active, s.Idle, s.Opening, s.Waiting = p.active, len(p.idle), p.opening, len(p.waiters)
	return s
}

// Close closes idle connections, fails waiters and stops maintenance. Checked-out connections
// close when released.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	for _, w := range p.waiters {
		close(w.ch)
	}
	p.waiters = nil
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	for _, c := range idle {
		_ = c.Close()
	}
}

// maintain closes idle and old connections and keeps MinSize open.
func (p *Pool) maintain() {
	defer close(p.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		var victims []*Conn
		keep := p.idle[:0]
		total := p.active + len(p.idle) + p.opening
		for _, c := range p.idle {
			expired := (p.cfg.IdleTimeout > 0 && time.Since(c.idleSince) > p.cfg.IdleTimeout && total > p.cfg.MinSize) ||
				(p.cfg.Lifetime > 0 && time.Since(c.createdAt) > p.cfg.Lifetime)
			if expired {
				victims = append(victims, c)
				total--
				continue
			}
			keep = append(keep, c)
		}
		p.idle = keep
		p.stats.Closed += uint64(len(victims))
		missing := p.cfg.MinSize - total
		p.opening += max(missing, 0)
		p.mu.Unlock()
		for _, c := range victims {
			_ = c.Close()
		}
		for range max(missing, 0) {
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ConnectTimeout)
			c, err := p.open(ctx)
			cancel()
			if err != nil {
				p.log.Warn("min_pool_size: cannot open server connection", zap.Error(err))
				continue
			}
			p.Release(c)
		}
	}
}
