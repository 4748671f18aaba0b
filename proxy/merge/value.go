package merge

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
)

// Type OIDs the merge knows.
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidNumeric     = 1700
	oidUUID        = 2950
)

// kind is how the merge reads, orders and compares values of a type.
type kind uint8

const (
	kUnknown kind = iota
	kInt
	kOID
	kFloat4
	kFloat8
	kNumeric
	kText // bytewise, which is the C collation's order
	kBpchar
	kBool
	kDate
	kTimestamp
	kTimestamptz
	kTime
	kUUID
	kInterval
	kBytea
)

func kindOf(oid uint32) kind {
	switch oid {
	case oidInt2, oidInt4, oidInt8:
		return kInt
	case oidOID:
		return kOID
	case oidFloat4:
		return kFloat4
	case oidFloat8:
		return kFloat8
	case oidNumeric:
		return kNumeric
	case oidText, oidVarchar, oidName, oidChar:
		return kText
	case oidBpchar:
		return kBpchar
	case oidBool:
		return kBool
	case oidDate:
		return kDate
	case oidTimestamp:
		return kTimestamp
	case oidTimestamptz:
		return kTimestamptz
	case oidTime:
		return kTime
	case oidUUID:
		return kUUID
	case oidInterval:
		return kInterval
	case oidBytea:
		return kBytea
	}
	return kUnknown
}

// column is one column of a group's output: its type and wire format (0 text, 1 binary).
type column struct {
	oid    uint32
	format int16
	kind   kind
}

// value is a decoded column value, for ordering and equality. The class orders special
// values: -1 for -Infinity, 0 for finite, 1 for Infinity, 2 for NaN.
type value struct {
	null bool
	cls  int8
	i, j int64
	f    float64
	b    []byte // text kinds: aliases the row
	d    decimal
}

