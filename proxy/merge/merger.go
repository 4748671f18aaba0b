package merge

import (
	"errors"
	"fmt"
	"slices"

	"github.com/shardwire/shardwire/router"
)

// Source yields one shard group's reply to the rewritten query (router.ScatterSQL).
type Source interface {
	// Next returns the group's next DataRow frame (type byte, int32 length, body), or nil
	// after the last row. The frame is valid until the next call of Next. After Next
	// returned nil or an error, the Merger does not call it again. The Merger stops calling
	// Next when it needs no more rows (a LIMIT was reached): draining the rest of the reply
	// (to CommandComplete and ReadyForQuery) is the caller's job.
	Next() ([]byte, error)
}

// Merger merges the groups' replies to one scatter into what one unsharded database would
// return to the client. It is pure: no I/O beyond calling its Sources and emit. A Merger
// runs once and is not safe for concurrent use.
type Merger struct {
	spec    *router.MergeSpec
	limit   int64 // -1: none
	offset  int64
	width   int // columns in a group's row
	visible int // columns the client sees
	cols    []column
	final   []column // cols after aggregation (AVG columns hold the average)
	fields  []field  // the client's RowDescription
	keys    []sortKey
	aggs    []*aggregator
	aggAt   []int // per-group column → index in aggs, -1
	keyCols []int // aggregation: the grouping columns
	ran     bool
}

// sortKey is one resolved ORDER BY key.
type sortKey struct {
	col        int
	desc       bool
	nullsFirst bool
	kind       kind
}

// New prepares the merge of the groups' replies to spec's scatter.
//
// limit and offset are the resolved LIMIT and OFFSET (ResolveLimit): -1 when absent.
// rowDesc is one group's RowDescription frame for the rewritten query (every group returns
// the same one). resultFormats are the client's result-format codes from its Bind (nil: all
// text); the groups must have been bound with BackendResultFormats(spec, resultFormats).
//
// New fails with an *Error before any row is read when the merge cannot be exact: a sort,
// grouping or DISTINCT column of a type the merge cannot order or compare (it knows int2,
// int4, int8, oid, float4, float8, numeric, text, varchar, bpchar, name, "char", bool, date,
// time, timestamp, timestamptz, interval, uuid and bytea; text kinds are compared bytewise,
// which is the order of the C collation only), an aggregate of a type it cannot combine, or
// result formats that do not fit the columns.
func New(spec *router.MergeSpec, limit, offset int64, rowDesc []byte, resultFormats []int16) (*Merger, error) {
	if spec == nil {
		return nil, internalf("no merge spec")
	}
	if limit < -1 || offset < -1 {
		return nil, internalf("limit %d offset %d", limit, offset)
	}
	fields, err := parseRowDescription(rowDesc)
	if err != nil {
		return nil, fmt.Errorf("scatter merge: %w", err)
	}
	m := &Merger{spec: spec, limit: limit, offset: max(offset, 0), width: len(fields)}
	if spec.Hidden < 0 || spec.Hidden > m.width {
		return nil, internalf("%d hidden columns of %d", spec.Hidden, m.width)
	}
	m.visible = m.width - spec.Hidden
	if !spec.Star && spec.Columns != m.visible {
		return nil, internalf("groups return %d columns, the plan expects %d + %d hidden", m.width, spec.Columns, spec.Hidden)
	}
	formats, err := expandFormats(resultFormats, m.visible, spec.Hidden)
	if err != nil {
		return nil, err
	}
	m.cols = make([]column, m.width)
	for i, f := range fields {
		m.cols[i] = column{oid: f.typeOID, format: formats[i], kind: kindOf(f.typeOID)}
	}
	m.final = slices.Clone(m.cols)

	if err := m.prepareAggregates(); err != nil {
		return nil, err
	}
	if spec.Distinct {
		for i := range m.visible {
			if m.final[i].kind == kUnknown {
				return nil, notSupportedf("cannot merge DISTINCT on type OID %d over a scatter", m.final[i].oid)
			}
		}
	}
	for _, k := range spec.OrderBy {
		col := k.Column
		if col < 0 {
			if !spec.Star || col < -spec.Hidden {
				return nil, internalf("sort column %d", col)
			}
			col += m.width
		} else if col >= m.width || (spec.Star && col >= m.visible) {
			return nil, &Error{Code: codeInvalidColumnRef, Message: fmt.Sprintf("ORDER BY position %d is not in select list", col+1)}
		}
		c := m.final[col]
		if c.kind == kUnknown {
			return nil, notSupportedf("cannot merge ORDER BY on type OID %d over a scatter", c.oid)
		}
		m.keys = append(m.keys, sortKey{col: col, desc: k.Desc, nullsFirst: k.NullsFirst, kind: c.kind})
	}

	m.fields = slices.Clone(fields[:m.visible])
	for _, ag := range m.aggs {
		if ag.fn != router.AggAvg || ag.col >= m.visible {
			continue
		}
		f := &m.fields[ag.col]
		f.typeOID, f.typmod = ag.out.oid, -1
		f.typlen = -1
		if ag.out.oid == oidFloat8 {
			f.typlen = 8
		}
	}
	return m, nil
}

