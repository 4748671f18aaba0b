package move

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/pgtest"
	"github.com/shardwire/shardwire/shardmap"
)

// shardCounts counts the rows of every table per shard.
func shardCounts(t *testing.T, conn *pgx.Conn) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tb := range moveTables {
		for s := range shardmap.NumShards {
			out[fmt.Sprintf("%s/%d", tb.Name, s)] = countWhere(t, conn, tb, shardFilter("r."+tb.keyIdent(), shardmap.Shard(s)))
		}
	}
	return out
}

// TestDeleteShardRows: on a fenced old owner, the shard's rows go in batches (several rows
// per key, so batches split keys), every other shard's rows stay, the fence still holds
// afterwards on the same session, and a move publication of the shard stops it first.
func TestDeleteShardRows(t *testing.T) {
	const shard = 5
	p := newMovePair(t, moveSchemaDDL)
	exec(t, p.source, fillKeys(-40, 60, -1))
	ctx := testCtx(t, 30*time.Second)
	if _, err := Fence(ctx, p.source, FenceOptions{Shard: shard, Move: 3, Tables: moveTables, Reason: ReasonMovedTo("g1"), Permanent: true}); err != nil {
		t.Fatal(err)
	}
	before := shardCounts(t, p.source)

	// A publication of the shard would carry the deletes to its new owner.
	mine, other := p.forward(3, shard, moveTables), p.forward(6, shard+1, moveTables)
	for _, s := range []Spec{mine, other} {
		if err := ensureSchema(ctx, p.source); err != nil {
			t.Fatal(err)
		}
		if err := ensurePublication(ctx, p.source, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := DeleteShardRows(ctx, p.source, shard, moveTables, 2, nil); err == nil || !strings.Contains(err.Error(), "publication shardwire_move_3") {
		t.Fatalf("DeleteShardRows with the shard published: %v, want a refusal naming the publication", err)
	}
	exec(t, p.source, "DROP PUBLICATION shardwire_move_3")

	order, err := deleteOrder(ctx, p.source, moveTables)
	if err != nil || !slices.Equal(order, []int{1, 0, 2, 3}) {
		t.Errorf("deleteOrder = %v, %v; want invoices before customers: [1 0 2 3]", order, err)
	}
	var calls []int64
	n, err := DeleteShardRows(ctx, p.source, shard, moveTables, 2, func(d int64) { calls = append(calls, d) })
	if err != nil {
		t.Fatalf("DeleteShardRows: %v", err)
	}
	var want int64
	for _, tb := range moveTables {
		want += before[fmt.Sprintf("%s/%d", tb.Name, shard)]
	}
	if n != want || want == 0 {
		t.Errorf("deleted %d rows, want %d", n, want)
	}
	if len(calls) < int(want/2) || calls[len(calls)-1] != n {
		t.Errorf("progress calls %v: want one per batch of 2, ending at %d", calls, n)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] <= calls[i-1] || calls[i]-calls[i-1] > 2 {
			t.Errorf("progress calls %v: want strictly growing by at most the batch", calls)
			break
		}
	}
	after := shardCounts(t, p.source)
	for k, v := range before {
		w := v
		if strings.HasSuffix(k, fmt.Sprintf("/%d", shard)) {
			w = 0
		}
		if after[k] != w {
			t.Errorf("%s: %d rows after, want %d", k, after[k], w)
		}
	}

	// The session is back to firing triggers: the fence still refuses the shard's writes.
	err = tryWrite(t, p.source, "INSERT INTO customers VALUES (21, 'back')")
	if pgtest.SQLState(err) != shardmap.CodeShardFenced {
		t.Errorf("write after DeleteShardRows on its session: %v, want the fence", err)
	}
	if n, err := DeleteShardRows(ctx, p.source, shard, moveTables, 0, nil); n != 0 || err != nil {
		t.Errorf("second DeleteShardRows = %d, %v; want 0, nil", n, err)
	}
	exec(t, p.source, "DROP PUBLICATION shardwire_move_6")
}
