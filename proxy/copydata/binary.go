package copydata

import (
	"encoding/binary"
)

// This file reads binary COPY data as Postgres's copyfromparse.c does: the 11-byte
// signature, a 32-bit flags word and a length-prefixed header extension, then tuples of a
// 16-bit field count and, per field, a 32-bit length (-1 for NULL) and that many bytes; a
// field count of -1 is the trailer.

// binarySignature opens every binary COPY stream.
const binarySignature = "PGCOPY\n\377\r\n\x00"

// binaryHeaderFixed is the length of the signature, flags and extension length.
const binaryHeaderFixed = len(binarySignature) + 4 + 4

// binStep says what the next byte of a binary stream belongs to.
type binStep uint8

const (
	binHeader    binStep = iota // signature, flags, extension length
	binExtension                // header extension bytes
	binCount                    // a tuple's field count
	binLength                   // a field's length
	binData                     // a field's bytes
	binEnded                    // after the trailer
)

// binaryScanner is the state of a binary stream.
type binaryScanner struct {
	step binStep
	// headN counts header bytes read so far.
	headN int
	// acc gathers a big-endian integer of accN bytes.
	acc  uint32
	accN int
	// remain counts the extension or field bytes still to skip.
	remain int
	// fields is the current tuple's field count, field the index of the field being read.
	fields int
	field  int
	// keyAt and keyLen locate the key's bytes in the tuple.
	keyAt  int
	keyLen int
}

// feedBinary splits a chunk of binary data.
func (s *Splitter) feedBinary(chunk []byte, sink Sink) error {
	b := &s.binary
	n := len(chunk)
	start := 0 // where the current unit (header, tuple) begins in chunk
	i := 0
	if b.step == binEnded && n > 0 {
		return s.rowError(CodeBadCopyFormat, "received copy data after EOF marker")
	}
	for i < n {
		switch b.step {
		case binHeader:
			c := chunk[i]
			i++
			if b.headN < len(binarySignature) {
				if c != binarySignature[b.headN] {
					return s.headerError("COPY file signature not recognized")
				}
				b.headN++
				continue
			}
			b.acc = b.acc<<8 | uint32(c)
			b.headN++
			switch b.headN {
			case len(binarySignature) + 4:
				flags := b.acc
				b.acc = 0
				if flags&(1<<16) != 0 {
					return s.headerError("invalid COPY file header (WITH OIDS)")
				}
				if flags&^(1<<16)>>16 != 0 {
					return s.headerError("unrecognized critical flags in COPY file header")
				}
			case binaryHeaderFixed:
				ext := int32(b.acc)
				b.acc = 0
				if ext < 0 {
					return s.headerError("invalid COPY file header (missing length)")
				}
				if int64(ext) > int64(s.opts.MaxRowSize-binaryHeaderFixed) {
					return s.tooLarge()
				}
				b.remain = int(ext)
				b.step = binExtension
				if b.remain == 0 {
					if err := s.binaryHeaderDone(chunk, start, i, sink); err != nil {
						return err
					}
					start = i
				}
			}

		case binExtension:
			k := min(b.remain, n-i)
			i += k
			b.remain -= k
			if b.remain == 0 {
				if err := s.binaryHeaderDone(chunk, start, i, sink); err != nil {
					return err
				}
				start = i
			}

		case binCount:
			if b.accN == 0 {
				s.line++
			}
			b.acc = b.acc<<8 | uint32(chunk[i])
			b.accN++
			i++
			if b.accN < 2 {
				continue
			}
			count := int(int16(b.acc))
			b.acc, b.accN = 0, 0
			if count == -1 {
				b.step = binEnded
				s.ended = true
				s.release()
				if i < n {
					return s.rowError(CodeBadCopyFormat, "received copy data after EOF marker")
				}
				start = i
				continue
			}
			if err := s.checkFieldCount(count); err != nil {
				return err
			}
			b.fields = count
			b.field = 0
			b.step = binLength

		case binLength:
			b.acc = b.acc<<8 | uint32(chunk[i])
			b.accN++
			i++
			if b.accN < 4 {
				continue
			}
			size := int(int32(b.acc))
			b.acc, b.accN = 0, 0
			at := len(s.carry) + i - start // tuple offset of the field's first byte
			if size < -1 {
				return s.rowError(CodeBadCopyFormat, "invalid field size")
			}
			if b.field == s.opts.KeyIndex {
				if err := s.checkBinaryKey(size); err != nil {
					return err
				}
				b.keyAt, b.keyLen = at, size
			}
			if size > 0 {
				if size > s.opts.MaxRowSize-at {
					return s.tooLarge()
				}
				b.remain = size
				b.step = binData
				continue
			}
			if done, err := s.binaryFieldDone(chunk, start, i, sink); err != nil {
				return err
			} else if done {
				start = i
			}

		case binData:
			k := min(b.remain, n-i)
			i += k
			b.remain -= k
			if b.remain > 0 {
				continue
			}
			if done, err := s.binaryFieldDone(chunk, start, i, sink); err != nil {
				return err
			} else if done {
				start = i
			}

		case binEnded:
			return s.rowError(CodeBadCopyFormat, "received copy data after EOF marker")
		}
	}
	if b.step == binEnded {
		return nil
	}
	return s.keep(chunk, start)
}

