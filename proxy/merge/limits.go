package merge

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/shardwire/shardwire/router"
)

// ResolveLimit returns the value New takes for a scatter's LIMIT (offset false) or OFFSET
// (offset true): -1 when absent or NULL (LIMIT ALL), the constant, or the bound parameter
// read from the client's Bind values (params, with its parameter format codes: none for
// all text, one for all, or one per parameter). Binary parameters may be 2, 4 or 8 bytes
// (int2, int4, int8). A negative value is Postgres's error (2201W/2201X).
func ResolveLimit(v router.LimitValue, offset bool, params [][]byte, formats []int16) (int64, error) {
	what, code := "LIMIT", codeInvalidRowCountLimit
	if offset {
		what, code = "OFFSET", codeInvalidRowCountOff
	}
	if !v.Set {
		return -1, nil
	}
	n := v.Const
	if v.Param > 0 {
		i := v.Param - 1
		if i >= len(params) {
			return 0, &Error{Code: codeProtocolViolation, Message: fmt.Sprintf("%s refers to parameter $%d of %d", what, v.Param, len(params))}
		}
		raw := params[i]
		if raw == nil {
			return -1, nil
		}
		var format int16
		switch {
		case len(formats) == 1:
			format = formats[0]
		case i < len(formats):
			format = formats[i]
		}
		if format == 1 {
			switch len(raw) {
			case 2:
				n = int64(int16(binary.BigEndian.Uint16(raw)))
			case 4:
				n = int64(int32(binary.BigEndian.Uint32(raw)))
			case 8:
				n = int64(binary.BigEndian.Uint64(raw))
			default:
				return 0, &Error{Code: codeProtocolViolation, Message: fmt.Sprintf("%s parameter $%d: binary integer of %d bytes", what, v.Param, len(raw))}
			}
		} else {
			p, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return 0, &Error{Code: "22P02", Message: fmt.Sprintf("invalid input syntax for type bigint: %q", raw)}
			}
			n = p
		}
	}
	if n < 0 {
		return 0, &Error{Code: code, Message: what + " must not be negative"}
	}
	return n, nil
}
