package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultClientTimeout bounds one request of a Client built without an http.Client.
const DefaultClientTimeout = 10 * time.Second

// maxResponseBody caps how much of an admin API answer a Client reads.
const maxResponseBody = 8 << 20

// Client calls a node's admin API. It is safe for concurrent use.
type Client struct {
	base *url.URL // scheme and host of the node's admin listener
	addr string   // what error messages call the node: host:port, or the URL when not http
	hc   *http.Client
}

// NewClient returns a client of the admin API at addr, "host:port" or "http(s)://host:port".
// httpClient carries the requests; nil means a client whose requests time out after
// DefaultClientTimeout.
func NewClient(addr string, httpClient *http.Client) (*Client, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return nil, errors.New("admin client: empty address")
	}
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("admin client: address %q: %w", addr, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("admin client: address %q: scheme %q, want http or https", addr, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("admin client: address %q has no host", addr)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.User != nil:
		return nil, fmt.Errorf("admin client: address %q: want only host:port, without path, query or user", addr)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultClientTimeout}
	}
	name := u.Host
	if u.Scheme != "http" {
		name = u.Scheme + "://" + u.Host
	}
	return &Client{base: &url.URL{Scheme: u.Scheme, Host: u.Host}, addr: name, hc: httpClient}, nil
}

// Addr returns the node's admin address as error messages name it.
func (c *Client) Addr() string { return c.addr }

// Cluster returns the members and backends as the node sees them (GET /api/v1/cluster).
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	err := c.do(ctx, http.MethodGet, PathCluster, nil, &st)
	return st, err
}

// ShardMap returns the shard map the node serves (GET /api/v1/shardmap).
func (c *Client) ShardMap(ctx context.Context) (ShardMapView, error) {
	var v ShardMapView
	err := c.do(ctx, http.MethodGet, PathShardMap, nil, &v)
	return v, err
}

// AddGroup asks the node to publish a map with one more group (POST /api/v1/groups) and
// returns the new map.
func (c *Client) AddGroup(ctx context.Context, req GroupAddRequest) (ShardMapView, error) {
	var v ShardMapView
	err := c.do(ctx, http.MethodPost, PathGroups, req, &v)
	return v, err
}

// RemoveGroup asks the node to publish a map without the named group
// (DELETE /api/v1/groups/{name}) and returns the new map.
func (c *Client) RemoveGroup(ctx context.Context, name string) (ShardMapView, error) {
	var v ShardMapView
	if name == "" {
		return v, errors.New("remove group: empty group name")
	}
	err := c.do(ctx, http.MethodDelete, PathGroups+"/"+url.PathEscape(name), nil, &v)
	return v, err
}

// Cache describes the node's read-through cache (GET /api/v1/cache).
func (c *Client) Cache(ctx context.Context) (CacheStatus, error) {
	var v CacheStatus
	err := c.do(ctx, http.MethodGet, PathCache, nil, &v)
	return v, err
}

// Transactions lists the two-phase transactions (GET /api/v1/transactions).
func (c *Client) Transactions(ctx context.Context) (TransactionsStatus, error) {
	var v TransactionsStatus
	err := c.do(ctx, http.MethodGet, PathTransactions, nil, &v)
	return v, err
}

// FlushCache makes cached replies unreachable cluster-wide (POST /api/v1/cache/flush).
func (c *Client) FlushCache(ctx context.Context, req CacheFlushRequest) (CacheFlushResult, error) {
	var v CacheFlushResult
	err := c.do(ctx, http.MethodPost, PathCacheFlush, req, &v)
	return v, err
}

// UnreachableError is a request that got no HTTP answer from the node: the connection was
// refused, timed out or broke. Unwrap returns the transport's error, so errors.Is and
// errors.As see the underlying net errors.
type UnreachableError struct {
	// Addr is the node's admin address.
	Addr string
	// Err is the transport's error, without the *url.Error wrapper.
	Err error
}

// Error names the address and the cause.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("admin API at %s is unreachable: %v", e.Addr, e.Err)
}

// Unwrap returns the transport's error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// do sends one request for path (escaped) with body (when non-nil) as JSON and decodes a 2xx answer into out.
// A non-2xx answer is returned as an *APIError with its Status set.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	// path is already escaped; the base has no path of its own.
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The caller gave up; that says nothing about the node.
			return fmt.Errorf("%s %s at %s: %w", method, path, c.addr, ctxErr)
		}
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		return &UnreachableError{Addr: c.addr, Err: cause}
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return &UnreachableError{Addr: c.addr, Err: fmt.Errorf("read %s answer: %w", path, err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.apiError(resp, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s at %s: decode answer: %w", method, path, c.addr, err)
	}
	return nil
}

// apiError turns a failed answer into an *APIError. An answer that is not an APIError body
// (a node without the API, or something else listening at the address) keeps an empty Code
// and a message naming the status and the start of the body.
func (c *Client) apiError(resp *http.Response, data []byte) *APIError {
	var e APIError
	if err := json.Unmarshal(data, &e); err == nil && e.Code != "" {
		e.Status = resp.StatusCode
		return &e
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	msg := fmt.Sprintf("admin API at %s answered %s %s", c.addr, resp.Request.Method, resp.Request.URL.Path)
	msg += " with " + resp.Status
	if text != "" {
		msg += ": " + text
	}
	return &APIError{Status: resp.StatusCode, Message: msg}
}
