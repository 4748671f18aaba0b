package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// API paths served when Config.API is set.
const (
	PathCluster  = "/api/v1/cluster"
	PathShardMap = "/api/v1/shardmap"
	PathGroups   = "/api/v1/groups"
	PathCache    = "/api/v1/cache"
	// PathCacheFlush (POST, a CacheFlushRequest body) makes cached replies unreachable.
	PathCacheFlush = "/api/v1/cache/flush"
	// PathTransactions lists two-phase transactions: the decision log and in-doubt branches.
	PathTransactions = "/api/v1/transactions"
)

// maxRequestBody caps the body of an admin API request.
const maxRequestBody = 1 << 20

// API is what the admin HTTP API reads and changes. The node implements it; the admin
// package only encodes, decodes and maps errors.
type API interface {
	// Cluster describes the members this node knows and its view of the backends.
	Cluster(ctx context.Context) (ClusterStatus, error)
	// ShardMap describes the map this node serves.
	ShardMap(ctx context.Context) (ShardMapView, error)
	// AddGroup publishes a new epoch of the map with one more group.
	AddGroup(ctx context.Context, req GroupAddRequest) (ShardMapView, error)
	// RemoveGroup publishes a new epoch of the map without the named group.
	RemoveGroup(ctx context.Context, name string) (ShardMapView, error)
	// Cache describes this node's read-through cache.
	Cache(ctx context.Context) (CacheStatus, error)
	// FlushCache makes cached replies unreachable, everywhere in the cluster: all of them, a
	// table's, a customer's, or one customer's of one table.
	FlushCache(ctx context.Context, req CacheFlushRequest) (CacheFlushResult, error)
	// Transactions lists the two-phase transactions of the cluster: the catalog's decision
	// records and the prepared transactions waiting on the groups.
	Transactions(ctx context.Context) (TransactionsStatus, error)
}

// TransactionsStatus is the body of GET /api/v1/transactions.
type TransactionsStatus struct {
	// Node is the name of the node that answered.
	Node string `json:"node"`
	// Enabled is false when no database of the node uses two_phase_commit; the rest is empty.
	Enabled bool `json:"enabled"`
	// Records are the decision log's transactions not yet forgotten, oldest first.
	Records []TransactionRecord `json:"records"`
	// InDoubt are the shardwire prepared transactions on the groups' writers now.
	InDoubt []InDoubtBranch `json:"in_doubt"`
	// Errors say what could not be read (a group that could not be scanned); the lists
	// above then lack that part.
	Errors []string `json:"errors,omitempty"`
}

