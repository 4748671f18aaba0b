package node_test

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/netfault"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/node"
)

// TestThreeNodes runs three gossiping nodes over two shard groups (a third Postgres server
// stands by to be added as a group): a is plain, b's gossip can be blocked, c reaches the
// catalog through a relay that can be cut.
func TestThreeNodes(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{Groups: 3})
	spare := pg.Groups[2]
	pg2 := &pgtest.Cluster{Groups: pg.Groups[:2]}

	// a and b poll the catalog only every 5 s: a new epoch reaching them within 1 s came by
	// gossip or LISTEN/NOTIFY.
	slowPoll := func(cfg *config.Config) {
		cfg.Catalog.PollInterval = config.Duration(5 * time.Second)
		cfg.Catalog.LeaseTTL = config.Duration(15 * time.Second)
	}
	start := time.Now()
	cfgA := baseConfig(pg2, "a")
	slowPoll(&cfgA)
	a := startNode(t, cfgA, node.Options{})

	bTransport, err := netfault.NewTransport()
	if err != nil {
		t.Fatal(err)
	}
	cfgB := baseConfig(pg2, "b")
	slowPoll(&cfgB)
	cfgB.Cluster.Seeds = []string{a.gossipAddr()}
	b := startNode(t, cfgB, node.Options{GossipTransport: bTransport})

	catalogRelay, err := netfault.NewRelay(func() string { return pg.Groups[0].Writer.Addr() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalogRelay.Close() })
	cfgC := baseConfig(pg2, "c")
	cfgC.Catalog.DSN = strings.Replace(cfgC.Catalog.DSN, pg.Groups[0].Writer.Addr(), catalogRelay.Addr(), 1)
	cfgC.Catalog.PollInterval = config.Duration(250 * time.Millisecond)
	cfgC.Catalog.LeaseTTL = config.Duration(1500 * time.Millisecond)
	cfgC.Cluster.Seeds = []string{a.gossipAddr(), b.gossipAddr()}
	c := startNode(t, cfgC, node.Options{})
	nodes := []*testNode{a, b, c}

	t.Run("converge", func(t *testing.T) {
		for _, n := range nodes {
			waitFor(t, 2*time.Second-time.Since(start), n.name+" to list all three alive", func() bool {
				al := alive(n)
				return al["a"] && al["b"] && al["c"]
			})
		}
		t.Logf("converged %s after start", time.Since(start).Round(time.Millisecond))
		// The admin API shows the same picture, with each member's addresses and epoch.
		var st admin.ClusterStatus
		waitFor(t, 10*time.Second, "every member to publish its epoch and lease", func() bool {
			if err := apiCall(context.Background(), a.admin, http.MethodGet, admin.PathCluster, nil, &st); err != nil {
				t.Fatal(err)
			}
			if len(st.Members) != 3 {
				return false
			}
			for _, m := range st.Members {
				if m.State != "alive" || m.Epoch != epoch(a) || !m.LeaseOK || m.PgAddr == "" || m.AdminAddr == "" {
					return false
				}
			}
			return true
		})
		if st.Node != "a" || !st.Members[0].Self || st.Members[1].Name != "b" || len(st.Endpoints) != 2 {
			t.Fatalf("cluster status from a = %+v", st)
		}
	})

	t.Run("wrong gossip key", func(t *testing.T) {
		cfg := baseConfig(pg2, "intruder")
		cfg.Cluster.SecretKey = base64.StdEncoding.EncodeToString([]byte("another key, 32 bytes long......"))
		cfg.Cluster.Seeds = []string{a.gossipAddr()}
		x := startNode(t, cfg, node.Options{})
		waitFor(t, 5*time.Second, "the intruder to log why it was not admitted", func() bool {
			return x.logs.FilterMessage("join failed").FilterFieldKey("error").Len() > 0
		})
		for _, e := range x.logs.FilterMessage("join failed").All() {
			if msg := e.ContextMap()["error"].(string); !strings.Contains(msg, "SecretKey") {
				t.Fatalf("join failure does not point at the key: %s", msg)
			}
		}
		for _, n := range nodes {
			if alive(n)["intruder"] {
				t.Fatalf("%s admitted a node with another gossip key", n.name)
			}
		}
		if al := alive(x); len(al) != 1 {
			t.Fatalf("the intruder sees %v", al)
		}
		x.shutdown()
	})

	// Schema for the routed statements below, created through a (DDL goes to every group).
	ac := pgtest.Connect(t, a.dsn())
	if _, err := ac.Exec(context.Background(), "CREATE TABLE invoices (customer_id bigint, amount int)"); err != nil {
		t.Fatal(err)
	}

	t.Run("cancel through another node", func(t *testing.T) { testCrossNodeCancel(t, a, b) })

	t.Run("epoch reaches every node, one without gossip", func(t *testing.T) {
		bTransport.Block()
		defer bTransport.Unblock()
		before := epoch(a)
		notifiedB := counter(t, b, "shardwire_shardmap_polls_total", map[string]string{"trigger": "notify"})
		var view admin.ShardMapView
		req := admin.GroupAddRequest{Name: "g9", Region: "eu-west-1", Writer: spare.Writer.Addr()}
		if err := apiCall(context.Background(), a.admin, http.MethodPost, admin.PathGroups, req, &view); err != nil {
			t.Fatalf("add group: %v", err)
		}
		if view.Epoch != before+1 || view.Groups[2].Name != "g9" || len(view.Groups[2].Shards) != 0 {
			t.Fatalf("published map = %+v, want epoch %d with an empty g9", view, before+1)
		}
		published := time.Now()
		for _, n := range nodes {
			waitFor(t, time.Second-time.Since(published), n.name+" to load epoch "+itoa(view.Epoch), func() bool {
				return epoch(n) == view.Epoch
			})
		}
		t.Logf("all nodes on epoch %d %s after the publish", view.Epoch, time.Since(published).Round(time.Millisecond))
		if got := counter(t, b, "shardwire_shardmap_polls_total", map[string]string{"trigger": "notify"}); got <= notifiedB {
			t.Fatalf("b (gossip blocked) loaded the epoch without a LISTEN notification (notify polls %v → %v)", notifiedB, got)
		}
		// The same change again loses: the group exists now.
		err := apiCall(context.Background(), b.admin, http.MethodPost, admin.PathGroups, req, &view)
		if ae, ok := err.(*admin.APIError); !ok || ae.Code != admin.CodeGroupExists {
			t.Fatalf("adding g9 twice: %v, want %s", err, admin.CodeGroupExists)
		}
	})

	t.Run("lease expires without the catalog", func(t *testing.T) {
		cc := pgtest.Connect(t, c.dsn())
		ctx := context.Background()
		routed := "SELECT count(*) FROM invoices WHERE customer_id = 5"
		if _, err := cc.Exec(ctx, routed); err != nil {
			t.Fatalf("routed read through c: %v", err)
		}
		catalogRelay.Cut()
		cut := time.Now()
		var refusedAfter time.Duration
		waitFor(t, 5*time.Second, "c to refuse routed work", func() bool {
			_, err := cc.Exec(ctx, routed)
			if err == nil {
				return false
			}
			if code := pgtest.SQLState(err); code != "57P03" {
				t.Fatalf("routed read on c after the cut: %v (SQLSTATE %s), want 57P03", err, code)
			}
			refusedAfter = time.Since(cut)
			return true
		})
		if refusedAfter < 1000*time.Millisecond {
			t.Fatalf("c refused %s after the cut, before its 1.5 s lease could have expired", refusedAfter)
		}
		// Work that needs no map still runs; the other nodes route as before.
		if _, err := cc.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("SELECT 1 on c with an expired lease: %v", err)
		}
		if _, err := ac.Exec(ctx, routed); err != nil {
			t.Fatalf("routed read on a: %v", err)
		}
		if got := counter(t, c, "shardwire_lease_refusals_total", nil); got < 1 {
			t.Fatalf("lease refusals on c = %v", got)
		}
		waitFor(t, 10*time.Second, "a to see c's lease lost and c not ready", func() bool {
			var st admin.ClusterStatus
			if err := apiCall(ctx, a.admin, http.MethodGet, admin.PathCluster, nil, &st); err != nil {
				t.Fatal(err)
			}
			return !st.Members[2].LeaseOK && !st.Members[2].Ready
		})
		if resp, err := http.Get("http://" + c.admin + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("c /readyz with an expired lease: %v %v, want 503", resp, err)
		}

		catalogRelay.Restore()
		waitFor(t, 5*time.Second, "c to route again", func() bool {
			_, err := cc.Exec(ctx, routed)
			return err == nil
		})
	})
}

