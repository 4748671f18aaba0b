package merge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
)

// Special numeric values.
const (
	decFinite uint8 = iota
	decNaN
	decPosInf
	decNegInf
)

// Numeric binary sign words (numeric_send).
const (
	numericPos    = 0x0000
	numericNeg    = 0x4000
	numericNaN    = 0xC000
	numericPInf   = 0xD000
	numericNInf   = 0xF000
	numericNBase  = 10000
	numericMaxDig = 1000 // NUMERIC_MAX_DISPLAY_SCALE
)

// decimal is a Postgres numeric: a signed coefficient with a display scale (digits after the
// point, kept even when they are zeros, as Postgres does), or NaN, +Infinity, -Infinity.
type decimal struct {
	special uint8
	neg     bool
	coef    big.Int // absolute value × 10^scale
	scale   int32
}

var bigTen = big.NewInt(10)

// pow10 returns 10^n.
func pow10(n int64) *big.Int {
	return new(big.Int).Exp(bigTen, big.NewInt(n), nil)
}

// parseNumericText parses numeric_out's text: [-]digits[.digits], NaN, Infinity, -Infinity.
func parseNumericText(b []byte, d *decimal) error {
	*d = decimal{}
	switch string(b) {
	case "NaN":
		d.special = decNaN
		return nil
	case "Infinity":
		d.special = decPosInf
		return nil
	case "-Infinity":
		d.special = decNegInf
		return nil
	}
	s := b
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		d.neg = s[0] == '-'
		s = s[1:]
	}
	digits := make([]byte, 0, len(s))
	seenPoint, any := false, false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			any = true
			if seenPoint {
				d.scale++
			}
		case c == '.' && !seenPoint:
			seenPoint = true
		default:
			return fmt.Errorf("invalid numeric %q", b)
		}
	}
	if !any {
		return fmt.Errorf("invalid numeric %q", b)
	}
	if _, ok := d.coef.SetString(string(digits), 10); !ok {
		return fmt.Errorf("invalid numeric %q", b)
	}
	if d.coef.Sign() == 0 {
		d.neg = false
	}
	return nil
}

// parseNumericBinary parses numeric_send's format: int16 ndigits, weight, sign, dscale, then
// ndigits base-10000 digits, the first worth 10000^weight.
func parseNumericBinary(b []byte, d *decimal) error {
	*d = decimal{}
	if len(b) < 8 {
		return errors.New("binary numeric shorter than its header")
	}
	ndigits := int(int16(binary.BigEndian.Uint16(b)))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	dscale := int(binary.BigEndian.Uint16(b[6:]))
	if ndigits < 0 || len(b) != 8+2*ndigits || dscale > 0x3FFF {
		return errors.New("malformed binary numeric")
	}
	switch sign {
	case numericNaN:
		d.special = decNaN
		return nil
	case numericPInf:
		d.special = decPosInf
		return nil
	case numericNInf:
		d.special = decNegInf
		return nil
	case numericPos, numericNeg:
	default:
		return fmt.Errorf("binary numeric with sign word %#x", sign)
	}
	var n big.Int
	base := big.NewInt(numericNBase)
	for i := 0; i < ndigits; i++ {
		dig := binary.BigEndian.Uint16(b[8+2*i:])
		if dig >= numericNBase {
			return errors.New("binary numeric digit out of range")
		}
		n.Mul(&n, base)
		n.Add(&n, big.NewInt(int64(dig)))
	}
	// n is worth 10000^(weight-ndigits+1); scale it to dscale decimal places, truncating
	// digits beyond dscale as numeric_recv does.
	exp := int64(4*(weight-ndigits+1) + dscale)
	if exp >= 0 {
		n.Mul(&n, pow10(exp))
	} else {
		n.Quo(&n, pow10(-exp))
	}
	d.coef.Set(&n)
	d.scale = int32(dscale)
	d.neg = sign == numericNeg && n.Sign() != 0
	return nil
}