// TransactionRecord is one transaction of the two-phase decision log.
type TransactionRecord struct {
	GID      string    `json:"gid"`
	Node     string    `json:"node"` // its coordinator
	Database string    `json:"database"`
	User     string    `json:"user"`
	Groups   []string  `json:"groups"`
	State    string    `json:"state"` // prepare, commit or abort
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// InDoubtBranch is one prepared transaction on a group's writer.
type InDoubtBranch struct {
	Group    string    `json:"group"`
	GID      string    `json:"gid"`
	Database string    `json:"database"`
	Owner    string    `json:"owner"`
	Prepared time.Time `json:"prepared"`
	// State is its record's state, "" when the decision log has none (presumed abort).
	State string `json:"state"`
}

// CacheStatus is the body of GET /api/v1/cache.
type CacheStatus struct {
	// Node is the name of the node that answered.
	Node string `json:"node"`
	// Enabled is false when no table is cacheable; the rest is then zero.
	Enabled bool `json:"enabled"`
	// Usable says cached reads are served now (Redis answers, or the node runs alone).
	Usable bool `json:"usable"`
	// RedisUp says Redis answered the last probe; false also without Redis.
	RedisUp bool `json:"redis_up"`
	// Tables are the cacheable tables and their TTLs.
	Tables map[string]string `json:"tables,omitempty"`
	// Entries and Bytes are held in this node's memory (L1).
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"`
	// Layers are hit counts and rates per layer since the node started.
	Layers []CacheLayerStatus `json:"layers"`
	// Misses are reads that went to Postgres; Fills the replies stored.
	Misses int64 `json:"misses"`
	Fills  int64 `json:"fills"`
	// HitRate is hits over hits plus misses, all layers (0 before any read).
	HitRate float64 `json:"hit_rate"`
}

// CacheLayerStatus is one cache layer's counts.
type CacheLayerStatus struct {
	Layer string `json:"layer"` // "l1" (memory) or "l2" (Redis)
	Hits  int64  `json:"hits"`
	// HitRate is this layer's hits over all lookups that reached it.
	HitRate float64 `json:"hit_rate"`
}

// CacheFlushRequest is the body of POST /api/v1/cache/flush. Empty: everything.
type CacheFlushRequest struct {
	Table    string `json:"table,omitempty"`
	Customer *int64 `json:"customer,omitempty"`
}

// CacheFlushResult says what a flush made unreachable.
type CacheFlushResult struct {
	// Generations is how many generation counters were bumped.
	Generations int `json:"generations"`
	// Scope describes it ("everything", "table invoices", "customer 42", ...).
	Scope string `json:"scope"`
}

// ClusterStatus is the body of GET /api/v1/cluster.
type ClusterStatus struct {
	// Node is the name of the node that answered.
	Node string `json:"node"`
	// Clustered is false when the node runs alone (no gossip configured).
	Clustered bool `json:"clustered"`
	// Members are every node this one knows, itself included, sorted by name.
	Members []MemberStatus `json:"members"`
	// Endpoints are the backends as this node's health checker sees them, in map order.
	Endpoints []EndpointStatus `json:"endpoints"`
}

// MemberStatus is one node of the cluster.
type MemberStatus struct {
	Name   string `json:"name"`
	State  string `json:"state"` // alive, dead or left
	Region string `json:"region"`
	// Version is the node's build version.
	Version string `json:"version"`
	// PgAddr and AdminAddr are the node's client and admin addresses; GossipAddr its gossip one.
	PgAddr     string `json:"pg_addr"`
	AdminAddr  string `json:"admin_addr"`
	GossipAddr string `json:"gossip_addr"`
	// Epoch is the shard map epoch the node serves.
	Epoch int64 `json:"epoch"`
	// LeaseOK: the node holds a valid lease on its map (it routes work).
	LeaseOK bool `json:"lease_ok"`
	// Ready: the node accepts client traffic.
	Ready bool `json:"ready"`
	// Since is when the answering node saw the member's state last change.
	Since time.Time `json:"since,omitzero"`
	// Self marks the answering node.
	Self bool `json:"self,omitempty"`
}

// EndpointStatus is one backend server.
type EndpointStatus struct {
	Group  string `json:"group"`
	Addr   string `json:"addr"`
	Region string `json:"region"`
	Role   string `json:"role"` // writer or replica
	Up     bool   `json:"up"`
	// LagSeconds is a replica's measured lag; null when unknown.
	LagSeconds *float64 `json:"lag_seconds"`
	// Banned: reads avoid the endpoint after a failure, until its ban ends.
	Banned    bool   `json:"banned"`
	LastError string `json:"last_error,omitempty"`
}

// ShardMapView is the body of GET /api/v1/shardmap.
type ShardMapView struct {
	Epoch        int64       `json:"epoch"`
	DefaultGroup string      `json:"default_group"`
	Groups       []GroupView `json:"groups"`
	// Shards lists the 16 logical shards in order.
	Shards []ShardView `json:"shards"`
	// Rules say which tables are sharded by which column (an empty table: every table with
	// that column).
	Rules []RuleView `json:"rules"`
	// Lease is the answering node's lease on this map.
	Lease LeaseView `json:"lease"`
}

// GroupView is one shard group of the map.
type GroupView struct {
	Name     string   `json:"name"`
	Region   string   `json:"region"`
	Writer   string   `json:"writer"`
	Replicas []string `json:"replicas"`
	// Shards are the logical shards the group owns.
	Shards []int `json:"shards"`
}

// ShardView is one logical shard.
type ShardView struct {
	Shard int    `json:"shard"`
	Group string `json:"group"`
	State string `json:"state"`
}

// RuleView is one sharding rule.
type RuleView struct {
	Table  string `json:"table,omitempty"`
	Column string `json:"column"`
}

// LeaseView is a node's lease on its map.
type LeaseView struct {
	// Valid: the node read the catalog recently enough to route work.
	Valid bool `json:"valid"`
	// AgeSeconds is the time since the last successful catalog read; TTLSeconds the lease's
	// length. Both 0 for a node without a catalog, whose lease never expires.
	AgeSeconds float64 `json:"age_seconds"`
	TTLSeconds float64 `json:"ttl_seconds"`
}

// GroupAddRequest is the body of POST /api/v1/groups. Addresses are host:port.
type GroupAddRequest struct {
	Name     string   `json:"name"`
	Region   string   `json:"region"`
	Writer   string   `json:"writer"`
	Replicas []string `json:"replicas,omitempty"`
}

// Error codes of APIError, stable for clients.
const (
	CodeInvalid       = "invalid"        // a malformed or invalid request
	CodeUnknownGroup  = "unknown_group"  // no group of that name
	CodeGroupExists   = "group_exists"   // a group of that name exists already
	CodeOwnsShards    = "owns_shards"    // the group still owns shards
	CodeEpochConflict = "epoch_conflict" // the map changed concurrently; retry
	CodeNoCatalog     = "no_catalog"     // the node has no catalog: its map cannot change
	CodeUnavailable   = "unavailable"    // a backend or the catalog could not be reached
	CodeCacheOff      = "cache_off"      // no table is cacheable on this node
	CodeInternal      = "internal"
)

// APIError is an API failure: the HTTP status, a stable code and a message for humans. It is
// also the JSON body of every failed API request.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"error"`
}

