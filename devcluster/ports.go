package devcluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// portAttempts bounds the search for a port that is free for both TCP and UDP.
const portAttempts = 50

// portSet hands out loopback ports without giving the same one twice. It is not safe for
// concurrent use; Start uses one per cluster.
type portSet struct {
	taken map[int]bool
}

func newPortSet() *portSet { return &portSet{taken: map[int]bool{}} }

// tcp returns want when it is non-zero and free for TCP on loopback, else (want == 0) a
// free TCP port. The port is closed again before tcp returns, so a process started next may
// bind it; another process could take it first, which the caller then sees as a bind error.
func (s *portSet) tcp(want int) (int, error) {
	for range portAttempts {
		ln, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(want)))
		if err != nil {
			return 0, fmt.Errorf("tcp port %d: %w", want, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if want != 0 {
			if s.taken[port] {
				return 0, fmt.Errorf("tcp port %d is handed out twice", port)
			}
			s.taken[port] = true
			return port, nil
		}
		if !s.taken[port] {
			s.taken[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free tcp port")
}

// gossip returns want when it is non-zero and free for both TCP and UDP on loopback, else
// (want == 0) a port free for both: memberlist binds the same port number for each.
func (s *portSet) gossip(want int) (int, error) {
	for range portAttempts {
		port, err := bindBoth(want)
		if err != nil {
			if want != 0 || !errors.Is(err, syscall.EADDRINUSE) {
				return 0, fmt.Errorf("gossip port %d: %w", want, err)
			}
			continue // the UDP side of a free TCP port was taken: try another
		}
		if s.taken[port] {
			if want != 0 {
				return 0, fmt.Errorf("gossip port %d is handed out twice", port)
			}
			continue
		}
		s.taken[port] = true
		return port, nil
	}
	return 0, errors.New("no port free for both tcp and udp")
}

// bindBoth binds port (0: any) for TCP, then the same port number for UDP, releases both
// and returns the port.
func bindBoth(port int) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp", net.JoinHostPort(loopback, strconv.Itoa(got)))
	if err != nil {
		return 0, err
	}
	_ = pc.Close()
	return got, nil
}
