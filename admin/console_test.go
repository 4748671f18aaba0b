package admin

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		sql     string
		want    Command
		wantErr string // a substring of the message; "" for success
	}{
		{sql: "SHOW POOLS", want: Command{Verb: "SHOW", Object: "POOLS"}},
		{sql: "show pools;", want: Command{Verb: "SHOW", Object: "POOLS"}},
		{sql: "  Show   Shards ; ", want: Command{Verb: "SHOW", Object: "SHARDS"}},
		{sql: "show clients", want: Command{Verb: "SHOW", Object: "CLIENTS"}},
		{sql: "SHOW servers", want: Command{Verb: "SHOW", Object: "SERVERS"}},
		{sql: "show stats", want: Command{Verb: "SHOW", Object: "STATS"}},
		{sql: "show groups", want: Command{Verb: "SHOW", Object: "GROUPS"}},
		{sql: "show cluster", want: Command{Verb: "SHOW", Object: "CLUSTER"}},
		{sql: "show cache", want: Command{Verb: "SHOW", Object: "CACHE"}},
		{sql: "show config", want: Command{Verb: "SHOW", Object: "CONFIG"}},
		{sql: "reload", want: Command{Verb: "RELOAD"}},
		{sql: "RELOAD;", want: Command{Verb: "RELOAD"}},
		{sql: "pause", want: Command{Verb: "PAUSE"}},
		{sql: "PAUSE App;", want: Command{Verb: "PAUSE", Database: "app"}},
		{sql: `PAUSE "App"`, want: Command{Verb: "PAUSE", Database: "App"}},
		{sql: "resume app", want: Command{Verb: "RESUME", Database: "app"}},
		{sql: "resume", want: Command{Verb: "RESUME"}},
		{sql: "SHOW", wantErr: "SHOW takes one of"},
		{sql: "SHOW TABLES", wantErr: `unknown SHOW command "TABLES"`},
		{sql: "SHOW POOLS extra", wantErr: "SHOW takes one of"},
		{sql: "SELECT 1", wantErr: `unknown admin console command "SELECT"`},
		{sql: "RELOAD now", wantErr: "RELOAD takes no argument"},
		{sql: "PAUSE a b", wantErr: "at most one database"},
		{sql: `PAUSE "app`, wantErr: "unterminated"},
		{sql: "SHOW POOLS; SHOW CLIENTS", wantErr: "one command at a time"},
		{sql: ";", wantErr: "empty command"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			got, err := ParseCommand(tc.sql)
			if tc.wantErr != "" {
				var ce *ConsoleError
				if !errors.As(err, &ce) || ce.Code != CodeSyntaxError || !strings.Contains(ce.Message, tc.wantErr) {
					t.Fatalf("ParseCommand(%q) = %+v, %v; want a 42601 error mentioning %q", tc.sql, got, err, tc.wantErr)
				}
				if !strings.Contains(ce.Hint, "SHOW POOLS") || !strings.Contains(ce.Hint, "RESUME [db]") {
					t.Errorf("hint %q does not list the commands", ce.Hint)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseCommand(%q) = %+v, %v; want %+v", tc.sql, got, err, tc.want)
			}
		})
	}
}

// fakeData is a ConsoleData with fixed answers; it records PAUSE, RESUME and RELOAD.
type fakeData struct {
	reloadErr error
	calls     []string
}

func (f *fakeData) Pools(context.Context) ([]PoolRow, error) {
	return []PoolRow{
		{Database: "b", User: "app", Server: "h:2", Size: 25},
		{Database: "a", User: "app", Server: "h:1", ClientsActive: 1, ServersActive: 1, ServersIdle: 2, Size: 25, Paused: true},
	}, nil
}

func (f *fakeData) Clients(context.Context) ([]ClientRow, error) {
	return []ClientRow{{User: "app", Database: "a", State: "idle", Addr: "127.0.0.1:5", PID: 7, TxStatus: "I", PoolMode: "transaction"}}, nil
}

func (f *fakeData) Servers(context.Context) ([]ServerRow, error) {
	return []ServerRow{{User: "app", Database: "a", Server: "h:1", State: "active", PID: 99, ClientPID: 7, Group: "g0", Role: "writer"}}, nil
}

