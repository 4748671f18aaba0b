package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardwire/shardwire/admin"
)

// readyTimeout bounds the wait for every node to be ready after Start.
const readyTimeout = 60 * time.Second

// retryInterval is the pause between two checks of a condition.
const retryInterval = 50 * time.Millisecond

// checkTimeout bounds one query or HTTP request of a readiness check.
const checkTimeout = 5 * time.Second

// permanentError marks a failed check that retrying cannot cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func permanent(err error) error { return &permanentError{err: err} }

// retry calls check until it succeeds, returns a permanent error, ctx ends or fail delivers an
// error (fail may be nil). The error on timeout includes check's last error.
func retry(ctx context.Context, fail <-chan error, check func(context.Context) error) error {
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if pe, ok := errors.AsType[*permanentError](err); ok {
			return pe.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last: %v", ctx.Err(), err)
		case ferr := <-fail:
			return ferr
		case <-time.After(retryInterval):
		}
	}
}

// waitReady waits until every node serves a query as User, answers /readyz with 200 and, in
// a cluster of several nodes, lists every node alive in GET /api/v1/cluster.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i] = n.Name
	}
	for _, n := range c.Nodes {
		err := retry(ctx, c.errs, func(ctx context.Context) error {
			if n.childNode() {
				if err := n.exitedError(); err != nil {
					return permanent(err)
				}
			}
			if err := queryOnce(ctx, n.DSN()); err != nil {
				return fmt.Errorf("select 1 at %s: %w", n.Addr, err)
			}
			if err := readyz(ctx, n.Admin); err != nil {
				return err
			}
			if len(names) > 1 {
				return membersAlive(ctx, n.Admin, names)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("devcluster: proxy %s not ready: %w", n.Name, err)
		}
	}
	return nil
}

// queryOnce connects to dsn and runs select 1.
func queryOnce(ctx context.Context, dsn string) error {
	qctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	conn, err := pgconn.Connect(qctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(qctx, "select 1").ReadAll()
	return err
}

// adminGet fetches http://addr+path and returns the body of a 200 answer.
func adminGet(ctx context.Context, addr, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// readyz checks that the admin listener at addr answers /readyz with 200.
func readyz(ctx context.Context, addr string) error {
	_, err := adminGet(ctx, addr, "/readyz")
	return err
}

// membersAlive checks that the node at admin address addr lists every name as an alive member.
func membersAlive(ctx context.Context, addr string, names []string) error {
	body, err := adminGet(ctx, addr, "/api/v1/cluster")
	if err != nil {
		return err
	}
	var st admin.ClusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("GET /api/v1/cluster: decode: %w", err)
	}
	var missing []string
	for _, name := range names {
		if !slices.ContainsFunc(st.Members, func(m admin.MemberStatus) bool { return m.Name == name && m.State == "alive" }) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s does not list %s alive (members: %s)", st.Node, strings.Join(missing, ", "), describeMembers(st.Members))
	}
	return nil
}

// describeMembers renders members as "p0=alive p1=dead".
func describeMembers(ms []admin.MemberStatus) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Name + "=" + m.State
	}
	return strings.Join(parts, " ")
}