// prepareAggregates sets up the aggregators and the grouping columns.
func (m *Merger) prepareAggregates() error {
	spec := m.spec
	if len(spec.Aggregates) == 0 && len(spec.GroupBy) == 0 {
		return nil
	}
	if spec.Star {
		return internalf("aggregates with *")
	}
	m.aggAt = make([]int, m.width)
	for i := range m.aggAt {
		m.aggAt[i] = -1
	}
	used := make([]bool, m.width) // aggregate and count columns
	for _, a := range spec.Aggregates {
		ag, err := newAggregator(a, m.cols)
		if err != nil {
			return err
		}
		if used[ag.col] || (ag.fn == router.AggAvg && used[ag.countCol]) {
			return internalf("aggregate column %d used twice", ag.col)
		}
		used[ag.col] = true
		if ag.fn == router.AggAvg {
			used[ag.countCol] = true
		}
		m.aggAt[ag.col] = len(m.aggs)
		m.aggs = append(m.aggs, ag)
		m.final[ag.col] = ag.out
	}
	for _, g := range spec.GroupBy {
		if g < 0 || g >= m.visible || used[g] {
			return internalf("group column %d", g)
		}
	}
	// Every visible column that is no aggregate groups (the router lists them in GroupBy).
	for i := range m.width {
		if used[i] {
			continue
		}
		if i >= m.visible {
			return internalf("hidden column %d is neither an aggregate nor a count", i)
		}
		if m.cols[i].kind == kUnknown {
			return notSupportedf("cannot merge GROUP BY on type OID %d over a scatter", m.cols[i].oid)
		}
		m.keyCols = append(m.keyCols, i)
	}
	return nil
}

// expandFormats applies Bind's result-format rule (none: text; one: all columns; else one
// per column) to the visible columns; hidden columns follow the one-for-all code, else text.
func expandFormats(client []int16, visible, hidden int) ([]int16, error) {
	out := make([]int16, visible+hidden)
	switch {
	case len(client) == 0:
	case len(client) == 1:
		for i := range out {
			out[i] = client[0]
		}
	case len(client) == visible:
		copy(out, client)
	default:
		return nil, &Error{Code: codeProtocolViolation, Message: fmt.Sprintf("bind message has %d result formats but query has %d columns", len(client), visible)}
	}
	for _, f := range out {
		if f != 0 && f != 1 {
			return nil, &Error{Code: codeProtocolViolation, Message: fmt.Sprintf("unsupported format code: %d", f)}
		}
	}
	return out, nil
}

// BackendResultFormats returns the result-format codes to Bind the rewritten statement with
// on every group, given the client's: the client's codes, plus text for the hidden columns
// when the client gave one code per column.
func BackendResultFormats(spec *router.MergeSpec, client []int16) []int16 {
	if len(client) <= 1 || spec.Hidden == 0 {
		return client
	}
	out := make([]int16, len(client)+spec.Hidden)
	copy(out, client)
	return out
}

// RowDescription appends the client's RowDescription frame: a group's without the hidden
// columns, AVG columns retyped to the average's type (numeric: OID 1700, typlen -1; float8:
// OID 701, typlen 8; typmod -1).
func (m *Merger) RowDescription(dst []byte) []byte {
	return appendRowDescription(dst, m.fields)
}

// Columns returns the number of columns the client sees.
func (m *Merger) Columns() int { return m.visible }

