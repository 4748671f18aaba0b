package merge

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/shardwire/shardwire/router"
)

// aggregator combines one aggregate column of the groups' partial results.
type aggregator struct {
	fn       router.AggFunc
	col      int    // per-group column (AVG: its sum)
	countCol int    // AVG: per-group hidden count column
	in       column // type and format of the per-group column
	countIn  column // AVG: type and format of the count column
	out      column // type and format of the merged value
}

// aggState is one aggregate's running combination within one output group.
type aggState struct {
	has   bool  // SUM, MIN, MAX, AVG: a non-NULL partial was seen
	count int64 // COUNT; AVG's count
	sumI  big.Int
	sumD  decimal
	sumF  float64
	best  []byte // MIN, MAX: the winning partial, copied
	bestV value
}

var maxInt8 = big.NewInt(math.MaxInt64)
var minInt8 = big.NewInt(math.MinInt64)

// newAggregator checks that the merge can combine an aggregate over the given per-group
// columns and returns its aggregator.
func newAggregator(a router.Aggregate, cols []column) (*aggregator, error) {
	if a.Column < 0 || a.Column >= len(cols) {
		return nil, internalf("aggregate column %d of %d", a.Column, len(cols))
	}
	ag := &aggregator{fn: a.Func, col: a.Column, in: cols[a.Column], out: cols[a.Column]}
	switch a.Func {
	case router.AggCount:
		if ag.in.oid != oidInt8 {
			return nil, internalf("COUNT column of type OID %d", ag.in.oid)
		}
	case router.AggSum:
		switch ag.in.oid {
		case oidInt8, oidNumeric, oidFloat8, oidFloat4:
		default:
			return nil, notSupportedf("cannot merge SUM of type OID %d over a scatter", ag.in.oid)
		}
	case router.AggMin, router.AggMax:
		if ag.in.kind == kUnknown {
			return nil, notSupportedf("cannot merge MIN/MAX on type OID %d over a scatter", ag.in.oid)
		}
	case router.AggAvg:
		if a.CountColumn < 0 || a.CountColumn >= len(cols) || cols[a.CountColumn].oid != oidInt8 {
			return nil, internalf("AVG count column %d", a.CountColumn)
		}
		ag.countCol = a.CountColumn
		ag.countIn = cols[a.CountColumn]
		switch ag.in.oid {
		case oidInt8, oidNumeric:
			ag.out = column{oid: oidNumeric, format: ag.in.format, kind: kNumeric}
		case oidFloat8:
			ag.out = column{oid: oidFloat8, format: ag.in.format, kind: kFloat8}
		case oidFloat4:
			return nil, notSupportedf("AVG of real over a scatter is not supported; cast the argument to double precision")
		default:
			return nil, notSupportedf("cannot merge AVG of type OID %d over a scatter", ag.in.oid)
		}
		if a.ClientType != 0 && a.ClientType != ag.out.oid {
			return nil, internalf("AVG result type %d, the router expected %d", ag.out.oid, a.ClientType)
		}
	default:
		return nil, internalf("aggregate function %d", a.Func)
	}
	return ag, nil
}

// readInt8 reads an int8 column value.
func readInt8(c column, raw []byte) (int64, error) {
	if c.format == 1 {
		if len(raw) != 8 {
			return 0, fmt.Errorf("binary int8 with %d bytes", len(raw))
		}
		return int64(binary.BigEndian.Uint64(raw)), nil
	}
	return strconv.ParseInt(string(raw), 10, 64)
}

