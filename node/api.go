package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/cluster"
	"github.com/shardwire/shardwire/shardmap"
)

// dialCheckTimeout bounds the reachability check of a new group's servers.
const dialCheckTimeout = 3 * time.Second

// api implements admin.API for a node.
type api struct{ *Node }

// Cluster implements admin.API: the members this node knows and its view of the backends.
func (n api) Cluster(context.Context) (admin.ClusterStatus, error) {
	st := admin.ClusterStatus{Node: n.cfg.NodeName, Clustered: n.cluster != nil}
	if n.cluster == nil {
		m := n.meta()
		st.Members = []admin.MemberStatus{memberStatus(cluster.Member{Name: m.Name, State: cluster.StateAlive, Meta: m}, true)}
	} else {
		self := n.cluster.LocalNode()
		for _, m := range n.cluster.Members() {
			if m.Name == self.Name {
				m.Meta = n.meta() // fresher than what was last gossiped
			}
			st.Members = append(st.Members, memberStatus(m, m.Name == self.Name))
		}
	}
	slices.SortFunc(st.Members, func(a, b admin.MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	st.Endpoints = n.proxy.EndpointStatuses()
	return st, nil
}

func memberStatus(m cluster.Member, self bool) admin.MemberStatus {
	return admin.MemberStatus{
		Name: m.Name, State: m.State.String(), Region: m.Meta.Region, Version: m.Meta.Version,
		PgAddr: m.Meta.PgAddr, AdminAddr: m.Meta.AdminAddr, GossipAddr: m.Addr,
		Epoch: m.Meta.Epoch, LeaseOK: m.Meta.LeaseOK, Ready: m.Meta.Ready, Since: m.Since, Self: self,
	}
}

// ShardMap implements admin.API: the map this node serves and its lease on it.
func (n api) ShardMap(context.Context) (admin.ShardMapView, error) {
	return n.mapView(n.proxy.MapStore().Current()), nil
}

func (n *Node) mapView(m *shardmap.Map) admin.ShardMapView {
	v := admin.ShardMapView{Epoch: m.Epoch, DefaultGroup: m.Groups[m.DefaultGroup].Name,
		Groups: []admin.GroupView{}, Shards: []admin.ShardView{}, Rules: []admin.RuleView{}}
	for gi, g := range m.Groups {
		gv := admin.GroupView{Name: g.Name, Region: g.Region, Writer: g.Writer,
			Replicas: append([]string{}, g.Replicas...), Shards: []int{}}
		for _, s := range m.OwnedBy(gi).Shards() {
			gv.Shards = append(gv.Shards, int(s))
		}
		v.Groups = append(v.Groups, gv)
	}
	for s := range shardmap.NumShards {
		v.Shards = append(v.Shards, admin.ShardView{Shard: s, Group: m.Groups[m.Owner[s]].Name, State: string(m.State[s])})
	}
	for _, r := range m.Rules {
		v.Rules = append(v.Rules, admin.RuleView{Table: r.Table, Column: r.Column})
	}
	v.Lease.Valid = true
	if l := n.proxy.Lease(); l != nil {
		st := l.Status()
		v.Lease = admin.LeaseView{Valid: st.Valid, AgeSeconds: st.Age.Seconds(), TTLSeconds: st.TTL.Seconds()}
	}
	return v
}

// AddGroup implements admin.API: it checks that the group's servers accept connections and
// publishes a new epoch with the group (owning no shard yet).
func (n api) AddGroup(ctx context.Context, req admin.GroupAddRequest) (admin.ShardMapView, error) {
	g := shardmap.Group{Name: req.Name, Region: req.Region, Writer: req.Writer, Replicas: req.Replicas}
	for _, addr := range g.Endpoints() {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return admin.ShardMapView{}, admin.Errorf(http.StatusBadRequest, admin.CodeInvalid,
				"server address %q of group %q must be host:port: %v", addr, req.Name, err)
		}
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, dialCheckTimeout)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err != nil {
			return admin.ShardMapView{}, admin.Errorf(http.StatusBadGateway, admin.CodeUnavailable,
				"group %q: server %s does not accept connections: %v", req.Name, addr, err)
		}
		_ = c.Close()
	}
	return n.editMap(ctx, "group add "+req.Name, func(m *shardmap.Map) (*shardmap.Map, error) {
		return shardmap.AddGroup(m, g)
	})
}

// RemoveGroup implements admin.API: it publishes a new epoch without the group, which must
// own no shard.
func (n api) RemoveGroup(ctx context.Context, name string) (admin.ShardMapView, error) {
	return n.editMap(ctx, "group remove "+name, func(m *shardmap.Map) (*shardmap.Map, error) {
		return shardmap.RemoveGroup(m, name)
	})
}

// editMap publishes one change of the map through the catalog (compare-and-set on the epoch),
// takes the new map at once and announces its epoch to the other nodes.
func (n *Node) editMap(ctx context.Context, reason string, edit func(*shardmap.Map) (*shardmap.Map, error)) (admin.ShardMapView, error) {
	cat := n.proxy.Catalog()
	if cat == nil {
		return admin.ShardMapView{}, admin.Errorf(http.StatusConflict, admin.CodeNoCatalog,
			"node %s has no shard map catalog (catalog.dsn is not set): its map comes from its configuration file", n.cfg.NodeName)
	}
	m, err := cat.Update(ctx, n.cfg.NodeName, reason, func(m *shardmap.Map) (*shardmap.Map, error) {
		next, err := edit(m)
		if err != nil {
			return nil, refusedEdit{err}
		}
		return next, nil
	})
	if err != nil {
		return admin.ShardMapView{}, mapEditError(err)
	}
	n.proxy.MapStore().Set(m)
	n.log.Info("published shard map", zap.Int64("epoch", m.Epoch), zap.String("change", reason))
	if n.cluster != nil {
		if err := n.cluster.AnnounceEpoch(ctx, m.Epoch); err != nil {
			n.log.Warn("announcing the new epoch", zap.Int64("epoch", m.Epoch), zap.Error(err))
		}
	}
	return n.mapView(m), nil
}

// mapEditError turns a failed map change into an API error.
func mapEditError(err error) error {
	var owns *shardmap.GroupOwnsShardsError
	var conflict *shardmap.EpochConflictError
	switch {
	case errors.As(err, &conflict):
		return admin.Errorf(http.StatusConflict, admin.CodeEpochConflict,
			"the shard map changed concurrently (the catalog is now at epoch %d, the change was based on %d); run the command again",
			conflict.Current, conflict.Expected)
	case errors.Is(err, shardmap.ErrUnknownGroup):
		return admin.Errorf(http.StatusNotFound, admin.CodeUnknownGroup, "%v", err)
	case errors.Is(err, shardmap.ErrGroupExists):
		return admin.Errorf(http.StatusConflict, admin.CodeGroupExists, "%v", err)
	case errors.As(err, &owns), errors.Is(err, shardmap.ErrDefaultGroup):
		return admin.Errorf(http.StatusConflict, admin.CodeOwnsShards, "%v", err)
	case errors.As(err, new(refusedEdit)):
		return admin.Errorf(http.StatusBadRequest, admin.CodeInvalid, "%v", err)
	}
	return admin.Errorf(http.StatusServiceUnavailable, admin.CodeUnavailable, "shard map catalog: %v", err)
}

// refusedEdit is an edit of the map that its own rules refused (as opposed to a catalog that
// failed): the request was wrong.
type refusedEdit struct{ err error }

func (e refusedEdit) Error() string { return e.err.Error() }
func (e refusedEdit) Unwrap() error { return e.err }
