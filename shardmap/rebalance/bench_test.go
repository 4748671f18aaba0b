package rebalance_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/invoiceapp"
	"github.com/shardwire/shardwire/invoiceapp/migrations"
	"github.com/shardwire/shardwire/shardmap"
)

// seedInvoices writes rows invoices (with their customers) of shard straight to its owner,
// through the invoice service's own schema.
func seedInvoices(b *testing.B, e *env, shard shardmap.Shard, rows int) {
	b.Helper()
	conn := e.writer(e.owner(shard))
	defer conn.Close(context.Background())
	ctx := context.Background()
	customers := max(rows/200, 1)
	if _, err := conn.Exec(ctx, `INSERT INTO customers (customer_id, name)
		SELECT $1::bigint + 16 * g, 'c' || g FROM generate_series(1, $2::int) g ON CONFLICT DO NOTHING`, int64(shard), customers); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO invoices (customer_id, id, issue_date, due_date, currency, status, total_minor)
		SELECT $1::bigint + 16 * (1 + g % $3::int), gen_random_uuid(), current_date, current_date + 30, 'EUR', 'open', g
		FROM generate_series(1, $2::int) g`, int64(shard), rows, customers); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMove moves a shard holding 100k and 1M invoices back and forth between two groups
// under the acceptance load, one full copy per iteration (each followed by its cleanup), and
// reports the move's duration, the longest write pause clients saw on the shard (median and
// worst over the iterations), and the throughput dip: the lowest one-second rate of
// acknowledged writes during the move against the rate in the second before it.
//
//	go test -run '^$' -bench BenchmarkMove -benchtime 3x ./shardmap/rebalance/
func BenchmarkMove(b *testing.B) {
	e := startEnv(b)
	ctx := context.Background()
	node := pgtest.Connect(b, e.dc.Nodes[0].DSN())
	if _, err := migrations.Apply(ctx, node, nil); err != nil {
		b.Fatalf("invoice schema: %v", err)
	}
	if err := invoiceapp.MaintainPartitions(ctx, node, time.Now(), 1); err != nil {
		b.Fatalf("invoice partitions: %v", err)
	}
	_ = node.Close(ctx)
	for _, c := range []struct {
		shard shardmap.Shard
		rows  int
	}{{5, 100_000}, {9, 1_000_000}} {
		seedInvoices(b, e, c.shard, c.rows)
		b.Run(fmt.Sprintf("rows=%d", c.rows), func(b *testing.B) {
			var moveSecs, pauses, dips []float64
			r := e.runner(nil)
			for b.Loop() {
				source := e.owner(c.shard)
				target := otherGroup(source)
				l := startLoad(b, e, c.shard, 6)
				time.Sleep(1500 * time.Millisecond)
				began := time.Now()
				mv, err := r.Start(ctx, c.shard, target)
				ended := time.Now()
				time.Sleep(500 * time.Millisecond)
				l.stop()
				if err != nil {
					b.Fatalf("move: %v", err)
				}
				before, _ := l.throughput(began.Add(-time.Second), began)
				_, lowest := l.throughput(began, ended)
				moveSecs = append(moveSecs, ended.Sub(began).Seconds())
				pauses = append(pauses, l.maxPauseShard.Seconds())
				if before > 0 {
					dips = append(dips, 100*(1-lowest/before))
				}
				b.Logf("move %d %s→%s: %.1fs, writes held %.3fs (catalog), longest client pause %v, %.0f writes/s before, lowest second %.0f",
					mv.ID, source, target, ended.Sub(began).Seconds(), mv.Detail.PauseSeconds, l.maxPauseShard, before, lowest)
				if _, err := r.Cleanup(ctx, mv.ID); err != nil {
					b.Fatalf("cleanup: %v", err)
				}
			}
			b.ReportMetric(median(moveSecs), "move-s")
			b.ReportMetric(median(pauses)*1000, "pause-p50-ms")
			b.ReportMetric(slices.Max(pauses)*1000, "pause-max-ms")
			if len(dips) > 0 {
				b.ReportMetric(median(dips), "dip-%")
			}
		})
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