func (f *fakeData) Stats(context.Context) ([]StatRow, error) {
	return []StatRow{{Name: "queries_total", Value: 3, Help: "requests"}}, nil
}

func (f *fakeData) ShardMap(context.Context) (ShardMapView, error) {
	v := ShardMapView{Epoch: 4, DefaultGroup: "g0", Groups: []GroupView{
		{Name: "g0", Region: "us", Writer: "w0:1", Replicas: []string{"r0:1"}, Shards: []int{0, 2, 4, 6, 8, 10, 12, 14}},
		{Name: "g1", Region: "eu", Writer: "w1:1", Shards: []int{1, 3, 5, 7, 9, 11, 13, 15}},
	}}
	for s := range 16 {
		v.Shards = append(v.Shards, ShardView{Shard: s, Group: v.Groups[s%2].Name, State: "active"})
	}
	return v, nil
}

func (f *fakeData) Cluster(context.Context) (ClusterStatus, error) {
	lag := 0.25
	return ClusterStatus{Node: "p0", Members: []MemberStatus{{Name: "p0", State: "alive", Epoch: 4, Self: true}},
		Endpoints: []EndpointStatus{
			{Group: "g0", Addr: "w0:1", Region: "us", Role: "writer", Up: true},
			{Group: "g0", Addr: "r0:1", Region: "us", Role: "replica", Up: true, Banned: true, LagSeconds: &lag},
		}}, nil
}

func (f *fakeData) Cache(context.Context) (CacheStatus, error) {
	return CacheStatus{Enabled: true, Usable: true, Entries: 5, Misses: 2, HitRate: 0.5,
		Layers: []CacheLayerStatus{{Layer: "l1", Hits: 2, HitRate: 0.5}}}, nil
}

func (f *fakeData) Config(context.Context) ([]ConfigRow, error) {
	return []ConfigRow{{Key: "listen", Value: "x"}, {Key: "admin_users[0]", Value: "admin"}}, nil
}

func (f *fakeData) Reload(context.Context) error {
	f.calls = append(f.calls, "reload")
	return f.reloadErr
}

func (f *fakeData) Pause(_ context.Context, db string) error {
	f.calls = append(f.calls, "pause "+db)
	return nil
}

func (f *fakeData) Resume(_ context.Context, db string) error {
	f.calls = append(f.calls, "resume "+db)
	if db == "nope" {
		return errors.New(`database "nope" is not paused`)
	}
	return nil
}

// cell returns a result's value at row r of the named column ("NULL" for null).
func cell(t *testing.T, res Result, r int, col string) string {
	t.Helper()
	for i, c := range res.Columns {
		if c == col {
			if v := res.Rows[r][i]; v != nil {
				return *v
			}
			return "NULL"
		}
	}
	t.Fatalf("no column %q in %v", col, res.Columns)
	return ""
}

