package proxy

import (
	"encoding/binary"
	"errors"
)

// bindParams reads the parameters of a Bind message in place for the router: no copy, no
// allocation. It is valid while the message's bytes are.
type bindParams struct {
	formats []byte // the format codes, 2 bytes each
	nFormat int
	values  []byte // count-prefixed values
	n       int
	offsets [16]int // start of each of the first 16 values in values (-1: NULL)
	lens    [16]int
}

var errMalformedBind = errors.New("malformed Bind parameters")

// reset points p at a Bind body's part after the statement name: format codes, values, result
// formats.
func (p *bindParams) reset(b []byte) error {
	if len(b) < 2 {
		return errMalformedBind
	}
	p.nFormat = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 2*p.nFormat+2 {
		return errMalformedBind
	}
	p.formats = b[:2*p.nFormat]
	b = b[2*p.nFormat:]
	p.n = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	p.values = b
	off := 0
	for i := range p.n {
		if len(b)-off < 4 {
			return errMalformedBind
		}
		l := int(int32(binary.BigEndian.Uint32(b[off:])))
		off += 4
		start := off
		if l < 0 {
			start = -1
		} else {
			if l > len(b)-off {
				return errMalformedBind
			}
			off += l
		}
		if i < len(p.offsets) {
			p.offsets[i], p.lens[i] = start, l
		}
	}
	return nil
}

// Len returns the number of parameters.
func (p *bindParams) Len() int { return p.n }

// Value returns parameter i (0-based): its bytes, whether they are binary, and whether it is
// NULL.
func (p *bindParams) Value(i int) (v []byte, binaryFormat bool, isNull bool) {
	if i < 0 || i >= p.n {
		return nil, false, true
	}
	switch {
	case p.nFormat == 1:
		binaryFormat = binary.BigEndian.Uint16(p.formats) == 1
	case i < p.nFormat:
		binaryFormat = binary.BigEndian.Uint16(p.formats[2*i:]) == 1
	}
	var start, l int
	if i < len(p.offsets) {
		start, l = p.offsets[i], p.lens[i]
	} else {
		off := 0
		for j := 0; ; j++ {
			l = int(int32(binary.BigEndian.Uint32(p.values[off:])))
			off += 4
			start = off
			if l < 0 {
				start = -1
			} else {
				off += l
			}
			if j == i {
				break
			}
		}
	}
	if start < 0 {
		return nil, binaryFormat, true
	}
	return p.values[start : start+l], binaryFormat, false
}
