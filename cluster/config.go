package cluster

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Profile names accepted in Config.Profile.
const (
	ProfileLAN   = "lan"
	ProfileWAN   = "wan"
	ProfileLocal = "local"
)

// Config configures a Cluster. Start from DefaultConfig and override fields.
type Config struct {
	// NodeName is the unique name of this node in the cluster.
	// Default: the host name.
	NodeName string

	// BindAddr and BindPort are where the gossip listeners (UDP and TCP) bind.
	// BindPort 0 picks a free port (the same one for UDP and TCP).
	// Default: 0.0.0.0:7946.
	BindAddr string
	BindPort int

	// AdvertiseAddr and AdvertisePort are the address other nodes use to reach
	// this one. Empty/0 means derived from the bind address and bound port.
	AdvertiseAddr string
	AdvertisePort int

	// Seeds are host:port addresses of existing members that Join contacts.
	Seeds []string

	// JoinDNS is a DNS name whose A/AAAA records (resolved with
	// net.DefaultResolver at Join time) are added to the seeds, each with port
	// JoinDNSPort. Empty disables DNS discovery.
	JoinDNS string

	// JoinDNSPort is the gossip port used with addresses resolved from JoinDNS.
	// 0 means this node's own gossip port (a homogeneous deployment).
	JoinDNSPort int

	// SecretKey enables gossip encryption (AES-GCM) when set; it must be 16, 24
	// or 32 bytes. Nodes with different keys cannot join each other.
	// Default: empty (no encryption).
	SecretKey []byte

	// Profile selects memberlist's base timing: "lan" (default), "wan" or
	// "local".
	Profile string

	// DeadTimeout is roughly how long a silent node takes to be declared dead.
	// When > 0 it overrides the profile's probe, suspicion and gossip timings
	// (see tune); 0 keeps the profile's values (several seconds on "lan").
	// The bound is approximate: probing is round robin, so detection time
	// also grows with cluster size.
	DeadTimeout time.Duration

	// ForgetAfter is how long a dead or departed member stays listed in
	// Members before it is forgotten. Default: 10 minutes.
	ForgetAfter time.Duration

	// EventBuffer is the capacity of the channels between memberlist's
	// delegates and this package's goroutines. Default: 1024.
	EventBuffer int

	// Logger receives this package's logs and memberlist's own log lines
	// (DEBUG/INFO at debug level, WARN/ERR at warn level). Default: zap.NewNop.
	Logger *zap.Logger

	// Registerer receives the package's metrics. nil means the metrics are
	// kept but not registered anywhere.
	Registerer prometheus.Registerer

	// Transport replaces memberlist's UDP/TCP transport on BindAddr:BindPort (nil: the
	// default). Tests use it to cut a node's gossip traffic.
	Transport memberlist.Transport

	// Meta returns the metadata this node publishes. It is called by New and by
	// UpdateMeta, never from the gossip loop. nil publishes NodeMeta{Name:
	// NodeName}. An empty Name is filled in with NodeName.
	Meta func() NodeMeta
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:    host,
		BindAddr:    "0.0.0.0",
		BindPort:    7946,
		Profile:     ProfileLAN,
		ForgetAfter: 10 * time.Minute,
		EventBuffer: 1024,
		Logger:      zap.NewNop(),
	}
}

// withDefaults fills zero fields that have a default.
func (c Config) withDefaults() Config {
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = 10 * time.Minute
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 1024
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

func (c Config) validate() error {
	if c.NodeName == "" {
		return fmt.Errorf("cluster: config: NodeName is empty and the host name is unknown")
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("cluster: config: SecretKey must be 16, 24 or 32 bytes, got %d", len(c.SecretKey))
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return fmt.Errorf("cluster: config: port out of range")
	}
	if c.DeadTimeout < 0 {
		return fmt.Errorf("cluster: config: DeadTimeout is negative")
	}
	return nil
}

// baseConfig returns the memberlist profile named by p.
func baseConfig(p string) (*memberlist.Config, error) {
	switch p {
	case ProfileLAN:
		return memberlist.DefaultLANConfig(), nil
	case ProfileWAN:
		return memberlist.DefaultWANConfig(), nil
	case ProfileLocal:
		return memberlist.DefaultLocalConfig(), nil
	default:
		return nil, fmt.Errorf("cluster: config: unknown Profile %q (want lan, wan or local)", p)
	}
}

// tune derives memberlist's failure-detector timings from dead, the wanted
// time until a silent node is declared dead. In a small cluster detection
// takes about one probe round (ProbeInterval per other member), a probe
// timeout and a suspicion timeout of SuspicionMult*ProbeInterval.
func tune(mc *memberlist.Config, dead time.Duration) {
	if dead <= 0 {
		return
	}
	probe := dead / 8
	if probe < 20*time.Millisecond {
		probe = 20 * time.Millisecond
	}
	mc.ProbeInterval = probe
	mc.ProbeTimeout = probe / 2
	mc.SuspicionMult = 4
	// In large clusters suspicion starts at SuspicionMaxTimeoutMult times the
	// minimum and shrinks with independent confirmations.
	mc.SuspicionMaxTimeoutMult = 2
	gossip := probe / 4
	if gossip < 10*time.Millisecond {
		gossip = 10 * time.Millisecond
	}
	if gossip < mc.GossipInterval {
		mc.GossipInterval = gossip
	}
	if mc.PushPullInterval > 4*dead {
		mc.PushPullInterval = 4 * dead
	}
	mc.GossipToTheDeadTime = 2 * dead
	if mc.TCPTimeout > dead {
		mc.TCPTimeout = dead
	}
}
