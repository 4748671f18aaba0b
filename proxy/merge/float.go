package merge

import (
	"math"
	"strconv"
)

// appendFloatText writes f as float8out/float4out do with extra_float_digits ≥ 1 (the
// default since Postgres 12): the shortest text that reads back as the same value, in fixed
// notation when the decimal exponent is in [-4, 15) for float8 or [-4, 6) for float4 and in
// exponential notation (at least two exponent digits) otherwise; NaN, Infinity, -Infinity.
func appendFloatText(dst []byte, f float64, bitSize int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	upper := 15
	if bitSize == 32 {
		upper = 6
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'e', -1, bitSize)
	// The exponent follows the 'e': sign and at least two digits.
	e := start
	for dst[e] != 'e' {
		e++
	}
	exp, _ := strconv.Atoi(string(dst[e+1:]))
	if exp >= -4 && exp < upper {
		dst = strconv.AppendFloat(dst[:start], f, 'f', -1, bitSize)
	}
	return dst
}

// parseFloatText parses float8out/float4out text (Go accepts NaN, Infinity, -Infinity).
func parseFloatText(b []byte, bitSize int) (float64, error) {
	return strconv.ParseFloat(string(b), bitSize)
}
