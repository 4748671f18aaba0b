package twopc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Connector opens connections to the shard groups' writers for the recovery.
//
// Connect opens a new connection to the current writer of group, logged in as user to
// database — the owner of a prepared transaction and the database it was prepared in, as
// COMMIT PREPARED and ROLLBACK PREPARED require. When database and user are both "", it
// connects as the proxy's own login to any database: the recovery only reads
// pg_prepared_xacts there, which is cluster-wide. The caller closes the connection.
// Connect must be safe for concurrent use (groups are scanned in parallel) and should give
// up within ctx's deadline.
type Connector interface {
	Connect(ctx context.Context, group, database, user string) (*pgx.Conn, error)
}

// InDoubt is a shardwire prepared transaction found on a group, with its decision log state.
type InDoubt struct {
	Group    string    `json:"group"`
	GID      string    `json:"gid"`
	Database string    `json:"database"`
	Owner    string    `json:"owner"`
	Prepared time.Time `json:"prepared"` // when PREPARE TRANSACTION ran, by the group's clock
	State    State     `json:"state"`    // of its record; "" when the log has none
}

// prepared is one row of a group's pg_prepared_xacts.
type prepared struct {
	gid      string
	database string
	owner    string
	at       time.Time     // prepared, by the group's clock
	age      time.Duration // since prepared, by the group's clock
}

// groupScan is what a scan found on one group: its prepared transactions, or why it could
// not tell.
type groupScan struct {
	xacts []prepared
	err   error
}

// scanGroups reads the shardwire prepared transactions of every group in parallel, each
// within timeout.
func scanGroups(ctx context.Context, c Connector, groups []string, timeout time.Duration) map[string]groupScan {
	out := make(map[string]groupScan, len(groups))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, g := range groups {
		wg.Go(func() {
			xacts, err := scanGroup(ctx, c, g, timeout)
			mu.Lock()
			out[g] = groupScan{xacts: xacts, err: err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// scanGroup reads the shardwire prepared transactions of one group.
func scanGroup(ctx context.Context, c Connector, group string, timeout time.Duration) ([]prepared, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.Connect(ctx, group, "", "")
	if err != nil {
		return nil, fmt.Errorf("scan group %s: connect: %w", group, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx,
		`SELECT gid, database, owner, prepared, extract(epoch FROM now() - prepared)::float8
		   FROM pg_prepared_xacts WHERE starts_with(gid, $1) ORDER BY prepared, gid`, GIDPrefix)
	if err != nil {
		return nil, fmt.Errorf("scan group %s: %w", group, err)
	}
	xacts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (prepared, error) {
		var (
			p   prepared
			age float64
		)
		err := row.Scan(&p.gid, &p.database, &p.owner, &p.at, &age)
		p.age = time.Duration(age * float64(time.Second))
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan group %s: %w", group, err)
	}
	return xacts, nil
}

// groupsToScan returns the groups of the shard map and every group a record names (a
// record may outlive its group's place in the map), sorted, without duplicates.
func groupsToScan(mapGroups []string, records []Record) []string {
	all := slices.Clone(mapGroups)
	for _, r := range records {
		all = append(all, r.Groups...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// InDoubt returns every shardwire prepared transaction on every group (those of the shard
// map and those the log names), with the state of its record, sorted by group and
// identifier. It does not need the leadership and changes nothing. When some groups cannot
// be scanned, it returns what the others hold together with an error naming them.
func (r *Recovery) InDoubt(ctx context.Context) ([]InDoubt, error) {
	records, err := r.dlog.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("two-phase recovery: in-doubt transactions: %w", err)
	}
	states := make(map[string]State, len(records))
	for _, rec := range records {
		states[rec.GID] = rec.State
	}
	groups := groupsToScan(r.cfg.Groups(), records)
	scans := scanGroups(ctx, r.connector, groups, r.cfg.Timeout)
	var (
		out  []InDoubt
		errs []error
	)
	for _, g := range groups {
		s := scans[g]
		if s.err != nil {
			errs = append(errs, s.err)
			continue
		}
		for _, x := range s.xacts {
			out = append(out, InDoubt{Group: g, GID: x.gid, Database: x.database, Owner: x.owner, Prepared: x.at, State: states[x.gid]})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("two-phase recovery: in-doubt transactions: %w", err)
	}
	return out, nil
}
