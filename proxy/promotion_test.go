package proxy

import (
	"context"
	"testing"
	"time"
)

// TestWriterPromotion is routing acceptance 6: a group's writer stops and its replica is
// promoted; the health checker notices and writes go to the promoted node without a restart
// or a configuration change, while reads keep working throughout.
func TestWriterPromotion(t *testing.T) {
	p := startShardedProxy(t, 2, 1, nil)
	ctx := context.Background()
	admin := connect(t, p.dsn(""))
	execAll(t, admin, notesSchema)
	const cust = 9 // shard 9: group g1
	if p.groupOf(cust) != "g1" {
		t.Fatalf("test layout: customer %d in %s", cust, p.groupOf(cust))
	}
	if _, err := admin.Exec(ctx, "INSERT INTO notes (customer_id, id, body) VALUES ($1, 1, 'before')", cust); err != nil {
		t.Fatal(err)
	}
	p.waitReplicasCaughtUp(t)
	g1 := p.cluster.Groups[1]
	replica := g1.Replicas[0]

	load := startReadLoad(t, p, 4, "SELECT body FROM notes WHERE customer_id = $1 AND id = 1", cust)
	waitFor(t, 10*time.Second, "reads under way", func() bool { return load.reads.Load() > 100 })

	if err := g1.Writer.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replica.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	hc := p.srv.topo.health
	waitFor(t, 20*time.Second, "the promoted replica to be g1's writer", func() bool {
		return hc.Writer("g1") == replica.Addr()
	})
	w := connect(t, p.dsn(""))
	if _, err := w.Exec(ctx, "INSERT INTO notes (customer_id, id, body) VALUES ($1, 2, 'after')", cust); err != nil {
		t.Fatalf("write after promotion: %v", err)
	}
	var port int
	if err := w.QueryRow(ctx, "SELECT current_setting('port')::int FROM notes WHERE customer_id = $1 AND id = 2", cust).Scan(&port); err != nil {
		t.Fatal(err)
	}
	if port != replica.Port {
		t.Errorf("read after the write served by port %d, want the promoted node %d", port, replica.Port)
	}
	before := load.reads.Load()
	waitFor(t, 10*time.Second, "reads after the promotion", func() bool { return load.reads.Load() > before+100 })
	load.stopAndCheck(t, "during the promotion")
}