// Run merges the sources (one per group, in any order) and passes every DataRow frame for
// the client to emit, in order; a frame is valid only during the emit call. It returns the
// number of rows emitted, for the CommandComplete tag ("SELECT n"), which the caller sends.
//
// Without ORDER BY or aggregates the sources are concatenated as they stream; with ORDER BY
// they are merged by a heap holding one row per source; with aggregates every row is read
// and combined first. LIMIT and OFFSET apply to the merged rows, after DISTINCT. Errors of
// Next and emit are returned wrapped; a group whose rows are not in the order the merge
// compares by (a non-C collation, say) is an *Error rather than a misordered result.
func (m *Merger) Run(sources []Source, emit func(frame []byte) error) (int64, error) {
	if m.ran {
		return 0, internalf("Run called twice")
	}
	m.ran = true
	o := &output{m: m, emit: emit, skip: m.offset, left: m.limit}
	if m.spec.Distinct {
		o.seen = make(map[string]struct{})
	}
	if m.limit == 0 {
		return 0, nil
	}
	var err error
	switch {
	case m.aggs != nil || m.keyCols != nil:
		err = m.runAggregate(sources, o)
	case len(m.keys) > 0:
		err = m.runSorted(sources, o)
	default:
		err = m.runConcat(sources, o)
	}
	if errors.Is(err, errLimitReached) {
		err = nil
	}
	return o.rows, err
}

// errLimitReached stops a merge once LIMIT rows were emitted.
var errLimitReached = errors.New("limit reached")

// output applies DISTINCT, OFFSET and LIMIT and emits rows.
type output struct {
	m    *Merger
	emit func([]byte) error
	skip int64
	left int64 // -1: no limit
	rows int64
	seen map[string]struct{}
	key  []byte
	tmp  value
	buf  []byte
}

// row offers one merged row in the per-group layout (frame: the group's frame holding it
// unchanged, or nil). It returns errLimitReached after the last row the client gets.
func (o *output) row(cols [][]byte, frame []byte) error {
	m := o.m
	if o.seen != nil {
		o.key = o.key[:0]
		for i := range m.visible {
			if err := m.final[i].decode(cols[i], &o.tmp); err != nil {
				return fmt.Errorf("scatter merge: DISTINCT column %d: %w", i+1, err)
			}
			o.key = appendKey(o.key, m.final[i].kind, &o.tmp)
		}
		if _, dup := o.seen[string(o.key)]; dup {
			return nil
		}
		o.seen[string(o.key)] = struct{}{}
	}
	if o.skip > 0 {
		o.skip--
		return nil
	}
	out := frame
	if out == nil || m.width != m.visible {
		o.buf = appendDataRow(o.buf[:0], cols[:m.visible])
		out = o.buf
	}
	if err := o.emit(out); err != nil {
		return fmt.Errorf("scatter merge: emit: %w", err)
	}
	o.rows++
	if o.left > 0 {
		o.left--
		if o.left == 0 {
			return errLimitReached
		}
	}
	return nil
}

// next reads a source's next row into cols; nil cols at the end.
func (m *Merger) next(src Source, i int, cols [][]byte) ([]byte, [][]byte, error) {
	f, err := src.Next()
	if err != nil {
		return nil, nil, fmt.Errorf("scatter group %d: %w", i, err)
	}
	if f == nil {
		return nil, nil, nil
	}
	cols, err = splitDataRow(f, cols)
	if err != nil {
		return nil, nil, fmt.Errorf("scatter group %d: %w", i, err)
	}
	if len(cols) != m.width {
		return nil, nil, internalf("group %d returned a row of %d columns, expected %d", i, len(cols), m.width)
	}
	return f, cols, nil
}

// runConcat streams the sources one after another.
func (m *Merger) runConcat(sources []Source, o *output) error {
	var cols [][]byte
	for i, src := range sources {
		for {
			f, c, err := m.next(src, i, cols)
			if err != nil {
				return err
			}
			if c == nil {
				break
			}
			cols = c
			if err := o.row(cols, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// compareRows orders two rows' sort-key values by the keys.
func (m *Merger) compareRows(a, b []value) int {
	for i, k := range m.keys {
		va, vb := &a[i], &b[i]
		var c int
		switch {
		case va.null && vb.null:
			continue
		case va.null:
			c = 1
			if k.nullsFirst {
				c = -1
			}
			return c
		case vb.null:
			c = -1
			if k.nullsFirst {
				c = 1
			}
			return c
		}
		c = compareValues(k.kind, va, vb)
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// decodeKeys decodes a row's sort keys into vals.
func (m *Merger) decodeKeys(cols [][]byte, vals []value, types []column) error {
	for i, k := range m.keys {
		if err := types[k.col].decode(cols[k.col], &vals[i]); err != nil {
			return fmt.Errorf("scatter merge: ORDER BY column %d: %w", k.col+1, err)
		}
	}
	return nil
}