// headerError reports a fault in the binary header.
func (s *Splitter) headerError(msg string) *RowError {
	return &RowError{Format: Binary, Code: CodeBadCopyFormat, Msg: msg}
}

// binaryHeaderDone hands the complete header to sink as the prefix.
func (s *Splitter) binaryHeaderDone(chunk []byte, start, end int, sink Sink) error {
	s.binary.step = binCount
	err := s.emitPrefix(s.unit(chunk, start, end), sink)
	s.release()
	return err
}

// checkFieldCount checks a tuple's field count against the options.
func (s *Splitter) checkFieldCount(count int) error {
	if s.opts.Fields > 0 && count != s.opts.Fields {
		return s.rowError(CodeBadCopyFormat, "row field count is %d, expected %d", count, s.opts.Fields)
	}
	if count < 0 {
		return s.rowError(CodeBadCopyFormat, "invalid field count %d", count)
	}
	if count <= s.opts.KeyIndex {
		return s.rowError(CodeBadCopyFormat, "row has %d fields, the shard key is field %d", count, s.opts.KeyIndex+1)
	}
	return nil
}

// checkBinaryKey checks the length of the key field as its receive function would: int2,
// int4 or int8. A NULL is reported once the tuple is complete, as Postgres's NOT NULL check
// comes after the whole row is read.
func (s *Splitter) checkBinaryKey(size int) error {
	switch size {
	case -1, 2, 4, 8:
		return nil
	}
	return s.rowError(CodeNotSupported, "shard key in column %d has %d bytes: binary COPY supports int2, int4 and int8 keys only (not numeric)", s.opts.KeyIndex+1, size)
}

// binaryFieldDone moves past a complete field; after the tuple's last field it emits the
// tuple, which ends at chunk[end], and reports true.
func (s *Splitter) binaryFieldDone(chunk []byte, start, end int, sink Sink) (bool, error) {
	b := &s.binary
	b.field++
	if b.field < b.fields {
		b.step = binLength
		return false, nil
	}
	b.step = binCount
	raw := s.unit(chunk, start, end)
	if b.keyLen < 0 {
		return false, s.rowError(CodeNullKey, "null shard key in column %d", s.opts.KeyIndex+1)
	}
	k := raw[b.keyAt : b.keyAt+b.keyLen]
	var key int64
	switch b.keyLen {
	case 2:
		key = int64(int16(binary.BigEndian.Uint16(k)))
	case 4:
		key = int64(int32(binary.BigEndian.Uint32(k)))
	case 8:
		key = int64(binary.BigEndian.Uint64(k))
	}
	err := s.emitRow(raw, key, sink)
	s.release()
	return true, err
}

// finishBinary ends a binary stream. Like Postgres, it takes an end right after a tuple
// without the trailer, and ignores a single stray byte there (Postgres reads the field count
// as two bytes and takes a short read as the end).
func (s *Splitter) finishBinary() error {
	b := &s.binary
	switch b.step {
	case binHeader:
		switch {
		case b.headN < len(binarySignature):
			return s.headerError("COPY file signature not recognized")
		case b.headN < len(binarySignature)+4:
			return s.headerError("invalid COPY file header (missing flags)")
		default:
			return s.headerError("invalid COPY file header (missing length)")
		}
	case binExtension:
		return s.headerError("invalid COPY file header (wrong length)")
	case binLength, binData:
		return s.rowError(CodeBadCopyFormat, "unexpected EOF in COPY data")
	}
	return nil
}
