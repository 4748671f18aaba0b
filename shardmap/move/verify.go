package move

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/internal/ctxwait"
	"github.com/shardwire/shardwire/shardmap"
)

// VerifyOptions tunes Verify. The zero value uses the defaults.
type VerifyOptions struct {
	// ChunkCustomers is how many distinct keys (customers) of the shard one chunk holds;
	// 0 means 1000.
	ChunkCustomers int
	// Retries is how many times a differing chunk is re-checked before it is reported;
	// 0 means 5, a negative value means no re-check.
	Retries int
	// RetryDelay is the wait before each re-check; 0 means 200ms.
	RetryDelay time.Duration
	// OnMismatch, when set, is called each time a chunk is seen to differ: attempt 0 on the
	// first pass, then 1..Retries on re-checks. It runs on Verify's goroutine, before the wait
	// for the next re-check, so it can log progress; it must not use the two connections.
	OnMismatch func(table string, m Mismatch, attempt int)
}

// Default verification settings.
const (
	DefaultChunkCustomers = 1000
	DefaultRetries        = 5
	DefaultRetryDelay     = 200 * time.Millisecond
)

func (o VerifyOptions) withDefaults() VerifyOptions {
	if o.ChunkCustomers <= 0 {
		o.ChunkCustomers = DefaultChunkCustomers
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	return o
}

// Digest is one side's summary of a chunk: its row count and an order-independent hash,
// the sum over rows of hashtextextended(row text, 0), as a decimal string.
type Digest struct {
	Rows int64
	Hash string
}

// Mismatch is a chunk whose rows differ between source and target: the keys Lo..Hi
// (inclusive; the first chunk starts at math.MinInt64 and the last ends at math.MaxInt64 so
// that keys only one side has are covered) and both sides' digests as last seen.
type Mismatch struct {
	Lo, Hi int64
	Source Digest
	Target Digest
}

// String describes the mismatch on one line.
func (m Mismatch) String() string {
	return fmt.Sprintf("keys %s..%s: source %d rows hash %s, target %d rows hash %s",
		bound(m.Lo), bound(m.Hi), m.Source.Rows, m.Source.Hash, m.Target.Rows, m.Target.Hash)
}

func bound(k int64) string {
	switch k {
	case math.MinInt64:
		return "-inf"
	case math.MaxInt64:
		return "+inf"
	}
	return fmt.Sprint(k)
}

// TableResult is the verification of one table.
type TableResult struct {
	Table      string
	Chunks     int        // chunks compared
	SourceRows int64      // the shard's rows on the source, as last counted
	TargetRows int64      // the shard's rows on the target, as last counted
	Mismatches []Mismatch // chunks that still differed after every re-check
}

// VerifyResult is the verification of every table of one shard.
type VerifyResult struct {
	Shard  int
	Tables []TableResult
}

// OK reports whether every chunk of every table matched.
func (r *VerifyResult) OK() bool {
	for _, t := range r.Tables {
		if len(t.Mismatches) > 0 {
			return false
		}
	}
	return true
}

// outputSettings fix every setting that changes a row's text, so both sides render the same
// values the same way whatever the caller's sessions set. They are transaction-local.
const outputSettings = `SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
	set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '3', true),
	set_config('bytea_output', 'hex', true), set_config('lc_monetary', 'C', true)`

// ShardExpr is the SQL form of shardmap.ShardOf for a key expression: the key modulo
// NumShards, never negative.
func ShardExpr(key string) string {
	return fmt.Sprintf("((%s %% %d) + %d) %% %d", key, shardmap.NumShards, shardmap.NumShards, shardmap.NumShards)
}

// Verify compares the rows of logical shard shard (rows whose key k has
// ((k % 16) + 16) % 16 = shard) of every table on source and target. Each table is cut into
// chunks of opts.ChunkCustomers distinct keys, chosen on the source; per chunk both sides give
// a row count and an order-independent hash of the whole rows' text. A chunk that differs is
// re-checked up to opts.Retries times, opts.RetryDelay apart, as a live subscription may lag;
// only a chunk that still differs is reported. The error is only for failed queries.
//
// The connections must be idle (no open transaction); each pass runs in a read-only
// transaction with fixed output settings, and every chunk query is a range scan on the key.
func Verify(ctx context.Context, source, target *pgx.Conn, tables []Table, shard int, opts VerifyOptions) (*VerifyResult, error) {
	if shard < 0 || shard >= shardmap.NumShards {
		return nil, fmt.Errorf("verify: shard %d out of range 0..%d", shard, shardmap.NumShards-1)
	}
	opts = opts.withDefaults()
	res := &VerifyResult{Shard: shard}
	for _, t := range tables {
		tr, err := verifyTable(ctx, source, target, t, shard, opts)
		if err != nil {
			return nil, fmt.Errorf("verify: table %s: %w", t.Name, err)
		}
		res.Tables = append(res.Tables, tr)
	}
	return res, nil
}

// chunk is a key range Lo..Hi (inclusive) and its last digests.
type chunk struct {
	lo, hi         int64
	source, target Digest
}

func (c *chunk) differs() bool { return c.source != c.target }

func (c *chunk) mismatch() Mismatch {
	return Mismatch{Lo: c.lo, Hi: c.hi, Source: c.source, Target: c.target}
}

// verifyTable verifies one table of the shard.
func verifyTable(ctx context.Context, source, target *pgx.Conn, t Table, shard int, opts VerifyOptions) (TableResult, error) {
	chunks, err := chunkBounds(ctx, source, t, shard, opts.ChunkCustomers)
	if err != nil {
		return TableResult{}, err
	}
	all := make([]*chunk, len(chunks))
	for i := range chunks {
		all[i] = &chunks[i]
	}
	pending := all
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := ctxwait.Sleep(ctx, opts.RetryDelay); err != nil {
				return TableResult{}, fmt.Errorf("re-check: %w", err)
			}
		}
		if err := digestChunks(ctx, source, t, shard, pending, func(c *chunk) *Digest { return &c.source }); err != nil {
			return TableResult{}, fmt.Errorf("source: %w", err)
		}
		if err := digestChunks(ctx, target, t, shard, pending, func(c *chunk) *Digest { return &c.target }); err != nil {
			return TableResult{}, fmt.Errorf("target: %w", err)
		}
		var differing []*chunk
		for _, c := range pending {
			if c.differs() {
				differing = append(differing, c)
				if opts.OnMismatch != nil {
					opts.OnMismatch(t.Name, c.mismatch(), attempt)
				}
			}
		}
		pending = differing
		if len(pending) == 0 || attempt >= opts.Retries {
			break
		}
	}

	tr := TableResult{Table: t.Name, Chunks: len(all)}
	for _, c := range all {
		tr.SourceRows += c.source.Rows
		tr.TargetRows += c.target.Rows
	}
	for _, c := range pending {
		tr.Mismatches = append(tr.Mismatches, c.mismatch())
	}
	return tr, nil
}

