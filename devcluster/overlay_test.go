package devcluster

import (
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/config"
)

func testBase() config.Config {
	cfg := config.Default()
	cfg.Users = []config.User{{Name: "app", Password: "app"}}
	cfg.Groups = []config.Group{{Name: "g0", Region: "us-east-1", Writer: "127.0.0.1:5432"}}
	return cfg
}

func TestApplyOverlay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overlay string
		check   func(t *testing.T, c config.Config)
		wantErr string
	}{
		{name: "empty", check: func(t *testing.T, c config.Config) {
			if c.Pool.DefaultPoolSize != 25 || c.Pool.QueryWaitTimeout.D() != 120*time.Second || c.Groups[0].Writer != "127.0.0.1:5432" {
				t.Errorf("generated config changed: %+v", c)
			}
		}},
		{name: "nested pool keys merge", overlay: "pool:\n  default_pool_size: 10\n  mode: session\n  query_wait_timeout: 3s\n",
			check: func(t *testing.T, c config.Config) {
				if c.Pool.DefaultPoolSize != 10 || c.Pool.Mode != config.PoolModeSession || c.Pool.QueryWaitTimeout.D() != 3*time.Second {
					t.Errorf("pool = %+v", c.Pool)
				}
				if c.Pool.ServerResetQuery != "DISCARD ALL" || c.Pool.MaxPreparedStatements != 200 {
					t.Errorf("untouched pool keys lost: %+v", c.Pool)
				}
			}},
		{name: "lists replace", overlay: "users:\n  - {name: bob, password: secret}\n",
			check: func(t *testing.T, c config.Config) {
				if len(c.Users) != 1 || c.Users[0].Name != "bob" {
					t.Errorf("users = %+v", c.Users)
				}
			}},
		{name: "unknown top-level key", overlay: "pool_size: 3\n", wantErr: "pool_size"},
		{name: "unknown nested key", overlay: "pool:\n  size: 3\n", wantErr: "size"},
		{name: "invalid value", overlay: "pool:\n  mode: sometimes\n", wantErr: "sometimes"},
		{name: "not a map", overlay: "- 1\n", wantErr: "overlay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := applyOverlay(testBase(), []byte(tc.overlay))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
