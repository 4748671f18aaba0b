package devcluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestStartTwoProxies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := Start(ctx, Options{Proxies: 2, Logf: t.Logf,
		Overlay: []byte("pool:\n  default_pool_size: 3\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	if len(c.Nodes) != 2 || c.Nodes[1].Name != "p1" || c.Nodes[0].Config.Pool.DefaultPoolSize != 3 {
		t.Fatalf("nodes = %+v", c.Nodes)
	}
	for _, n := range c.Nodes {
		conn, err := pgconn.Connect(ctx, n.DSN())
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		res, err := conn.Exec(ctx, "select 40 + 2").ReadAll()
		conn.Close(ctx)
		if err != nil || string(res[0].Rows[0][0]) != "42" {
			t.Fatalf("%s: select = %v, %v", n.Name, res, err)
		}
		resp, err := http.Get("http://" + n.Admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s /readyz = %d", n.Name, resp.StatusCode)
		}
		resp, err = http.Get("http://" + n.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "shardwire_clients_active") {
			t.Fatalf("%s /metrics lacks shardwire_clients_active", n.Name)
		}
	}

	path := filepath.Join(dir, "cluster.json")
	if err := c.WriteInfo(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	if info.User != "app" || info.Password != "app" || info.Database != "app" ||
		len(info.Proxies) != 2 || info.Proxies[0].Addr != c.Nodes[0].Addr ||
		len(info.Groups) != 1 || !strings.HasPrefix(info.Groups[0].Writer, "postgres://app:app@127.0.0.1:") {
		t.Fatalf("cluster.json = %s", data)
	}
}

func TestStartRejectsBadOverlay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := Start(ctx, Options{Overlay: []byte("nope: 1\n"), Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want one naming the unknown key", err)
	}
}
