package cluster

import (
	"net"
	"strconv"
	"time"
)

// MemberState is a member's state as this node last learned it.
type MemberState int

// Member states. A suspected node stays StateAlive until declared dead (see
// the package doc).
const (
	StateAlive MemberState = iota
	StateDead
	StateLeft
)

// String returns "alive", "dead" or "left".
func (s MemberState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	default:
		return "unknown"
	}
}

// EventKind says what changed about a member.
type EventKind int

// Event kinds passed to OnChange callbacks.
const (
	// EventJoin: a member became alive (first seen, or back after dead/left).
	EventJoin EventKind = iota
	// EventUpdate: an alive member changed its metadata or address.
	EventUpdate
	// EventDead: a member was declared dead by the failure detector.
	EventDead
	// EventLeft: a member left gracefully.
	EventLeft
)

// String returns "join", "update", "dead" or "left".
func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventDead:
		return "dead"
	case EventLeft:
		return "left"
	default:
		return "unknown"
	}
}

// Member is a snapshot of one cluster member.
type Member struct {
	Name string
	// Addr is the member's gossip address, host:port.
	Addr  string
	State MemberState
	// Meta is the member's last published metadata; zero if it could not be
	// decoded (MetaErr says why).
	Meta    NodeMeta
	MetaErr error
	// Since is when this node observed the latest state change.
	Since time.Time

	ip   net.IP
	port uint16
}

func hostPort(ip net.IP, port uint16) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}
