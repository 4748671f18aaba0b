package netfault

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrBlocked is what a blocked transport's dials return.
var ErrBlocked = errors.New("netfault: gossip traffic blocked")

// Transport is a memberlist transport on loopback whose traffic Block drops in both
// directions: packets sent and received vanish, dials fail and inbound streams are closed.
type Transport struct {
	inner   *memberlist.NetTransport
	blocked atomic.Bool

	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// NewTransport binds a UDP and TCP gossip port on 127.0.0.1 (a free port).
func NewTransport() (*Transport, error) {
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		return nil, err
	}
	t := &Transport{inner: inner, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), stop: make(chan struct{})}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t, nil
}

// Block drops all traffic from now on; Unblock lets it through again.
func (t *Transport) Block()   { t.blocked.Store(true) }
func (t *Transport) Unblock() { t.blocked.Store(false) }

func (t *Transport) forwardPackets() {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		case p := <-t.inner.PacketCh():
			if t.blocked.Load() {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.stop:
				return
			}
		}
	}
}

func (t *Transport) forwardStreams() {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		case c := <-t.inner.StreamCh():
			if t.blocked.Load() {
				_ = c.Close()
				continue
			}
			select {
			case t.streams <- c:
			case <-t.stop:
				_ = c.Close()
				return
			}
		}
	}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport; a blocked transport drops the packet.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.blocked.Load() {
		return time.Now(), nil
	}
	return t.inner.WriteTo(b, addr)
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport; a blocked transport fails.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.blocked.Load() {
		return nil, ErrBlocked
	}
	return t.inner.DialTimeout(addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport.
func (t *Transport) Shutdown() error {
	t.once.Do(func() { close(t.stop) })
	err := t.inner.Shutdown()
	t.wg.Wait()
	return err
}
