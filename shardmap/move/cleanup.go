package move

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/ctxwait"
)

const (
	// slotPoll is how often dropSlot looks whether a slot's WAL sender has let go.
	slotPoll = 50 * time.Millisecond
	// slotReleaseGrace is how long dropSlot waits for an active slot's WAL sender to exit
	// on its own before terminating it. Once the subscription is gone, its sender exits
	// within moments unless the subscriber vanished without closing the connection.
	slotReleaseGrace = 2 * time.Second
)

// DropReplication removes one direction of replication; everything already gone is skipped,
// so it is safe to call again at any point.
//
// On the target, the subscription is disabled, its slot detached (slot_name = NONE, so that
// dropping it needs no connection to the source) and it is dropped; Postgres then drops the
// table-copy slots it still had on the source if it can reach it. On the source, the slot is
// dropped (waiting for its WAL sender to let go, terminating it after 2s), then every orphan
// table-copy slot of a subscription of the target's server that no longer exists, then the
// publication.
//
// source or target may be nil when that server cannot be reached: its side is left for a
// later call, and Leftovers still lists it. With target nil the orphan table-copy slots
// cannot be told apart and are kept.
func DropReplication(ctx context.Context, source, target *pgx.Conn, spec Spec) error {
	if err := spec.validate(); err != nil {
		return fmt.Errorf("drop replication: %w", err)
	}
	if source == nil && target == nil {
		return fmt.Errorf("drop replication %s: neither server is reachable", spec)
	}
	if target != nil {
		if err := dropSubscription(ctx, target, spec.Name); err != nil {
			return fmt.Errorf("drop replication %s: target: %w", spec, err)
		}
	}
	if source == nil {
		return nil
	}
	if err := dropSlot(ctx, source, spec.Name); err != nil {
		return fmt.Errorf("drop replication %s: source: %w", spec, err)
	}
	if target != nil {
		if err := dropOrphanSyncSlots(ctx, source, target); err != nil {
			return fmt.Errorf("drop replication %s: source: %w", spec, err)
		}
	}
	if _, err := source.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{spec.Name}.Sanitize()); err != nil {
		return fmt.Errorf("drop replication %s: source: drop publication: %w", spec, err)
	}
	return nil
}

// dropSubscription disables, detaches and drops the subscription name, if it exists.
func dropSubscription(ctx context.Context, conn *pgx.Conn, name string) error {
	sub, err := lookupSubscription(ctx, conn, name)
	if err != nil || sub == nil {
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	var stmts []string
	if sub.enabled {
		stmts = append(stmts, "ALTER SUBSCRIPTION "+ident+" DISABLE")
	}
	if sub.slot != nil {
		stmts = append(stmts, "ALTER SUBSCRIPTION "+ident+" SET (slot_name = NONE)")
	}
	// Each alone: DROP SUBSCRIPTION may not run in a transaction block.
	stmts = append(stmts, "DROP SUBSCRIPTION IF EXISTS "+ident)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// dropSlot drops the replication slot name on conn's server when it exists, waiting for the
// WAL sender using it to exit and terminating it after slotReleaseGrace.
func dropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	var activeSince time.Time
	for {
		var pid *int32
		err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up slot %s: %w", name, err)
		}
		if pid == nil {
			_, err = conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name)
			switch pgState(err) {
			case "":
				if err != nil {
					return fmt.Errorf("drop slot %s: %w", name, err)
				}
				return nil
			case codeUndefinedObject:
				return nil
			case codeObjectInUse: // taken again in the meantime
			default:
				return fmt.Errorf("drop slot %s: %w", name, err)
			}
		} else {
			if activeSince.IsZero() {
				activeSince = time.Now()
			} else if time.Since(activeSince) > slotReleaseGrace {
				if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", *pid); err != nil {
					return fmt.Errorf("terminate the WAL sender (pid %d) of slot %s: %w", *pid, name, err)
				}
			}
		}
		if err := ctxwait.Sleep(ctx, slotPoll); err != nil {
			return fmt.Errorf("drop slot %s: still in use: %w", name, err)
		}
	}
}

// syncSlotName matches the name of a table-copy slot, pg_<subscription oid>_sync_<table
// oid>_<subscriber's system identifier>.
var syncSlotName = regexp.MustCompile(`^pg_([0-9]+)_sync_[0-9]+_([0-9]+)$`)

// dropOrphanSyncSlots drops the table-copy slots of source's database that a subscription
// of target's server made and that outlived it (dropped while the source was unreachable).
// Slots are listed before subscriptions, so a slot of a subscription created meanwhile
// is never taken for an orphan.
func dropOrphanSyncSlots(ctx context.Context, source, target *pgx.Conn) error {
	rows, err := source.Query(ctx, `SELECT slot_name::text FROM pg_replication_slots
		WHERE database = current_database() AND slot_name ~ '^pg_[0-9]+_sync_[0-9]+_[0-9]+$'`)
	if err != nil {
		return fmt.Errorf("list table-copy slots: %w", err)
	}
	slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list table-copy slots: %w", err)
	}
	if len(slots) == 0 {
		return nil
	}
	var sysid string
	var subs []uint32
	if err := target.QueryRow(ctx, `SELECT (SELECT system_identifier::text FROM pg_control_system()),
		coalesce((SELECT array_agg(oid) FROM pg_subscription), '{}')`).Scan(&sysid, &subs); err != nil {
		return fmt.Errorf("target's subscriptions: %w", err)
	}
	for _, name := range orphanSyncSlots(slots, sysid, subs) {
		if err := dropSlot(ctx, source, name); err != nil {
			return err
		}
	}
	return nil
}

// orphanSyncSlots returns the slots among names that are table-copy slots of the subscriber
// with system identifier sysid and of none of its subscriptions subs.
func orphanSyncSlots(names []string, sysid string, subs []uint32) []string {
	var out []string
	for _, n := range names {
		m := syncSlotName.FindStringSubmatch(n)
		if m == nil || m[2] != sysid {
			continue
		}
		oid, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil || slices.Contains(subs, uint32(oid)) {
			continue
		}
		out = append(out, n)
	}
	return out
}
