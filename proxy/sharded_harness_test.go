package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// testRegions are the bootstrap regions of groups g0..g3.
var testRegions = []string{"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"}

// startShardedProxy starts groups shard groups of a writer and replicas each, and a proxy
// in front of them with shards split evenly (4 groups: 0-3 → g0, 4-7 → g1, ...).
func startShardedProxy(t testing.TB, groups, replicas int, tweak func(*config.Config)) *testProxy {
	t.Helper()
	cl := pgtest.New(t, pgtest.Options{Groups: groups, Replicas: replicas})
	return startProxyFor(t, cl, func(cfg *config.Config) {
		cfg.Groups = nil
		for i, g := range cl.Groups {
			cg := config.Group{Name: g.Name, Region: testRegions[i%len(testRegions)], Writer: g.Writer.Addr()}
			for _, r := range g.Replicas {
				cg.Replicas = append(cg.Replicas, r.Addr())
			}
			cfg.Groups = append(cfg.Groups, cg)
		}
		cfg.Region = testRegions[0]
		cfg.Health.Interval = config.Duration(100 * time.Millisecond)
		cfg.Health.BanTime = config.Duration(500 * time.Millisecond)
		if tweak != nil {
			tweak(cfg)
		}
	})
}

// groupOf returns the name of the group owning key in the test layout (shards split evenly).
func (p *testProxy) groupOf(key int64) string {
	m := p.srv.topo.store.Current()
	return m.OwnerOf(shardmap.ShardOf(key)).Name
}

// writers connects directly to every group's writer.
func (p *testProxy) writers(t testing.TB) map[string]*pgx.Conn {
	t.Helper()
	out := make(map[string]*pgx.Conn)
	for _, g := range p.cluster.Groups {
		out[g.Name] = connect(t, g.Writer.AppDSN())
	}
	return out
}

// execAll runs statements on a connection, failing the test on error.
func execAll(t testing.TB, c *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := c.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// waitReplicasCaughtUp waits until every replica has replayed its writer's current WAL.
func (p *testProxy) waitReplicasCaughtUp(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	defer func() {
		for _, g := range p.cluster.Groups {
			p.waitProxySeesReplicas(t, g, start)
		}
	}()
	for _, g := range p.cluster.Groups {
		w := connect(t, g.Writer.SuperDSN("postgres"))
		var lsn string
		if err := w.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		for _, r := range g.Replicas {
			rc := connect(t, r.SuperDSN("postgres"))
			waitFor(t, 30*time.Second, fmt.Sprintf("%s replayed %s", r.Name, lsn), func() bool {
				var ok bool
				err := rc.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
				return err == nil && ok
			})
		}
	}
}

// waitProxySeesReplicas waits until the proxy would read g on a replica that has what g's
// writer had at since: after DDL through the proxy, its replica reads wait for a health check
// of the writer that started later, and for a replica that replayed that position.
func (p *testProxy) waitProxySeesReplicas(t testing.TB, g *pgtest.Group, since time.Time) {
	t.Helper()
	hc := p.srv.topo.health
	waitFor(t, 30*time.Second, "the health checker to see "+g.Name+"'s replicas caught up", func() bool {
		lsn, ok := hc.WriterLSNAfter(g.Name, since)
		if !ok {
			return false
		}
		targets := hc.ReadTargets(g.Name, lsn, nil)
		return len(g.Replicas) == 0 || (len(targets) > 0 && targets[0] != hc.Writer(g.Name))
	})
}

// startCatalogProxy is a proxy over every group of cl (their writers) with the shard map
// catalog, and with it the two-phase decision log, on g0's writer; databases are the
// client-facing databases, recovery passes run every 200ms; tweak adjusts the rest.
func startCatalogProxy(t testing.TB, cl *pgtest.Cluster, databases []config.Database, tweak func(*config.Config)) *testProxy {
	t.Helper()
	return startProxyFor(t, cl, func(c *config.Config) {
		c.Groups = nil
		for i, g := range cl.Groups {
			c.Groups = append(c.Groups, config.Group{Name: g.Name, Region: testRegions[i%len(testRegions)], Writer: g.Writer.Addr()})
		}
		c.Region = testRegions[0]
		c.Catalog.DSN = cl.Groups[0].Writer.AppDSN()
		c.Databases = databases
		c.TwoPhase.RecoveryInterval = config.Duration(200 * time.Millisecond)
		if tweak != nil {
			tweak(c)
		}
	})
}