// Error returns the message.
func (e *APIError) Error() string { return e.Message }

// Errorf returns an *APIError with a formatted message.
func Errorf(status int, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// routeAPI adds the API's routes to mux.
func (s *Server) routeAPI(mux *http.ServeMux, api API) {
	mux.HandleFunc("GET "+PathCluster, func(w http.ResponseWriter, r *http.Request) {
		st, err := api.Cluster(r.Context())
		s.reply(w, r, st, err)
	})
	mux.HandleFunc("GET "+PathShardMap, func(w http.ResponseWriter, r *http.Request) {
		v, err := api.ShardMap(r.Context())
		s.reply(w, r, v, err)
	})
	mux.HandleFunc("POST "+PathGroups, func(w http.ResponseWriter, r *http.Request) {
		var req GroupAddRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.reply(w, r, nil, Errorf(http.StatusBadRequest, CodeInvalid, "request body: %v", err))
			return
		}
		v, err := api.AddGroup(r.Context(), req)
		s.reply(w, r, v, err)
	})
	mux.HandleFunc("DELETE "+PathGroups+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, err := api.RemoveGroup(r.Context(), r.PathValue("name"))
		s.reply(w, r, v, err)
	})
	mux.HandleFunc("GET "+PathCache, func(w http.ResponseWriter, r *http.Request) {
		v, err := api.Cache(r.Context())
		s.reply(w, r, v, err)
	})
	mux.HandleFunc("GET "+PathTransactions, func(w http.ResponseWriter, r *http.Request) {
		v, err := api.Transactions(r.Context())
		s.reply(w, r, v, err)
	})
	mux.HandleFunc("POST "+PathCacheFlush, func(w http.ResponseWriter, r *http.Request) {
		var req CacheFlushRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			s.reply(w, r, nil, Errorf(http.StatusBadRequest, CodeInvalid, "request body: %v", err))
			return
		}
		v, err := api.FlushCache(r.Context(), req)
		s.reply(w, r, v, err)
	})
}

// reply writes v as JSON, or err as an APIError body with its status.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			apiErr = &APIError{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
		}
		if apiErr.Status == 0 {
			apiErr.Status = http.StatusInternalServerError
		}
		s.m.apiErrors.WithLabelValues(apiErr.Code).Inc()
		s.log.Info("admin API request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("code", apiErr.Code), zap.String("error", apiErr.Message))
		w.WriteHeader(apiErr.Status)
		_ = json.NewEncoder(w).Encode(apiErr)
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
