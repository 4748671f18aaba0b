package cdc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errShort reports a pgoutput message shorter than its own counts and lengths say.
var errShort = errors.New("message shorter than its contents say")

// checkBounds checks, before pglogrepl decodes a row or truncate message, that every count
// and length in it fits in the message, so that a malformed message cannot make the
// decoder allocate gigabytes. Other messages hold no lengths that drive allocations.
func checkBounds(data []byte) error {
	var err error
	b := data[1:]
	switch data[0] {
	case 'I': // relation id, 'N', new tuple
		b, err = skip(b, 5)
		if err == nil {
			_, err = skipTuple(b)
		}
	case 'U': // relation id, optional 'K' or 'O' and old tuple, 'N', new tuple
		b, err = skip(b, 4)
		if err == nil && len(b) > 0 && (b[0] == 'K' || b[0] == 'O') {
			b, err = skipTuple(b[1:])
		}
		if err == nil {
			b, err = skip(b, 1)
		}
		if err == nil {
			_, err = skipTuple(b)
		}
	case 'D': // relation id, 'K' or 'O', old tuple
		b, err = skip(b, 5)
		if err == nil {
			_, err = skipTuple(b)
		}
	case 'T': // relation count, options, relation ids
		if len(b) >= 4 && uint64(len(b)) < 5+4*uint64(binary.BigEndian.Uint32(b)) {
			err = errShort
		}
	}
	if err != nil {
		return fmt.Errorf("decode pgoutput message %q: %w", data[0], err)
	}
	return nil
}

// skipTuple returns what follows the TupleData at the start of b.
func skipTuple(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for range n {
		if len(b) < 1 {
			return nil, errShort
		}
		kind := b[0]
		b = b[1:]
		if kind == 't' || kind == 'b' {
			if len(b) < 4 {
				return nil, errShort
			}
			size := binary.BigEndian.Uint32(b)
			if uint64(size) > uint64(len(b)-4) {
				return nil, errShort
			}
			b = b[4+int(size):]
		}
	}
	return b, nil
}

// skip returns b without its first n bytes.
func skip(b []byte, n int) ([]byte, error) {
	if n < 0 || len(b) < n {
		return nil, errShort
	}
	return b[n:], nil
}
