package health

import "time"

// Config configures a Checker. Zero durations take their defaults (DefaultConfig).
type Config struct {
	// Region is this proxy's region; ReadTargets lists replicas of this region first. With an
	// empty Region, replicas of groups without a region count as local.
	Region string
	// Interval between two checks of an endpoint. Default 250ms.
	Interval time.Duration
	// MaxReplicaLag is the most a replica may lag and still be a read target. Default 1s.
	MaxReplicaLag time.Duration
	// BanTime is how long Ban removes an endpoint from ReadTargets the first time; each
	// further consecutive ban doubles it, up to MaxBanTime. Defaults 1s and 30s; a MaxBanTime
	// below BanTime is raised to BanTime.
	BanTime, MaxBanTime time.Duration
	// ConnectTimeout bounds opening a check connection. Default 2s.
	ConnectTimeout time.Duration
	// CheckTimeout bounds one check's query round trip (not the connect). An endpoint that
	// does not answer within it is down. Default max(Interval, 1s).
	CheckTimeout time.Duration
	// User, Password and Database log the checks in (any role may run them; no superuser
	// needed). Database defaults to "postgres".
	User, Password, Database string
}

// DefaultConfig returns a Config with every default filled in and no credentials.
func DefaultConfig() Config {
	return Config{
		Interval:       250 * time.Millisecond,
		MaxReplicaLag:  time.Second,
		BanTime:        time.Second,
		MaxBanTime:     30 * time.Second,
		ConnectTimeout: 2 * time.Second,
		CheckTimeout:   time.Second,
		Database:       "postgres",
	}
}

// withDefaults returns cfg with zero or inconsistent values replaced by defaults.
func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = d.Interval
	}
	if cfg.MaxReplicaLag <= 0 {
		cfg.MaxReplicaLag = d.MaxReplicaLag
	}
	if cfg.BanTime <= 0 {
		cfg.BanTime = d.BanTime
	}
	if cfg.MaxBanTime <= 0 {
		cfg.MaxBanTime = d.MaxBanTime
	}
	if cfg.MaxBanTime < cfg.BanTime {
		cfg.MaxBanTime = cfg.BanTime
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = d.ConnectTimeout
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = max(cfg.Interval, time.Second)
	}
	if cfg.Database == "" {
		cfg.Database = d.Database
	}
	return cfg
}

// sampleCapacity is how many writer LSN samples a group keeps: enough to span four times
// MaxReplicaLag, within sane bounds.
func (cfg Config) sampleCapacity() int {
	n := int(4*cfg.MaxReplicaLag/cfg.Interval) + 1
	return min(max(n, 16), 1024)
}