func TestConsoleResults(t *testing.T) {
	ctx := context.Background()
	c := NewConsole(&fakeData{})
	for _, tc := range []struct {
		sql   string
		cols  []string // leading columns
		rows  int
		check func(t *testing.T, res Result)
	}{
		{sql: "SHOW POOLS", cols: []string{"database", "user", "server", "cl_active"}, rows: 2, check: func(t *testing.T, res Result) {
			if cell(t, res, 0, "database") != "a" || cell(t, res, 0, "sv_idle") != "2" || cell(t, res, 0, "paused") != "true" {
				t.Errorf("pools not sorted or wrong: %v", res.Rows)
			}
		}},
		{sql: "SHOW CLIENTS", cols: []string{"user", "database", "state"}, rows: 1, check: func(t *testing.T, res Result) {
			if cell(t, res, 0, "pid") != "7" || cell(t, res, 0, "server") != "NULL" {
				t.Errorf("client row: %v", res.Rows[0])
			}
		}},
		{sql: "SHOW SERVERS", cols: []string{"user", "database", "server"}, rows: 1, check: func(t *testing.T, res Result) {
			if cell(t, res, 0, "client_pid") != "7" || cell(t, res, 0, "role") != "writer" {
				t.Errorf("server row: %v", res.Rows[0])
			}
		}},
		{sql: "SHOW STATS", cols: []string{"stat", "value"}, rows: 1},
		{sql: "show shards;", cols: []string{"shard", "group", "region", "state", "epoch"}, rows: 16, check: func(t *testing.T, res Result) {
			if cell(t, res, 15, "shard") != "15" || cell(t, res, 15, "group") != "g1" || cell(t, res, 15, "region") != "eu" ||
				cell(t, res, 3, "epoch") != "4" || cell(t, res, 3, "state") != "active" {
				t.Errorf("shard rows: %v", res.Rows)
			}
		}},
		{sql: "SHOW GROUPS", cols: []string{"group", "region", "endpoint", "role", "health", "lag_seconds"}, rows: 3, check: func(t *testing.T, res Result) {
			// two endpoints from the health checker, and g1's writer that it does not watch
			if cell(t, res, 1, "health") != "banned" || cell(t, res, 1, "lag_seconds") != "0.25" || cell(t, res, 0, "lag_seconds") != "NULL" {
				t.Errorf("group rows: %v", res.Rows)
			}
			if cell(t, res, 2, "group") != "g1" || cell(t, res, 2, "health") != "unknown" || cell(t, res, 2, "shards") != "1,3,5,7,9,11,13,15" {
				t.Errorf("unwatched group row: %v", res.Rows[2])
			}
		}},
		{sql: "SHOW CLUSTER", cols: []string{"name", "state"}, rows: 1},
		{sql: "SHOW CACHE", cols: []string{"layer", "enabled"}, rows: 2, check: func(t *testing.T, res Result) {
			if cell(t, res, 0, "hit_rate") != "0.5" || cell(t, res, 1, "layer") != "l1" {
				t.Errorf("cache rows: %v", res.Rows)
			}
		}},
		{sql: "SHOW CONFIG", cols: []string{"key", "value"}, rows: 2, check: func(t *testing.T, res Result) {
			if cell(t, res, 0, "key") != "admin_users[0]" {
				t.Errorf("config not sorted: %v", res.Rows)
			}
		}},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			res, err := c.Run(ctx, tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if res.Tag != "SHOW" || len(res.Rows) != tc.rows || len(res.Columns) < len(tc.cols) {
				t.Fatalf("tag %q, %d rows, columns %v", res.Tag, len(res.Rows), res.Columns)
			}
			for i, col := range tc.cols {
				if res.Columns[i] != col {
					t.Fatalf("columns %v, want leading %v", res.Columns, tc.cols)
				}
			}
			for _, row := range res.Rows {
				if len(row) != len(res.Columns) {
					t.Fatalf("row %v has %d values for %d columns", row, len(row), len(res.Columns))
				}
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

func TestConsoleActions(t *testing.T) {
	ctx := context.Background()
	f := &fakeData{}
	c := NewConsole(f)
	for _, sql := range []string{"PAUSE app", "RESUME app", "PAUSE", "RESUME", "RELOAD"} {
		res, err := c.Run(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if res.Tag != strings.Fields(sql)[0] || res.Columns != nil {
			t.Errorf("%s: result %+v", sql, res)
		}
		if strings.HasPrefix(sql, "PAUSE") && !strings.Contains(res.Notice, "waits until RESUME") {
			t.Errorf("%s: notice %q", sql, res.Notice)
		}
	}
	want := []string{"pause app", "resume app", "pause ", "resume ", "reload"}
	if strings.Join(f.calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", f.calls, want)
	}

	// Failures carry 55000 and say what happened.
	f.reloadErr = errors.New("config app.yaml: listen: bad")
	_, err := c.Run(ctx, "RELOAD")
	var ce *ConsoleError
	if !errors.As(err, &ce) || ce.Code != CodeConsoleFailed || !strings.Contains(ce.Message, "running configuration stays") {
		t.Errorf("failed reload = %v", err)
	}
	if _, err := c.Run(ctx, "RESUME nope"); !errors.As(err, &ce) || !strings.Contains(ce.Message, "not paused") {
		t.Errorf("failed resume = %v", err)
	}
	if _, err := c.Run(ctx, "DROP DATABASE x"); !errors.As(err, &ce) || ce.Code != CodeSyntaxError {
		t.Errorf("unknown command = %v", err)
	}
}
