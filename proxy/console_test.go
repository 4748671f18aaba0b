package proxy

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

const (
	consoleAdmin    = "opsadmin"
	consolePassword = "ops-secret"
)

// startConsoleProxy starts a proxy with an admin user and a short query_wait_timeout (a
// login to a paused database gives up quickly).
func startConsoleProxy(t *testing.T) *testProxy {
	return startProxy(t, func(c *config.Config) {
		c.Users = append(c.Users, config.User{Name: consoleAdmin, Password: consolePassword})
		c.AdminUsers = []string{consoleAdmin}
		c.Pool.QueryWaitTimeout = config.Duration(2 * time.Second)
	})
}

// consoleDSN is a URL for the admin console as user with password, in pgx's simple
// protocol mode unless extended.
func (p *testProxy) consoleDSN(user, password string, extended bool) string {
	u := fmt.Sprintf("postgres://%s:%s@%s/shardwire?sslmode=disable", user, password, p.addr)
	if !extended {
		u += "&default_query_exec_mode=simple_protocol"
	}
	return u
}

// consoleQuery runs a console command and returns its rows as column name → value maps.
func consoleQuery(t *testing.T, c *pgx.Conn, sql string) []map[string]string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		m := map[string]string{}
		for i, f := range rows.FieldDescriptions() {
			if vals[i] == nil {
				m[f.Name] = "NULL"
			} else {
				m[f.Name] = fmt.Sprint(vals[i])
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestConsoleShowsSessions(t *testing.T) {
	p := startConsoleProxy(t)
	ctx := context.Background()

	// An application client inside a transaction holds a server connection.
	app := connect(t, p.dsn(""))
	if _, err := app.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var backendPID int64
	if err := app.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backendPID); err != nil {
		t.Fatal(err)
	}
	appPID := strconv.FormatUint(uint64(app.PgConn().PID()), 10)

	adm := connect(t, p.consoleDSN(consoleAdmin, consolePassword, false))

	clients := consoleQuery(t, adm, "SHOW CLIENTS")
	if len(clients) != 1 {
		t.Fatalf("SHOW CLIENTS = %v, want the one application client", clients)
	}
	if c := clients[0]; c["user"] != pgtest.User || c["database"] != pgtest.Database || c["state"] != "active" ||
		c["tx_status"] != "T" || c["pid"] != appPID || c["server"] != p.directAddr() {
		t.Errorf("client row %v (client pid %s)", c, appPID)
	}

	servers := consoleQuery(t, adm, "show servers;")
	if len(servers) != 1 {
		t.Fatalf("SHOW SERVERS = %v, want one attached server", servers)
	}
	if s := servers[0]; s["client_pid"] != appPID || s["pid"] != strconv.FormatInt(backendPID, 10) ||
		s["server"] != p.directAddr() || s["group"] != "g0" || s["role"] != "writer" || s["state"] != "active" {
		t.Errorf("server row %v (backend pid %d)", s, backendPID)
	}

	pools := consoleQuery(t, adm, "Show Pools")
	if len(pools) != 1 {
		t.Fatalf("SHOW POOLS = %v, want one pool", pools)
	}
	if pl := pools[0]; pl["database"] != pgtest.Database || pl["user"] != pgtest.User || pl["cl_active"] != "1" ||
		pl["sv_active"] != "1" || pl["paused"] != "false" {
		t.Errorf("pool row %v", pl)
	}

	// The transaction ends: the connection goes back to the pool.
	if _, err := app.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the server connection to go idle", func() bool {
		pl := consoleQuery(t, adm, "SHOW POOLS")
		return len(pl) == 1 && pl[0]["sv_active"] == "0" && pl[0]["sv_idle"] == "1" && pl[0]["cl_active"] == "0"
	})
	if s := consoleQuery(t, adm, "SHOW SERVERS"); len(s) != 0 {
		t.Errorf("SHOW SERVERS after COMMIT = %v, want none attached", s)
	}

	shards := consoleQuery(t, adm, "SHOW SHARDS")
	if len(shards) != 16 {
		t.Fatalf("SHOW SHARDS has %d rows, want 16", len(shards))
	}
	for i, s := range shards {
		if s["shard"] != strconv.Itoa(i) || s["group"] != "g0" || s["state"] != "active" || s["epoch"] == "" {
			t.Errorf("shard row %d: %v", i, s)
		}
	}
	groups := consoleQuery(t, adm, "SHOW GROUPS")
	if len(groups) != 1 || groups[0]["endpoint"] != p.directAddr() || groups[0]["role"] != "writer" || groups[0]["health"] != "up" {
		t.Errorf("SHOW GROUPS = %v", groups)
	}
	stats := consoleQuery(t, adm, "SHOW STATS")
	got := map[string]string{}
	for _, s := range stats {
		got[s["stat"]] = s["value"]
	}
	if n, _ := strconv.Atoi(got["queries_total"]); n < 2 {
		t.Errorf("SHOW STATS queries_total = %q, want the queries run counted (%v)", got["queries_total"], got)
	}
	if cl := consoleQuery(t, adm, "SHOW CLUSTER"); len(cl) != 1 || cl[0]["self"] != "true" {
		t.Errorf("SHOW CLUSTER = %v", cl)
	}
	if c := consoleQuery(t, adm, "SHOW CACHE"); len(c) != 1 || c[0]["enabled"] != "false" || c[0]["layer"] != "all" {
		t.Errorf("SHOW CACHE = %v", c)
	}
	cfg := consoleQuery(t, adm, "SHOW CONFIG")
	var sawAdmin bool
	for _, r := range cfg {
		if strings.Contains(r["value"], consolePassword) || strings.Contains(r["value"], pgtest.Password) && strings.HasSuffix(r["key"], "password") {
			t.Errorf("SHOW CONFIG leaks a password: %v", r)
		}
		sawAdmin = sawAdmin || (r["key"] == "admin_users[0]" && r["value"] == consoleAdmin)
	}
	if !sawAdmin {
		t.Errorf("SHOW CONFIG lacks admin_users: %v", cfg)
	}
}