// combine adds one group's partial (a row in the per-group layout) to st.
func (ag *aggregator) combine(st *aggState, row [][]byte, tmp *value) error {
	raw := row[ag.col]
	switch ag.fn {
	case router.AggCount:
		n, err := readInt8(ag.in, raw)
		if err != nil {
			return fmt.Errorf("COUNT partial: %w", err)
		}
		return addCount(&st.count, n)
	case router.AggMin, router.AggMax:
		if raw == nil {
			return nil
		}
		if err := ag.in.decode(raw, tmp); err != nil {
			return err
		}
		c := 0
		if st.has {
			c = compareValues(ag.in.kind, tmp, &st.bestV)
		}
		if !st.has || (ag.fn == router.AggMin && c < 0) || (ag.fn == router.AggMax && c > 0) {
			st.has = true
			st.best = append(st.best[:0], raw...)
			return ag.in.decode(st.best, &st.bestV)
		}
		return nil
	case router.AggAvg:
		n, err := readInt8(ag.countIn, row[ag.countCol])
		if err != nil {
			return fmt.Errorf("AVG count partial: %w", err)
		}
		if err := addCount(&st.count, n); err != nil {
			return err
		}
	}
	if raw == nil {
		return nil
	}
	st.has = true
	switch ag.in.oid {
	case oidInt8:
		n, err := readInt8(ag.in, raw)
		if err != nil {
			return fmt.Errorf("SUM partial: %w", err)
		}
		st.sumI.Add(&st.sumI, big.NewInt(n))
	case oidNumeric:
		if err := ag.in.decode(raw, tmp); err != nil {
			return fmt.Errorf("SUM partial: %w", err)
		}
		st.sumD.add(&tmp.d)
	case oidFloat8, oidFloat4:
		if err := ag.in.decode(raw, tmp); err != nil {
			return fmt.Errorf("SUM partial: %w", err)
		}
		var sum float64
		if ag.in.oid == oidFloat4 {
			sum = float64(float32(st.sumF) + float32(tmp.f))
		} else {
			sum = st.sumF + tmp.f
		}
		if math.IsInf(sum, 0) && !math.IsInf(st.sumF, 0) && !math.IsInf(tmp.f, 0) {
			return &Error{Code: codeNumericOutOfRange, Message: "value out of range: overflow"}
		}
		st.sumF = sum
	}
	return nil
}

func addCount(total *int64, n int64) error {
	if (n > 0 && *total > math.MaxInt64-n) || (n < 0 && *total < math.MinInt64-n) {
		return &Error{Code: codeNumericOutOfRange, Message: "bigint out of range"}
	}
	*total += n
	return nil
}

// finish appends the merged value in ag.out's type and format; NULL is reported as false.
func (ag *aggregator) finish(dst []byte, st *aggState) ([]byte, bool, error) {
	bin := ag.out.format == 1
	switch ag.fn {
	case router.AggCount:
		return appendInt8(dst, st.count, bin), true, nil
	case router.AggMin, router.AggMax:
		if !st.has {
			return dst, false, nil
		}
		return append(dst, st.best...), true, nil
	case router.AggSum:
		if !st.has {
			return dst, false, nil
		}
		switch ag.in.oid {
		case oidInt8:
			if st.sumI.Cmp(maxInt8) > 0 || st.sumI.Cmp(minInt8) < 0 {
				return dst, false, &Error{Code: codeNumericOutOfRange, Message: "bigint out of range"}
			}
			return appendInt8(dst, st.sumI.Int64(), bin), true, nil
		case oidNumeric:
			return appendNumeric(dst, &st.sumD, bin), true, nil
		case oidFloat4:
			return appendFloat(dst, st.sumF, 32, bin), true, nil
		default:
			return appendFloat(dst, st.sumF, 64, bin), true, nil
		}
	case router.AggAvg:
		if st.count == 0 || !st.has {
			return dst, false, nil
		}
		switch ag.in.oid {
		case oidInt8:
			var sum decimal
			sum.neg = st.sumI.Sign() < 0
			sum.coef.Abs(&st.sumI)
			return appendNumeric(dst, avgNumeric(&sum, st.count), bin), true, nil
		case oidNumeric:
			return appendNumeric(dst, avgNumeric(&st.sumD, st.count), bin), true, nil
		default:
			return appendFloat(dst, st.sumF/float64(st.count), 64, bin), true, nil
		}
	}
	return dst, false, internalf("aggregate function %d", ag.fn)
}

func appendInt8(dst []byte, n int64, bin bool) []byte {
	if bin {
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return strconv.AppendInt(dst, n, 10)
}

func appendNumeric(dst []byte, d *decimal, bin bool) []byte {
	if bin {
		return appendNumericBinary(dst, d)
	}
	return appendNumericText(dst, d)
}

func appendFloat(dst []byte, f float64, bitSize int, bin bool) []byte {
	if !bin {
		return appendFloatText(dst, f, bitSize)
	}
	if bitSize == 32 {
		return binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(f)))
	}
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}