// appendNumericText writes d as numeric_out does.
func appendNumericText(dst []byte, d *decimal) []byte {
	switch d.special {
	case decNaN:
		return append(dst, "NaN"...)
	case decPosInf:
		return append(dst, "Infinity"...)
	case decNegInf:
		return append(dst, "-Infinity"...)
	}
	if d.neg && d.coef.Sign() != 0 {
		dst = append(dst, '-')
	}
	s := d.coef.Text(10)
	scale := int(d.scale)
	if len(s) <= scale {
		dst = append(dst, '0')
		if scale > 0 {
			dst = append(dst, '.')
			for i := len(s); i < scale; i++ {
				dst = append(dst, '0')
			}
			dst = append(dst, s...)
		}
		return dst
	}
	dst = append(dst, s[:len(s)-scale]...)
	if scale > 0 {
		dst = append(dst, '.')
		dst = append(dst, s[len(s)-scale:]...)
	}
	return dst
}

// nbaseDigits returns the base-10000 digits of d's absolute value (most significant first,
// without leading or trailing zero digits) and the weight of the first one, as Postgres
// stores a numeric. Zero has no digits and weight 0.
func nbaseDigits(d *decimal) (digits []uint16, weight int) {
	if d.coef.Sign() == 0 {
		return nil, 0
	}
	pad := (4 - int(d.scale)%4) % 4
	s := d.coef.Text(10) + zeros(pad)
	fracGroups := (int(d.scale) + pad) / 4
	lead := len(s) % 4
	if lead == 0 {
		lead = 4
	}
	n := (len(s) + 3) / 4
	digits = make([]uint16, 0, n)
	v, _ := strconv.Atoi(s[:lead])
	digits = append(digits, uint16(v))
	for i := lead; i < len(s); i += 4 {
		v, _ := strconv.Atoi(s[i : i+4])
		digits = append(digits, uint16(v))
	}
	weight = n - 1 - fracGroups
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	return digits, weight
}

func zeros(n int) string {
	const z = "0000"
	return z[:n]
}