// decode reads raw (nil for NULL) as c's type into v.
func (c column) decode(raw []byte, v *value) error {
	v.null, v.cls, v.i, v.j, v.f, v.b = raw == nil, 0, 0, 0, 0, nil
	if raw == nil {
		return nil
	}
	bin := c.format == 1
	switch c.kind {
	case kInt:
		if !bin {
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return fmt.Errorf("integer %q: %w", raw, err)
			}
			v.i = n
			return nil
		}
		switch {
		case c.oid == oidInt2 && len(raw) == 2:
			v.i = int64(int16(binary.BigEndian.Uint16(raw)))
		case c.oid == oidInt4 && len(raw) == 4:
			v.i = int64(int32(binary.BigEndian.Uint32(raw)))
		case c.oid == oidInt8 && len(raw) == 8:
			v.i = int64(binary.BigEndian.Uint64(raw))
		default:
			return fmt.Errorf("binary integer of type %d with %d bytes", c.oid, len(raw))
		}
	case kOID:
		if !bin {
			n, err := strconv.ParseUint(string(raw), 10, 32)
			if err != nil {
				return fmt.Errorf("oid %q: %w", raw, err)
			}
			v.i = int64(n)
			return nil
		}
		if len(raw) != 4 {
			return fmt.Errorf("binary oid with %d bytes", len(raw))
		}
		v.i = int64(binary.BigEndian.Uint32(raw))
	case kFloat4, kFloat8:
		bits := 64
		if c.kind == kFloat4 {
			bits = 32
		}
		if !bin {
			f, err := parseFloatText(raw, bits)
			if err != nil {
				return fmt.Errorf("float %q: %w", raw, err)
			}
			v.f = f
		} else if bits == 32 && len(raw) == 4 {
			v.f = float64(math.Float32frombits(binary.BigEndian.Uint32(raw)))
		} else if bits == 64 && len(raw) == 8 {
			v.f = math.Float64frombits(binary.BigEndian.Uint64(raw))
		} else {
			return fmt.Errorf("binary float with %d bytes", len(raw))
		}
		switch {
		case math.IsNaN(v.f):
			v.cls = 2
		case math.IsInf(v.f, 1):
			v.cls = 1
		case math.IsInf(v.f, -1):
			v.cls = -1
		}
	case kNumeric:
		var err error
		if bin {
			err = parseNumericBinary(raw, &v.d)
		} else {
			err = parseNumericText(raw, &v.d)
		}
		if err != nil {
			return err
		}
		v.cls = int8(v.d.specialRank())
	case kText:
		v.b = raw
	case kBpchar:
		v.b = bytes.TrimRight(raw, " ")
	case kBool:
		switch {
		case !bin && len(raw) == 1 && (raw[0] == 't' || raw[0] == 'f'):
			v.i = int64(btoi(raw[0] == 't'))
		case bin && len(raw) == 1 && raw[0] <= 1:
			v.i = int64(raw[0])
		default:
			return fmt.Errorf("boolean %q", raw)
		}
	case kDate:
		if !bin {
			days, cls, err := parseDateText(raw)
			v.i, v.cls = days, cls
			return err
		}
		if len(raw) != 4 {
			return fmt.Errorf("binary date with %d bytes", len(raw))
		}
		switch d := int32(binary.BigEndian.Uint32(raw)); d {
		case math.MaxInt32:
			v.cls = 1
		case math.MinInt32:
			v.cls = -1
		default:
			v.i = int64(d)
		}
	case kTimestamp, kTimestamptz:
		if !bin {
			us, cls, err := parseTimestampText(raw, c.kind == kTimestamptz)
			v.i, v.cls = us, cls
			return err
		}
		if len(raw) != 8 {
			return fmt.Errorf("binary timestamp with %d bytes", len(raw))
		}
		switch t := int64(binary.BigEndian.Uint64(raw)); t {
		case math.MaxInt64:
			v.cls = 1
		case math.MinInt64:
			v.cls = -1
		default:
			v.i = t
		}
	case kTime:
		if !bin {
			us, err := parseTimeText(raw)
			v.i = us
			return err
		}
		if len(raw) != 8 {
			return fmt.Errorf("binary time with %d bytes", len(raw))
		}
		v.i = int64(binary.BigEndian.Uint64(raw))
	case kUUID:
		if (bin && len(raw) != 16) || (!bin && len(raw) != 36) {
			return fmt.Errorf("uuid %q", raw)
		}
		v.b = raw // lower-case hex text orders as the bytes do
	case kInterval:
		var months, days, us int64
		if bin {
			if len(raw) != 16 {
				return fmt.Errorf("binary interval with %d bytes", len(raw))
			}
			us = int64(binary.BigEndian.Uint64(raw))
			days = int64(int32(binary.BigEndian.Uint32(raw[8:])))
			months = int64(int32(binary.BigEndian.Uint32(raw[12:])))
		} else {
			var err error
			if months, days, us, err = parseIntervalText(raw); err != nil {
				return err
			}
		}
		v.i, v.j = intervalSpan(months, days, us)
	case kBytea:
		if bin {
			v.b = raw
			return nil
		}
		if len(raw) < 2 || raw[0] != '\\' || raw[1] != 'x' {
			return fmt.Errorf("bytea text is not in bytea_output hex")
		}
		b := make([]byte, hex.DecodedLen(len(raw)-2))
		if _, err := hex.Decode(b, raw[2:]); err != nil {
			return fmt.Errorf("bytea: %w", err)
		}
		v.b = b
	default:
		return fmt.Errorf("type OID %d", c.oid)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// compareValues orders two non-NULL values of kind k as Postgres's default btree operator
// class does (text kinds bytewise, the C collation).
func compareValues(k kind, a, b *value) int {
	if a.cls != b.cls {
		return cmpInt(int(a.cls), int(b.cls))
	}
	switch k {
	case kFloat4, kFloat8:
		if a.cls != 0 {
			return 0
		}
		switch {
		case a.f < b.f:
			return -1
		case a.f > b.f:
			return 1
		}
		return 0
	case kNumeric:
		return compareDecimal(&a.d, &b.d)
	case kText, kBpchar, kUUID, kBytea:
		return bytes.Compare(a.b, b.b)
	case kInterval:
		if a.i != b.i {
			return cmp64(a.i, b.i)
		}
		return cmp64(a.j, b.j)
	}
	if a.cls != 0 {
		return 0
	}
	return cmp64(a.i, b.i)
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// appendKey appends a byte string that is equal for two values exactly when Postgres's
// equality says they are equal (1.0 = 1.00, 0 = -0, '1 day' = '24:00:00', 'a ' = 'a' for
// char(n)), for grouping and DISTINCT.
func appendKey(dst []byte, k kind, v *value) []byte {
	if v.null {
		return append(dst, 0)
	}
	dst = append(dst, 1, byte(v.cls))
	switch k {
	case kFloat4, kFloat8:
		if v.cls != 0 {
			return dst
		}
		f := v.f
		if f == 0 {
			f = 0 // -0 equals 0
		}
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
	case kNumeric:
		return v.d.appendKey(dst)
	case kText, kBpchar, kUUID, kBytea:
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v.b)))
		return append(dst, v.b...)
	case kInterval:
		dst = binary.BigEndian.AppendUint64(dst, uint64(v.i))
		return binary.BigEndian.AppendUint64(dst, uint64(v.j))
	}
	return binary.BigEndian.AppendUint64(dst, uint64(v.i))
}
