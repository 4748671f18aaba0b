package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// fakeAPI is an API with canned answers that records what it was asked.
type fakeAPI struct {
	cluster  ClusterStatus
	view     ShardMapView
	err      error
	added    []GroupAddRequest
	removed  []string
	requests int
	flushed  []CacheFlushRequest
}

func (f *fakeAPI) Cache(context.Context) (CacheStatus, error) {
	f.requests++
	return CacheStatus{Node: "n1", Enabled: true, Entries: 7}, f.err
}

func (f *fakeAPI) Transactions(context.Context) (TransactionsStatus, error) {
	f.requests++
	return TransactionsStatus{Node: "n1", Enabled: true, InDoubt: []InDoubtBranch{{Group: "g1", GID: "shardwire:n1:x", State: "commit"}}}, f.err
}

func (f *fakeAPI) FlushCache(_ context.Context, req CacheFlushRequest) (CacheFlushResult, error) {
	f.requests++
	f.flushed = append(f.flushed, req)
	return CacheFlushResult{Generations: 1, Scope: "everything"}, f.err
}

func (f *fakeAPI) Cluster(context.Context) (ClusterStatus, error) {
	f.requests++
	return f.cluster, f.err
}

func (f *fakeAPI) ShardMap(context.Context) (ShardMapView, error) {
	f.requests++
	return f.view, f.err
}

func (f *fakeAPI) AddGroup(_ context.Context, req GroupAddRequest) (ShardMapView, error) {
	f.requests++
	f.added = append(f.added, req)
	return f.view, f.err
}

func (f *fakeAPI) RemoveGroup(_ context.Context, name string) (ShardMapView, error) {
	f.requests++
	f.removed = append(f.removed, name)
	return f.view, f.err
}