// testCrossNodeCancel: a client behind a round-robin balancer runs pg_sleep(30) on a; its
// driver's cancel request lands on b, which forwards it to a.
func testCrossNodeCancel(t *testing.T, a, b *testNode) {
	lb := &lbRelay{targets: []string{a.pg, b.pg}}
	relay, err := netfault.NewRelay(lb.pick)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	// The driver cancels a query whose context ends with a CancelRequest (pgx's default only
	// breaks the connection).
	cfg, err := pgx.ParseConfig(strings.Replace(a.dsn(), a.pg, relay.Addr(), 1))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 5 * time.Second}
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg) // connection 0: a
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	pid, secret := conn.PgConn().PID(), conn.PgConn().SecretKey()

	// The driver cancels when the context ends: its cancel connection is the balancer's next,
	// which goes to b.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = conn.Exec(ctx, "SELECT pg_sleep(30)")
	elapsed := time.Since(start)
	if code := pgtest.SQLState(err); code != "57014" {
		t.Fatalf("pg_sleep(30) cancelled through b: err = %v (SQLSTATE %q), want 57014", err, code)
	}
	if elapsed > 300*time.Millisecond+time.Second {
		t.Fatalf("cancel took %s after the request, want under 1 s", elapsed-300*time.Millisecond)
	}
	if got := counter(t, b, "shardwire_cluster_cancels_forwarded_total", map[string]string{"result": "sent"}); got != 1 {
		t.Fatalf("b forwarded %v cancels, want 1", got)
	}

	// A cancel with the right pid but a wrong secret, sent to b while a query runs on a,
	// cancels nothing: the query finishes normally.
	conn2 := pgtest.Connect(t, a.dsn())
	pid2, secret2 := conn2.PgConn().PID(), conn2.PgConn().SecretKey()
	done := make(chan error, 1)
	go func() {
		_, err := conn2.Exec(context.Background(), "SELECT pg_sleep(1.5)")
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the query start; a cancel before it would be a no-op anyway
	sendCancel(t, b.pg, pid2, wrongSecret(secret2))
	sendCancel(t, b.pg, pid^1, secret) // another pid with a live session's secret
	if err := <-done; err != nil {
		t.Fatalf("query with wrong-key cancels sent to b: %v, want it to finish", err)
	}
	waitFor(t, 2*time.Second, "a to count the unknown keys", func() bool {
		return counter(t, a, "shardwire_cancel_requests_total", map[string]string{"result": "unknown_key"}) >= 1
	})
}

// wrongSecret returns a secret key that differs from s.
func wrongSecret(s []byte) []byte {
	w := append([]byte(nil), s...)
	w[0] ^= 0xff
	return w
}

// sendCancel sends a CancelRequest to addr, as a driver does.
func sendCancel(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	// The server closes the connection once it handled the request.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.Read(make([]byte, 1))
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