// chunkBounds cuts the shard's keys on the source into chunks of per distinct keys. It walks
// the distinct keys with a loose index scan (one index probe per customer) rather than
// reading every row. The first chunk starts at math.MinInt64 and the last ends at
// math.MaxInt64; a shard without rows is one chunk covering every key.
func chunkBounds(ctx context.Context, conn *pgx.Conn, t Table, shard, per int) ([]chunk, error) {
	key := pgx.Identifier{t.KeyColumn}.Sanitize()
	sql := fmt.Sprintf(`WITH RECURSIVE keys(k) AS (
			(SELECT %[1]s FROM %[2]s WHERE %[1]s IS NOT NULL ORDER BY %[1]s LIMIT 1)
			UNION ALL
			SELECT (SELECT %[1]s FROM %[2]s WHERE %[1]s > keys.k ORDER BY %[1]s LIMIT 1) FROM keys WHERE keys.k IS NOT NULL
		)
		SELECT k::bigint FROM (
			SELECT k, row_number() OVER (ORDER BY k) - 1 AS n FROM keys WHERE k IS NOT NULL AND %[3]s = $1
		) s WHERE n %% $2 = 0 ORDER BY k`, key, t.Ident(), ShardExpr("k"))
	rows, err := conn.Query(ctx, sql, shard, per)
	if err != nil {
		return nil, fmt.Errorf("chunk bounds: %w", err)
	}
	starts, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("chunk bounds: %w", err)
	}
	if len(starts) == 0 {
		return []chunk{{lo: math.MinInt64, hi: math.MaxInt64}}, nil
	}
	chunks := make([]chunk, len(starts))
	for i, s := range starts {
		chunks[i].lo = s
		if i > 0 {
			chunks[i-1].hi = s - 1
		}
	}
	chunks[0].lo = math.MinInt64
	chunks[len(chunks)-1].hi = math.MaxInt64
	return chunks, nil
}