// serveAPI serves api through the real admin Server and returns a client of it.
func serveAPI(t *testing.T, api API) *Client {
	t.Helper()
	s := New(Config{API: api}, zap.NewNop(), prometheus.NewRegistry(), nil)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	c, err := NewClient(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewClientAddress(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		wantBase string // "" means an error is expected
		wantAddr string
	}{
		{"127.0.0.1:9930", "http://127.0.0.1:9930", "127.0.0.1:9930"},
		{" node-1:9930 ", "http://node-1:9930", "node-1:9930"},
		{"http://127.0.0.1:9930", "http://127.0.0.1:9930", "127.0.0.1:9930"},
		{"http://127.0.0.1:9930/", "http://127.0.0.1:9930", "127.0.0.1:9930"},
		{"https://admin.example:443", "https://admin.example:443", "https://admin.example:443"},
		{"[::1]:9930", "http://[::1]:9930", "[::1]:9930"},
		{"", "", ""},
		{"ftp://host:1", "", ""},
		{"http://", "", ""},
		{"http://host:1/api", "", ""},
		{"http://user@host:1", "", ""},
		{"host:1?x=1", "", ""},
	} {
		c, err := NewClient(tc.addr, nil)
		if tc.wantBase == "" {
			if err == nil {
				t.Errorf("NewClient(%q) = %s, want an error", tc.addr, c.base)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewClient(%q): %v", tc.addr, err)
			continue
		}
		if got := c.base.String(); got != tc.wantBase {
			t.Errorf("NewClient(%q) base = %q, want %q", tc.addr, got, tc.wantBase)
		}
		if c.Addr() != tc.wantAddr {
			t.Errorf("NewClient(%q).Addr() = %q, want %q", tc.addr, c.Addr(), tc.wantAddr)
		}
		if c.hc.Timeout != DefaultClientTimeout {
			t.Errorf("NewClient(%q) timeout = %v, want %v", tc.addr, c.hc.Timeout, DefaultClientTimeout)
		}
	}
}

func TestClientRoundTrip(t *testing.T) {
	lag := 0.25
	api := &fakeAPI{
		cluster: ClusterStatus{Node: "p0", Clustered: true,
			Members:   []MemberStatus{{Name: "p0", State: "alive", Epoch: 3, LeaseOK: true, Ready: true, Self: true}},
			Endpoints: []EndpointStatus{{Group: "g0", Addr: "10.0.0.1:5432", Role: "replica", Up: true, LagSeconds: &lag}}},
		view: ShardMapView{Epoch: 3, DefaultGroup: "g0",
			Groups: []GroupView{{Name: "g0", Region: "r", Writer: "10.0.0.1:5432", Replicas: []string{}, Shards: []int{0, 1}}},
			Shards: []ShardView{{Shard: 0, Group: "g0", State: "active"}},
			Rules:  []RuleView{{Column: "customer_id"}},
			Lease:  LeaseView{Valid: true, AgeSeconds: 0.5, TTLSeconds: 10}},
	}
	c := serveAPI(t, api)
	ctx := context.Background()

	st, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, api.cluster) {
		t.Errorf("Cluster = %+v, want %+v", st, api.cluster)
	}
	v, err := c.ShardMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, api.view) {
		t.Errorf("ShardMap = %+v, want %+v", v, api.view)
	}
	req := GroupAddRequest{Name: "g1", Region: "eu", Writer: "[::1]:5432", Replicas: []string{"h:1", "h:2"}}
	if v, err = c.AddGroup(ctx, req); err != nil || v.Epoch != 3 {
		t.Fatalf("AddGroup = epoch %d, %v", v.Epoch, err)
	}
	if len(api.added) != 1 || !reflect.DeepEqual(api.added[0], req) {
		t.Errorf("node got AddGroup %+v, want %+v", api.added, req)
	}
	// A name that needs escaping in a path arrives intact.
	if _, err = c.RemoveGroup(ctx, "g 1/x"); err != nil {
		t.Fatal(err)
	}
	if len(api.removed) != 1 || api.removed[0] != "g 1/x" {
		t.Errorf("node got RemoveGroup %q, want [\"g 1/x\"]", api.removed)
	}
	before := api.requests
	if _, err = c.RemoveGroup(ctx, ""); err == nil {
		t.Error("RemoveGroup(\"\") succeeded")
	}
	if api.requests != before {
		t.Error("RemoveGroup(\"\") sent a request")
	}
	cs, err := c.Cache(ctx)
	if err != nil || cs.Node != "n1" || !cs.Enabled || cs.Entries != 7 {
		t.Errorf("Cache = %+v, %v", cs, err)
	}
	if ts, err := c.Transactions(ctx); err != nil || !ts.Enabled || len(ts.InDoubt) != 1 || ts.InDoubt[0].State != "commit" {
		t.Errorf("Transactions = %+v, %v", ts, err)
	}
	customer := int64(42)
	flush := CacheFlushRequest{Table: "invoices", Customer: &customer}
	if res, err := c.FlushCache(ctx, flush); err != nil || res.Scope != "everything" {
		t.Errorf("FlushCache = %+v, %v", res, err)
	}
	if len(api.flushed) != 1 || !reflect.DeepEqual(api.flushed[0], flush) {
		t.Errorf("node got FlushCache %+v, want %+v", api.flushed, flush)
	}
}

func TestClientAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want APIError
	}{
		{"unknown group", Errorf(http.StatusNotFound, CodeUnknownGroup, "no group %q", "g9"),
			APIError{Status: 404, Code: CodeUnknownGroup, Message: `no group "g9"`}},
		{"owns shards", Errorf(http.StatusConflict, CodeOwnsShards, "group g0 owns shards 0-7"),
			APIError{Status: 409, Code: CodeOwnsShards, Message: "group g0 owns shards 0-7"}},
		{"epoch conflict", Errorf(http.StatusConflict, CodeEpochConflict, "the catalog is at epoch 5"),
			APIError{Status: 409, Code: CodeEpochConflict, Message: "the catalog is at epoch 5"}},
		{"no catalog", Errorf(http.StatusConflict, CodeNoCatalog, "no catalog"),
			APIError{Status: 409, Code: CodeNoCatalog, Message: "no catalog"}},
		{"plain error", errors.New("boom"),
			APIError{Status: 500, Code: CodeInternal, Message: "boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serveAPI(t, &fakeAPI{err: tc.err})
			for _, call := range []func() error{
				func() error { _, err := c.Cluster(context.Background()); return err },
				func() error { _, err := c.ShardMap(context.Background()); return err },
				func() error { _, err := c.AddGroup(context.Background(), GroupAddRequest{Name: "x"}); return err },
				func() error { _, err := c.RemoveGroup(context.Background(), "x"); return err },
			} {
				err := call()
				var apiErr *APIError
				if !errors.As(err, &apiErr) {
					t.Fatalf("error %v (%T), want *APIError", err, err)
				}
				if *apiErr != tc.want {
					t.Errorf("error = %+v, want %+v", *apiErr, tc.want)
				}
			}
		})
	}
}

func TestClientNonAPIAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		handler    http.HandlerFunc
		wantStatus int    // 0: not an *APIError
		wantText   string // in the error message
	}{
		{"no API routes", http.NotFound, 404, "404 Not Found: 404 page not found"},
		{"html error", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		}, 502, "502 Bad Gateway: <html>bad gateway</html>"},
		{"json without code", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"x"}`))
		}, 503, "503 Service Unavailable"},
		{"garbage success", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("not json"))
		}, 0, "decode answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(tc.handler)
			t.Cleanup(ts.Close)
			c, err := NewClient(ts.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ShardMap(context.Background())
			if err == nil {
				t.Fatal("ShardMap succeeded")
			}
			var apiErr *APIError
			isAPI := errors.As(err, &apiErr)
			if tc.wantStatus == 0 {
				if isAPI {
					t.Fatalf("error %v is an *APIError", err)
				}
			} else if !isAPI || apiErr.Status != tc.wantStatus || apiErr.Code != "" {
				t.Fatalf("error %v (%T), want *APIError status %d without code", err, err, tc.wantStatus)
			}
			if !strings.Contains(err.Error(), tc.wantText) || !strings.Contains(err.Error(), c.Addr()) {
				t.Errorf("error %q, want it to contain %q and %s", err, tc.wantText, c.Addr())
			}
		})
	}
}

func TestClientUnreachable(t *testing.T) {
	// A port that was just free and is closed again refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c, err := NewClient(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Cluster(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Addr != addr {
		t.Fatalf("error %v (%T), want *UnreachableError for %s", err, err, addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not match ECONNREFUSED", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Errorf("error %v does not hold the dial *net.OpError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, addr) || !strings.Contains(msg, "unreachable") {
		t.Errorf("error %q does not name %s as unreachable", msg, addr)
	}
}

func TestClientTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); ts.Close() })

	// The http.Client's timeout: the node did not answer, so it counts as unreachable.
	c, err := NewClient(ts.URL, &http.Client{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Cluster(context.Background())
	var ue *UnreachableError
	var netErr net.Error
	if !errors.As(err, &ue) || !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("error %v (%T), want an *UnreachableError holding a timeout", err, err)
	}

	// The caller's own cancellation is reported as such, not as an unreachable node.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Cluster(ctx)
	if !errors.Is(err, context.Canceled) || errors.As(err, &ue) {
		t.Fatalf("error %v (%T), want context.Canceled and not *UnreachableError", err, err)
	}
}

// TestClientSendsJSON checks the request the node receives for a group add.
func TestClientSendsJSON(t *testing.T) {
	var gotMethod, gotPath, gotType string
	var gotBody map[string]any
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotMethod, gotPath, gotType = r.Method, r.URL.Path, r.Header.Get("Content-Type")
		_ = json.NewDecoder(r.Body).Decode(&gotBody)
		_, _ = w.Write([]byte(`{"epoch":7}`))
	}))
	t.Cleanup(ts.Close)
	c, err := NewClient(strings.TrimPrefix(ts.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.AddGroup(context.Background(), GroupAddRequest{Name: "g2", Region: "eu", Writer: "h:1"})
	if err != nil || v.Epoch != 7 {
		t.Fatalf("AddGroup = epoch %d, %v; want 7", v.Epoch, err)
	}
	want := map[string]any{"name": "g2", "region": "eu", "writer": "h:1"}
	if gotMethod != http.MethodPost || gotPath != PathGroups || gotType != "application/json" || !reflect.DeepEqual(gotBody, want) {
		t.Errorf("node got %s %s (%s) %v, want POST %s (application/json) %v", gotMethod, gotPath, gotType, gotBody, PathGroups, want)
	}
}
