package devcluster

import (
	"net"
	"strconv"
	"testing"
)

func TestPortSetGossipPortsAreFreeAndDistinct(t *testing.T) {
	ps := newPortSet()
	seen := map[int]bool{}
	for range 5 {
		p, err := ps.gossip(0)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		// Both sides must be bindable by the node that gets the port.
		ln, err := net.Listen("tcp", hostPort(p))
		if err != nil {
			t.Fatalf("tcp %d: %v", p, err)
		}
		pc, err := net.ListenPacket("udp", hostPort(p))
		ln.Close()
		if err != nil {
			t.Fatalf("udp %d: %v", p, err)
		}
		pc.Close()
	}
	q, err := ps.tcp(0)
	if err != nil || seen[q] {
		t.Fatalf("tcp(0) = %d, %v; want a port not handed out yet", q, err)
	}
}

func TestPortSetRefusesBusyPorts(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	udpBusy := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcpBusy := ln.Addr().(*net.TCPAddr).Port

	ps := newPortSet()
	if _, err := ps.gossip(udpBusy); err == nil {
		t.Errorf("gossip(%d) with its UDP side taken succeeded", udpBusy)
	}
	if _, err := ps.gossip(tcpBusy); err == nil {
		t.Errorf("gossip(%d) with its TCP side taken succeeded", tcpBusy)
	}
	if _, err := ps.tcp(tcpBusy); err == nil {
		t.Errorf("tcp(%d) in use succeeded", tcpBusy)
	}
	free, err := ps.tcp(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.tcp(free); err == nil {
		t.Errorf("tcp(%s) handed out twice", strconv.Itoa(free))
	}
}