// digestChunks computes, in one read-only transaction on conn, each chunk's digest of the
// shard's rows and stores it where slot points.
func digestChunks(ctx context.Context, conn *pgx.Conn, t Table, shard int, chunks []*chunk, slot func(*chunk) *Digest) (err error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, outputSettings); err != nil {
		return fmt.Errorf("output settings: %w", err)
	}
	key := "t." + pgx.Identifier{t.KeyColumn}.Sanitize()
	sql := fmt.Sprintf(`SELECT count(*), coalesce(sum(hashtextextended(ROW(t.*)::text, 0)), 0)::text
		FROM %s AS t WHERE %s BETWEEN $1::bigint AND $2::bigint AND %s = $3`, t.Ident(), key, ShardExpr(key))
	for _, c := range chunks {
		d := slot(c)
		if err := tx.QueryRow(ctx, sql, c.lo, c.hi, shard).Scan(&d.Rows, &d.Hash); err != nil {
			return fmt.Errorf("chunk %s..%s: %w", bound(c.lo), bound(c.hi), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Recheck compares once more, with no re-checks, the chunks a live Verify reported as
// differing. It is meant for when neither side can change any more — the source fenced and
// the target proven caught up — so that a chunk that was busy during the live verification
// is compared exactly, and any difference left is real. Tables absent from prev or without
// mismatches are not read.
func Recheck(ctx context.Context, source, target *pgx.Conn, tables []Table, prev *VerifyResult) (*VerifyResult, error) {
	res := &VerifyResult{Shard: prev.Shard}
	byName := make(map[string]Table, len(tables))
	for _, t := range tables {
		byName[t.Name] = t
	}
	for _, tr := range prev.Tables {
		if len(tr.Mismatches) == 0 {
			continue
		}
		t, ok := byName[tr.Table]
		if !ok {
			return nil, fmt.Errorf("recheck: table %s is not among the tables", tr.Table)
		}
		chunks := make([]*chunk, len(tr.Mismatches))
		for i, m := range tr.Mismatches {
			chunks[i] = &chunk{lo: m.Lo, hi: m.Hi}
		}
		if err := digestChunks(ctx, source, t, prev.Shard, chunks, func(c *chunk) *Digest { return &c.source }); err != nil {
			return nil, fmt.Errorf("recheck: table %s: source: %w", t.Name, err)
		}
		if err := digestChunks(ctx, target, t, prev.Shard, chunks, func(c *chunk) *Digest { return &c.target }); err != nil {
			return nil, fmt.Errorf("recheck: table %s: target: %w", t.Name, err)
		}
		out := TableResult{Table: t.Name, Chunks: len(chunks)}
		for _, c := range chunks {
			out.SourceRows += c.source.Rows
			out.TargetRows += c.target.Rows
			if c.differs() {
				out.Mismatches = append(out.Mismatches, c.mismatch())
			}
		}
		res.Tables = append(res.Tables, out)
	}
	return res, nil
}
