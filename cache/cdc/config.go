package cdc

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cache"
)

// Defaults of Config.
const (
	// DefaultPublicationName is the publication a feed creates and streams when
	// Config.PublicationName is empty. Publications belong to one database, so every
	// database can use the same name.
	DefaultPublicationName = "shardwire_cache"
	// DefaultRetry is the pause between attempts when Config.Retry is zero.
	DefaultRetry = time.Second
	// DefaultPublicationSync is how often the publication follows the tables by default.
	DefaultPublicationSync = time.Second
	// slotPrefix starts every default slot name; slots are named per instance, not per
	// database, so the default adds the database (see DefaultSlotName).
	slotPrefix = "shardwire_cache"
	// maxNameLen is the longest identifier Postgres keeps (NAMEDATALEN - 1).
	maxNameLen = 63
)

// Config configures one feed: one backend database on one shard group's writer.
//
// The functions are called from the feed's goroutine only, never concurrently with each
// other by the same feed; several feeds of a node may share them, so they must be safe for
// concurrent use across feeds.
type Config struct {
	Group    string // shard group name (passed to Bump)
	Database string // backend database name (Touch.DB)

	// Connect opens a normal connection to the group's CURRENT writer, to Database, as a
	// role that may create a publication FOR ALL TABLES (a superuser). It is called again
	// after every failure, as the writer may have changed. The feed closes what it opens.
	Connect func(ctx context.Context) (*pgconn.PgConn, error)
	// ConnectReplication does the same with the runtime parameter replication=database,
	// as a role with the REPLICATION attribute.
	ConnectReplication func(ctx context.Context) (*pgconn.PgConn, error)

	// KeyColumn returns the shard-key column of a sharded table (lower-case name, no
	// schema); ok is false for an unsharded table. Cacheable says whether a table is
	// cached at all; changes to other tables are ignored. Both are asked again in every
	// transaction, so a reloaded configuration takes effect at once.
	KeyColumn func(table string) (col string, ok bool)
	Cacheable func(table string) bool

	// Bump is cache.(*Cache).Bump bound by the caller. It is retried (every Retry) until it
	// succeeds or ctx ends; touches must not be kept after it returns.
	Bump func(ctx context.Context, group string, lsn uint64, touches []cache.Touch) error

	// SlotName is the logical replication slot; "" means DefaultSlotName(Database). Slot
	// names are global to a Postgres instance, so feeds of different databases on one
	// writer need different ones. PublicationName "" means DefaultPublicationName. Both
	// may hold only lower-case letters, digits and underscores.
	SlotName, PublicationName string

	Log     *zap.Logger   // nil: no logs
	Metrics *Metrics      // shared by every feed of the node (NewMetrics once); nil: unregistered
	Retry   time.Duration // pause between attempts; 0: DefaultRetry
	// PublicationSync is how often the leader brings the publication's tables in line with
	// the cacheable tables that exist; 0: DefaultPublicationSync.
	PublicationSync time.Duration
}

// DefaultSlotName returns the slot a feed of database uses when Config.SlotName is empty:
// "shardwire_cache_" followed by the database name, with characters a slot name cannot hold
// replaced, and a hash of the name appended when anything had to be replaced or cut, so
// that distinct databases get distinct slots.
func DefaultSlotName(database string) string {
	var b strings.Builder
	changed := false
	for _, r := range database {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r - 'A' + 'a')
			changed = true
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	name := slotPrefix + "_" + b.String()
	const hashLen = 9 // "_" and 8 hex digits
	if len(name) > maxNameLen {
		name = name[:maxNameLen-hashLen]
		changed = true
	}
	if changed {
		h := fnv.New32a()
		h.Write([]byte(database))
		name = fmt.Sprintf("%s_%08x", name, h.Sum32())
	}
	return name
}

// withDefaults returns cfg with defaults filled in, or an error naming what is invalid.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.Group == "" {
		errs = append(errs, errors.New("Group is empty"))
	}
	if cfg.Database == "" {
		errs = append(errs, errors.New("Database is empty"))
	}
	if cfg.Connect == nil || cfg.ConnectReplication == nil {
		errs = append(errs, errors.New("Connect and ConnectReplication are required"))
	}
	if cfg.KeyColumn == nil || cfg.Cacheable == nil {
		errs = append(errs, errors.New("KeyColumn and Cacheable are required"))
	}
	if cfg.Bump == nil {
		errs = append(errs, errors.New("Bump is required"))
	}
	if cfg.Retry < 0 {
		errs = append(errs, fmt.Errorf("Retry = %v, want >= 0", cfg.Retry))
	}
	if cfg.SlotName == "" {
		cfg.SlotName = DefaultSlotName(cfg.Database)
	}
	if cfg.PublicationName == "" {
		cfg.PublicationName = DefaultPublicationName
	}
	for _, n := range []struct{ field, value string }{
		{"SlotName", cfg.SlotName}, {"PublicationName", cfg.PublicationName},
	} {
		if !validName(n.value) {
			errs = append(errs, fmt.Errorf("%s %q: want 1 to %d lower-case letters, digits or underscores",
				n.field, n.value, maxNameLen))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("cdc: invalid config: %w", err)
	}
	if cfg.Retry == 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.PublicationSync == 0 {
		cfg.PublicationSync = DefaultPublicationSync
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return cfg, nil
}

// validName reports whether s can be used unquoted as a slot or publication name.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// lockKey is the session advisory lock key that elects the feed of (database, slot) on a
// writer: a 64-bit FNV-1a hash of "shardwire_cache", the database and the slot name.
func lockKey(database, slot string) int64 {
	h := fnv.New64a()
	h.Write([]byte("shardwire_cache\x00"))
	h.Write([]byte(database))
	h.Write([]byte{0})
	h.Write([]byte(slot))
	return int64(h.Sum64())
}
