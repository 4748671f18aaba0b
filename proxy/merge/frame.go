package merge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire frames: a type byte, an int32 length counting itself and the body, the body.

// splitDataRow splits a DataRow frame into its column values, nil for NULL (a non-NULL empty
// value is an empty, non-nil slice). The values alias frame; cols is reused.
func splitDataRow(frame []byte, cols [][]byte) ([][]byte, error) {
	if len(frame) < 7 || frame[0] != 'D' {
		return nil, errors.New("not a DataRow frame")
	}
	if int(binary.BigEndian.Uint32(frame[1:])) != len(frame)-1 {
		return nil, errors.New("DataRow length does not match its frame")
	}
	n := int(int16(binary.BigEndian.Uint16(frame[5:])))
	if n < 0 {
		return nil, errors.New("DataRow with a negative column count")
	}
	cols = cols[:0]
	p := 7
	for range n {
		if p+4 > len(frame) {
			return nil, errors.New("DataRow truncated")
		}
		l := int(int32(binary.BigEndian.Uint32(frame[p:])))
		p += 4
		if l < 0 {
			cols = append(cols, nil)
			continue
		}
		if p+l > len(frame) {
			return nil, errors.New("DataRow value truncated")
		}
		cols = append(cols, frame[p:p+l:p+l])
		p += l
	}
	if p != len(frame) {
		return nil, errors.New("DataRow has trailing bytes")
	}
	return cols, nil
}

// appendDataRow appends a DataRow frame holding cols (nil for NULL).
func appendDataRow(dst []byte, cols [][]byte) []byte {
	start := len(dst)
	dst = append(dst, 'D', 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(cols)))
	for _, c := range cols {
		if c == nil {
			dst = binary.BigEndian.AppendUint32(dst, 0xFFFFFFFF)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(c)))
		dst = append(dst, c...)
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// field is one field of a RowDescription.
type field struct {
	name     []byte
	tableOID uint32
	attnum   int16
	typeOID  uint32
	typlen   int16
	typmod   int32
	format   int16
}

// parseRowDescription reads a RowDescription frame.
func parseRowDescription(frame []byte) ([]field, error) {
	if len(frame) < 7 || frame[0] != 'T' {
		return nil, errors.New("not a RowDescription frame")
	}
	if int(binary.BigEndian.Uint32(frame[1:])) != len(frame)-1 {
		return nil, errors.New("RowDescription length does not match its frame")
	}
	n := int(int16(binary.BigEndian.Uint16(frame[5:])))
	if n < 0 {
		return nil, errors.New("RowDescription with a negative field count")
	}
	fields := make([]field, 0, n)
	p := 7
	for range n {
		end := bytes.IndexByte(frame[p:], 0)
		if end < 0 || p+end+1+18 > len(frame) {
			return nil, fmt.Errorf("RowDescription field %d truncated", len(fields)+1)
		}
		f := field{name: frame[p : p+end]}
		p += end + 1
		f.tableOID = binary.BigEndian.Uint32(frame[p:])
		f.attnum = int16(binary.BigEndian.Uint16(frame[p+4:]))
		f.typeOID = binary.BigEndian.Uint32(frame[p+6:])
		f.typlen = int16(binary.BigEndian.Uint16(frame[p+10:]))
		f.typmod = int32(binary.BigEndian.Uint32(frame[p+12:]))
		f.format = int16(binary.BigEndian.Uint16(frame[p+16:]))
		p += 18
		fields = append(fields, f)
	}
	if p != len(frame) {
		return nil, errors.New("RowDescription has trailing bytes")
	}
	return fields, nil
}

// appendRowDescription appends a RowDescription frame.
func appendRowDescription(dst []byte, fields []field) []byte {
	start := len(dst)
	dst = append(dst, 'T', 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(fields)))
	for _, f := range fields {
		dst = append(dst, f.name...)
		dst = append(dst, 0)
		dst = binary.BigEndian.AppendUint32(dst, f.tableOID)
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.attnum))
		dst = binary.BigEndian.AppendUint32(dst, f.typeOID)
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.typlen))
		dst = binary.BigEndian.AppendUint32(dst, uint32(f.typmod))
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.format))
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}
