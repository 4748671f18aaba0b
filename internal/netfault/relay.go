package netfault

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Relay accepts TCP connections on a loopback port and pipes each to a target address. Cut
// closes every piped connection and makes new ones close at once; Restore pipes again.
type Relay struct {
	ln     net.Listener
	target func() string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewRelay listens on 127.0.0.1 (a free port) and pipes every connection to target(), which
// is called per connection (so a relay can spread connections over several servers).
func NewRelay(target func() string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &Relay{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's address, host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.cut {
			r.mu.Unlock()
			_ = c.Close()
			continue
		}
		r.conns[c] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.pipe(c)
	}
}

func (r *Relay) pipe(c net.Conn) {
	defer r.wg.Done()
	defer r.forget(c)
	up, err := net.Dial("tcp", r.target())
	if err != nil {
		return
	}
	r.mu.Lock()
	if r.cut {
		r.mu.Unlock()
		_ = up.Close()
		return
	}
	r.conns[up] = struct{}{}
	r.mu.Unlock()
	defer r.forget(up)
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		done <- struct{}{}
	}
	go copyHalf(up, c)
	go copyHalf(c, up)
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
}

func (r *Relay) forget(c net.Conn) {
	_ = c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// Cut drops every open connection and closes new ones as soon as they arrive.
func (r *Relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = true
	for c := range r.conns {
		_ = c.Close()
	}
}

// Restore pipes new connections again.
func (r *Relay) Restore() {
	r.mu.Lock()
	r.cut = false
	r.mu.Unlock()
}

// Close stops the relay and every connection.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.Cut()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