// appendNumericBinary writes d as numeric_send does.
func appendNumericBinary(dst []byte, d *decimal) []byte {
	var sign uint16
	switch d.special {
	case decNaN:
		sign = numericNaN
	case decPosInf:
		sign = numericPInf
	case decNegInf:
		sign = numericNInf
	}
	if d.special != decFinite {
		// numeric_send reads the display scale of a special value from its header bits,
		// which gives 0 for NaN and 32 for the infinities.
		scale := byte(0)
		if d.special != decNaN {
			scale = 32
		}
		return append(dst, 0, 0, 0, 0, byte(sign>>8), byte(sign), 0, scale)
	}
	digits, weight := nbaseDigits(d)
	if d.neg && len(digits) > 0 {
		sign = numericNeg
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(digits)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
	dst = binary.BigEndian.AppendUint16(dst, sign)
	dst = binary.BigEndian.AppendUint16(dst, uint16(d.scale))
	for _, g := range digits {
		dst = binary.BigEndian.AppendUint16(dst, g)
	}
	return dst
}

// rescaled returns d's signed coefficient at scale (≥ d.scale).
func (d *decimal) signedAt(scale int32) *big.Int {
	v := new(big.Int).Set(&d.coef)
	if scale > d.scale {
		v.Mul(v, pow10(int64(scale-d.scale)))
	}
	if d.neg {
		v.Neg(v)
	}
	return v
}

// add sets d to d + x with Postgres's rules: NaN absorbs everything, +Inf + -Inf is NaN, an
// infinity absorbs finite values, and the scale is the larger of the two.
func (d *decimal) add(x *decimal) {
	if d.special != decFinite || x.special != decFinite {
		switch {
		case d.special == decNaN || x.special == decNaN:
			d.special = decNaN
		case d.special == decFinite:
			d.special = x.special
		case x.special == decFinite || x.special == d.special:
		default: // opposite infinities
			d.special = decNaN
		}
		return
	}
	scale := max(d.scale, x.scale)
	sum := d.signedAt(scale)
	sum.Add(sum, x.signedAt(scale))
	d.neg = sum.Sign() < 0
	d.coef.Abs(sum)
	d.scale = scale
}

// specialRank orders numeric values as Postgres does: -Infinity < finite < Infinity < NaN.
func (d *decimal) specialRank() int {
	switch d.special {
	case decNegInf:
		return -1
	case decPosInf:
		return 1
	case decNaN:
		return 2
	}
	return 0
}

// compareDecimal orders two numerics as numeric_cmp does (NaN equals NaN, above all).
func compareDecimal(a, b *decimal) int {
	ra, rb := a.specialRank(), b.specialRank()
	if ra != rb || ra != 0 {
		return cmpInt(ra, rb)
	}
	if a.scale == b.scale {
		sa, sb := a.coef.Sign(), b.coef.Sign()
		if a.neg {
			sa = -sa
		}
		if b.neg {
			sb = -sb
		}
		if sa != sb {
			return cmpInt(sa, sb)
		}
		c := a.coef.Cmp(&b.coef)
		if a.neg {
			c = -c
		}
		return c
	}
	scale := max(a.scale, b.scale)
	return a.signedAt(scale).Cmp(b.signedAt(scale))
}

// normalizedKey appends a byte string equal for equal numerics (1.0 and 1.00 alike).
func (d *decimal) appendKey(dst []byte) []byte {
	dst = append(dst, d.special)
	if d.special != decFinite {
		return dst
	}
	c := new(big.Int).Set(&d.coef)
	scale := d.scale
	var r big.Int
	for scale > 0 && c.Sign() != 0 {
		q, _ := new(big.Int).QuoRem(c, bigTen, &r)
		if r.Sign() != 0 {
			break
		}
		c = q
		scale--
	}
	if c.Sign() == 0 {
		scale = 0
	}
	neg := byte(0)
	if d.neg && c.Sign() != 0 {
		neg = 1
	}
	dst = append(dst, neg)
	dst = binary.BigEndian.AppendUint32(dst, uint32(scale))
	cb := c.Bytes()
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(cb)))
	return append(dst, cb...)
}

// weightAndFirst returns the weight and first base-10000 digit of |d| (0, 0 for zero), as
// select_div_scale reads them.
func weightAndFirst(d *decimal) (int, int) {
	digits, weight := nbaseDigits(d)
	if len(digits) == 0 {
		return 0, 0
	}
	return weight, int(digits[0])
}

// avgNumeric returns sum / count rounded as numeric_div does: the result scale is chosen by
// select_div_scale (at least 16 significant digits, no less than either input's display
// scale, at most 1000) and the quotient is rounded half away from zero.
func avgNumeric(sum *decimal, count int64) *decimal {
	res := &decimal{}
	if sum.special != decFinite {
		res.special = sum.special // NaN, or ±Infinity divided by a positive count
		return res
	}
	var cnt decimal
	cnt.coef.SetInt64(count)
	w1, f1 := weightAndFirst(sum)
	w2, f2 := weightAndFirst(&cnt)
	qweight := w1 - w2
	if f1 <= f2 {
		qweight--
	}
	rscale := 16 - qweight*4
	rscale = max(rscale, int(sum.scale), 0)
	rscale = min(rscale, numericMaxDig)

	num := new(big.Int).Mul(&sum.coef, pow10(int64(rscale)))
	den := new(big.Int).Mul(big.NewInt(count), pow10(int64(sum.scale)))
	var r big.Int
	q, _ := new(big.Int).QuoRem(num, den, &r)
	r.Lsh(&r, 1)
	if r.Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	res.coef.Set(q)
	res.scale = int32(rscale)
	res.neg = sum.neg && q.Sign() != 0
	return res
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