func TestConsoleRefusals(t *testing.T) {
	p := startConsoleProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A user that is not an admin is refused with 42501 after authenticating.
	_, err := pgx.Connect(ctx, p.consoleDSN(pgtest.User, pgtest.Password, false))
	if pgCode(err) != "42501" {
		t.Fatalf("non-admin login to shardwire = %v, want 42501", err)
	}
	// A wrong password stays an authentication failure.
	if _, err := pgx.Connect(ctx, p.consoleDSN(consoleAdmin, "wrong", false)); pgCode(err) != "28P01" {
		t.Fatalf("admin login with a wrong password = %v, want 28P01", err)
	}

	adm := connect(t, p.consoleDSN(consoleAdmin, consolePassword, false))
	_, err = adm.Exec(ctx, "SHOW TABLES")
	if pgCode(err) != "42601" || !strings.Contains(err.Error(), "SHOW TABLES") && !strings.Contains(err.Error(), "TABLES") {
		t.Fatalf("unknown command = %v, want 42601", err)
	}
	// The session stays usable after an error.
	if rows := consoleQuery(t, adm, "SHOW SHARDS;"); len(rows) != 16 {
		t.Fatalf("SHOW SHARDS after an error: %d rows", len(rows))
	}

	// The extended protocol is refused with 0A000, and the session stays usable.
	ext := connect(t, p.consoleDSN(consoleAdmin, consolePassword, true))
	rows, err := ext.Query(ctx, "SHOW POOLS") // Parse, Describe, Sync
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if pgCode(err) != "0A000" || !strings.Contains(err.Error(), "simple query protocol") {
		t.Fatalf("extended protocol = %v, want 0A000", err)
	}
	rows, err = ext.Query(ctx, "SHOW SHARDS", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if rows.Err() != nil || n != 16 {
		t.Fatalf("simple query after a refused extended one: %d rows, %v", n, rows.Err())
	}
}

func TestConsoleReloadAndPause(t *testing.T) {
	p := startConsoleProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := connect(t, p.consoleDSN(consoleAdmin, consolePassword, false))

	// RELOAD applies the configuration source: a new user can log in afterwards.
	next := *p.srv.config()
	next.Users = append(append([]config.User{}, next.Users...), config.User{Name: "carol", Password: pgtest.Password,
		ServerUser: pgtest.User, ServerPassword: pgtest.Password})
	p.srv.SetConfigSource(func() (config.Config, error) { return next, nil })
	carol := fmt.Sprintf("postgres://carol:%s@%s/%s?sslmode=disable", pgtest.Password, p.addr, pgtest.Database)
	if _, err := pgx.Connect(ctx, carol); pgCode(err) != "28P01" {
		t.Fatalf("carol before RELOAD: %v, want 28P01", err)
	}
	if _, err := adm.Exec(ctx, "RELOAD"); err != nil {
		t.Fatalf("RELOAD: %v", err)
	}
	c, err := pgx.Connect(ctx, carol)
	if err != nil {
		t.Fatalf("carol after RELOAD: %v", err)
	}
	_ = c.Close(ctx)

	// A reload that fails validation keeps the running configuration.
	bad := next
	bad.AdminUsers = []string{"nobody"}
	p.srv.SetConfigSource(func() (config.Config, error) { return bad, nil })
	if _, err := adm.Exec(ctx, "reload;"); pgCode(err) != "55000" || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("invalid RELOAD = %v, want 55000 naming the problem", err)
	}
	if rows := consoleQuery(t, adm, "SHOW SHARDS"); len(rows) != 16 {
		t.Fatal("console unusable after a failed reload")
	}

	// PAUSE: new logins to the database wait, then fail with a retryable error; RESUME lets
	// them in. A waiting login completes when RESUME comes. So do new transactions of
	// sessions already logged in.
	open := connect(t, p.dsn(""))
	if _, err := open.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Exec(ctx, "PAUSE "+pgtest.Database); err != nil {
		t.Fatalf("PAUSE: %v", err)
	}
	if pl := consoleQuery(t, adm, "SHOW POOLS"); len(pl) == 0 || pl[0]["paused"] != "true" {
		t.Errorf("SHOW POOLS while paused = %v", pl)
	}
	start := time.Now()
	_, err = pgx.Connect(ctx, p.dsn(""))
	if pgCode(err) != "57P03" || time.Since(start) < time.Second {
		t.Fatalf("login while paused = %v after %s, want 57P03 after query_wait_timeout", err, time.Since(start))
	}
	start = time.Now()
	if _, err := open.Exec(ctx, "SELECT 1"); pgCode(err) != "57P03" || time.Since(start) < time.Second {
		t.Fatalf("a logged-in session's new transaction while paused = %v after %s, want 57P03 after query_wait_timeout", err, time.Since(start))
	}
	done := make(chan error, 1)
	go func() {
		c, err := pgx.Connect(ctx, p.dsn(""))
		if err == nil {
			_ = c.Close(ctx)
		}
		done <- err
	}()
	queried := make(chan error, 1)
	go func() {
		_, err := open.Exec(ctx, "SELECT 1")
		queried <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("login finished while paused: %v", err)
	case err := <-queried:
		t.Fatalf("a transaction ran while paused: %v", err)
	case <-time.After(300 * time.Millisecond): // both are waiting (their timeout is 2 s)
	}
	if _, err := adm.Exec(ctx, "RESUME "+pgtest.Database); err != nil {
		t.Fatalf("RESUME: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("login after RESUME: %v", err)
	}
	if err := <-queried; err != nil {
		t.Fatalf("a session's transaction after RESUME: %v", err)
	}
	if _, err := adm.Exec(ctx, "RESUME "+pgtest.Database); pgCode(err) != "55000" {
		t.Fatalf("RESUME of a running database = %v, want 55000", err)
	}
	if _, err := adm.Exec(ctx, "PAUSE shardwire"); pgCode(err) != "55000" {
		t.Fatalf("PAUSE shardwire = %v, want 55000", err)
	}
}

func TestConsolePsql(t *testing.T) {
	psql := psqlPath(t)
	p := startConsoleProxy(t)
	host, port, err := net.SplitHostPort(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	run := func(user, password, command string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-h", host, "-p", port, "-U", user, "-c", command, "shardwire")
		cmd.Env = append(psqlEnv(), "PGPASSWORD="+password)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(consoleAdmin, consolePassword, "show shards")
	if err != nil {
		t.Fatalf("psql -c 'show shards': %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 16 || !strings.HasPrefix(lines[15], "15|g0|") {
		t.Errorf("psql SHOW SHARDS output:\n%s", out)
	}
	out, err = run(consoleAdmin, consolePassword, "SHOW VERSION")
	if err == nil || !strings.Contains(out, "SHOW POOLS") {
		t.Errorf("psql unknown command: %v\n%s (want an error with the command list)", err, out)
	}
	out, err = run(pgtest.User, pgtest.Password, "SHOW POOLS")
	if err == nil || !strings.Contains(out, "admin_users") {
		t.Errorf("psql as a non-admin: %v\n%s", err, out)
	}
}

// directAddr is the writer's address as the proxy names it.
func (p *testProxy) directAddr() string { return p.cluster.Groups[0].Writer.Addr() }
