package pool

import (
	"bufio"
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/proxy/wire"
)

// Conn is one backend connection. Its fields other than the identity ones may be used only by
// the session that has it checked out.
type Conn struct {
	// R reads the server's frames; W buffers frames to it.
	R *wire.Reader
	W *bufio.Writer

	netConn   net.Conn
	addr      string
	pid       uint32
	secretKey []byte
	params    map[string]string

	// Settings is the session state currently applied on this connection, as the session
	// layer represents it (an immutable value replaced as a whole). Nil means startup defaults.
	Settings any

	// UnnamedOwner and UnnamedGen identify whose unnamed statement the backend holds, so a
	// session can tell whether its unnamed Parse must be sent again.
	UnnamedOwner any
	UnnamedGen   uint64

	prepared *Prepared

	createdAt time.Time
	idleSince time.Time
	broken    bool
}

// PID returns the backend process id.
func (c *Conn) PID() uint32 { return c.pid }

// Addr returns the endpoint address.
func (c *Conn) Addr() string { return c.addr }

// Params returns the ParameterStatus values the server sent at startup.
func (c *Conn) Params() map[string]string { return c.params }

// Prepared returns the connection's prepared-statement set.
func (c *Conn) Prepared() *Prepared { return c.prepared }

// MarkBroken records that the connection must not be reused.
func (c *Conn) MarkBroken() { c.broken = true }

// Broken reports whether MarkBroken was called.
func (c *Conn) Broken() bool { return c.broken }

// SetDeadline sets the network deadline on the connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.netConn.SetDeadline(t) }

// Close closes the network connection after a best-effort Terminate.
func (c *Conn) Close() error {
	_ = c.netConn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.netConn.Write([]byte{wire.Terminate, 0, 0, 0, 4})
	return c.netConn.Close()
}

// Cancel sends a CancelRequest for this connection's backend over a new connection and waits
// until the server has taken it.
func (c *Conn) Cancel(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("cancel: dial %s: %w", c.addr, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	msg, err := (&pgproto3.CancelRequest{ProcessID: c.pid, SecretKey: c.secretKey}).Encode(nil)
	if err != nil {
		return fmt.Errorf("cancel: encode: %w", err)
	}
	if _, err := nc.Write(msg); err != nil {
		return fmt.Errorf("cancel: write: %w", err)
	}
	// The server closes the connection once it has processed the request.
	var one [1]byte
	_, _ = nc.Read(one[:])
	return nil
}

// alive reports whether an idle connection still looks usable: a non-blocking peek at the
// socket finds nothing. A closed connection (EOF) or one with unsolicited data (a FATAL sent
// before a termination) is not. (A read with an expired deadline would not do: Go fails it
// without looking at the socket.)
func (c *Conn) alive() bool {
	if c.R.Buffered() > 0 {
		return false
	}
	sc, ok := c.netConn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	usable := true
	var one [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		case rerr != nil, n >= 0:
			usable = false // error, EOF (n == 0) or unexpected data (n > 0)
		}
		return true // never wait for readiness
	})
	return usable && err == nil
}

// dial opens and hijacks one backend connection.
func dial(ctx context.Context, cfg *Config) (*Conn, error) {
	pc, err := pgconn.ConnectConfig(ctx, cfg.connConfig)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	// pgconn may still have its background reader on the socket; it must be stopped with the
	// read buffer empty before the proxy takes the raw connection, or it steals replies.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("sync connection to %s: %w", cfg.Addr, err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("hijack connection to %s: %w", cfg.Addr, err)
	}
	now := time.Now()
	return &Conn{
		R:         wire.NewReader(hj.Conn, readBufferSize, maxServerMessage),
		W:         bufio.NewWriterSize(hj.Conn, writeBufferSize),
		netConn:   hj.Conn,
		addr:      cfg.Addr,
		pid:       hj.PID,
		secretKey: hj.SecretKey,
		params:    hj.ParameterStatuses,
		prepared:  newPrepared(cfg.MaxPrepared),
		createdAt: now,
		idleSince: now,
	}, nil
}

const (
	readBufferSize   = 16 << 10
	writeBufferSize  = 8 << 10
	maxServerMessage = 1 << 30
)

// Prepared is the bounded LRU of statement names prepared on one connection.
type Prepared struct {
	max   int
	order *list.List // of string, most recent first
	index map[string]*list.Element
}

func newPrepared(max int) *Prepared {
	return &Prepared{max: max, order: list.New(), index: make(map[string]*list.Element)}
}

// Has reports whether name is prepared and marks it recently used.
func (p *Prepared) Has(name string) bool {
	e, ok := p.index[name]
	if ok {
		p.order.MoveToFront(e)
	}
	return ok
}

// Add records name as prepared. When the set is over its bound it returns the least recently
// used name, which the caller must Close on the server.
func (p *Prepared) Add(name string) (evicted string, ok bool) {
	if e, found := p.index[name]; found {
		p.order.MoveToFront(e)
		return "", false
	}
	p.index[name] = p.order.PushFront(name)
	if p.max > 0 && p.order.Len() > p.max {
		last := p.order.Back()
		p.order.Remove(last)
		victim := last.Value.(string)
		delete(p.index, victim)
		return victim, true
	}
	return "", false
}

// Remove forgets name.
func (p *Prepared) Remove(name string) {
	if e, ok := p.index[name]; ok {
		p.order.Remove(e)
		delete(p.index, name)
	}
}

// Clear forgets every name (after DISCARD ALL or DEALLOCATE ALL on the server).
func (p *Prepared) Clear() {
	p.order.Init()
	clear(p.index)
}

// Len returns the number of prepared names.
func (p *Prepared) Len() int { return p.order.Len() }
