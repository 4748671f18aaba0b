package shardmap

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
)

// ErrGroupExists means AddGroup was given a group whose name the map already has.
var ErrGroupExists = errors.New("shard group already exists")

// ErrUnknownGroup means an edit named a group the map does not have.
var ErrUnknownGroup = errors.New("unknown shard group")

// ErrDefaultGroup means RemoveGroup was asked to remove the default group, which holds the
// unsharded tables.
var ErrDefaultGroup = errors.New("the default shard group cannot be removed")

// GroupOwnsShardsError is RemoveGroup's refusal to remove a group that still owns shards.
type GroupOwnsShardsError struct {
	// Group is the group's name.
	Group string
	// Shards are the shards it owns.
	Shards ShardSet
}

// Error names the group and its shards and says what to do.
func (e *GroupOwnsShardsError) Error() string {
	return fmt.Sprintf("shard group %q still owns shards %s: move them to other groups first", e.Group, e.Shards)
}

// AddGroup returns a copy of m with g appended as its last group; m is not modified. The copy
// keeps m's Epoch (Publish numbers the next one), ownership, shard states, default group and
// rules: the new group owns nothing until shards are moved to it.
//
// g needs a name not yet used (else an error matching ErrGroupExists), a region, and a writer
// and replicas that are each a valid host:port, listed once, and not used by another group of
// m (hosts compare case-insensitively and ports by number; names are not resolved). Regions
// in g.ReplicaRegions must be non-empty and name replicas of g. The new group's slices and map
// are copied, so the caller may reuse g.
func AddGroup(m *Map, g Group) (*Map, error) {
	if m == nil {
		return nil, errors.New("add shard group: no map")
	}
	if strings.TrimSpace(g.Name) == "" {
		return nil, errors.New("add shard group: the group needs a name")
	}
	if m.GroupIndex(g.Name) >= 0 {
		return nil, fmt.Errorf("add shard group %q: %w", g.Name, ErrGroupExists)
	}
	if len(m.Groups) >= MaxGroups {
		return nil, fmt.Errorf("add shard group %q: the map already has %d groups, the most it can hold", g.Name, MaxGroups)
	}
	if strings.TrimSpace(g.Region) == "" {
		return nil, fmt.Errorf("add shard group %q: the group needs a region", g.Name)
	}
	used := make(map[string]string) // endpoint key → group using it
	for _, other := range m.Groups {
		for _, ep := range other.Endpoints() {
			if key, err := endpointKey(ep); err == nil {
				used[key] = other.Name
			}
		}
	}
	mine := make(map[string]bool, 1+len(g.Replicas))
	for i, ep := range g.Endpoints() {
		role := "writer"
		if i > 0 {
			role = fmt.Sprintf("replica %d", i)
		}
		key, err := endpointKey(ep)
		if err != nil {
			return nil, fmt.Errorf("add shard group %q: %s %q: %w", g.Name, role, ep, err)
		}
		if owner, ok := used[key]; ok {
			return nil, fmt.Errorf("add shard group %q: %s %q is already an endpoint of group %q", g.Name, role, ep, owner)
		}
		if mine[key] {
			return nil, fmt.Errorf("add shard group %q: %s %q is listed twice in the group", g.Name, role, ep)
		}
		mine[key] = true
	}
	for addr, region := range g.ReplicaRegions {
		if !slices.Contains(g.Replicas, addr) {
			return nil, fmt.Errorf("add shard group %q: replica region given for %q, which is not one of its replicas", g.Name, addr)
		}
		if strings.TrimSpace(region) == "" {
			return nil, fmt.Errorf("add shard group %q: replica %q has an empty region", g.Name, addr)
		}
	}
	g.Replicas = slices.Clone(g.Replicas)
	g.ReplicaRegions = maps.Clone(g.ReplicaRegions)
	out := clone(m)
	out.Groups = append(slices.Clone(m.Groups), g)
	return out, nil
}

// RemoveGroup returns a copy of m without the named group; m is not modified. Group indexes in
// Owner and DefaultGroup are renumbered to match. It refuses an unknown group (an error
// matching ErrUnknownGroup that lists the known ones), the default group (ErrDefaultGroup),
// and a group that owns shards (a *GroupOwnsShardsError).
func RemoveGroup(m *Map, name string) (*Map, error) {
	if m == nil {
		return nil, errors.New("remove shard group: no map")
	}
	idx := m.GroupIndex(name)
	if idx < 0 {
		known := make([]string, len(m.Groups))
		for i := range m.Groups {
			known[i] = strconv.Quote(m.Groups[i].Name)
		}
		return nil, fmt.Errorf("remove shard group %q: %w (known groups: %s)", name, ErrUnknownGroup, strings.Join(known, ", "))
	}
	if idx == m.DefaultGroup {
		return nil, fmt.Errorf("remove shard group %q: %w: it holds the unsharded tables", name, ErrDefaultGroup)
	}
	if owned := m.OwnedBy(idx); !owned.Empty() {
		return nil, fmt.Errorf("remove shard group: %w", &GroupOwnsShardsError{Group: name, Shards: owned})
	}
	out := clone(m)
	out.Groups = slices.Delete(slices.Clone(m.Groups), idx, idx+1)
	for s, owner := range out.Owner {
		if owner > idx {
			out.Owner[s] = owner - 1
		}
	}
	if out.DefaultGroup > idx {
		out.DefaultGroup--
	}
	return out, nil
}

// clone returns a shallow copy of m whose Rules slice is its own. Groups, and the maps filled
// in from the schema, are shared (maps are immutable); the caller replaces Groups.
func clone(m *Map) *Map {
	out := *m
	out.Rules = slices.Clone(m.Rules)
	return &out
}

// endpointKey checks that ep is host:port with a host and a port 1..65535, and returns the
// form two spellings of one endpoint share: lower-case host, port without leading zeros.
func endpointKey(ep string) (string, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return "", errors.New("want host:port: missing host")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("want host:port: port %q is not a number 1..65535", port)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(n, 10)), nil
}

// Update changes the catalog's map in one compare-and-set: it loads the current map, applies
// edit to it, validates the result and publishes it as the next epoch, and returns the map as
// stored. edit must not modify its argument (AddGroup and RemoveGroup return copies); its
// error is returned wrapped, and nothing is published.
//
// Update makes one attempt: when another change lands between the load and the publish, it
// returns the *EpochConflictError (matching ErrEpochConflict) and stores nothing, so that the
// operator looks at the new map and retries knowingly. Like Publish, any other error from the
// publish may leave its outcome unknown.
func (c *Catalog) Update(ctx context.Context, by, reason string, edit func(*Map) (*Map, error)) (*Map, error) {
	cur, err := c.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("shard map update: %w", err)
	}
	next, err := edit(cur)
	if err != nil {
		return nil, fmt.Errorf("shard map update of epoch %d: %w", cur.Epoch, err)
	}
	if next == nil {
		return nil, fmt.Errorf("shard map update of epoch %d: the edit returned no map", cur.Epoch)
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("shard map update of epoch %d: the edited map is invalid: %w", cur.Epoch, err)
	}
	stored, err := c.Publish(ctx, cur.Epoch, next, by, reason)
	if err != nil {
		return nil, fmt.Errorf("shard map update: %w", err)
	}
	return stored, nil
}
