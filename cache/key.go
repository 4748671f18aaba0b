package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// Key identifies one cache entry: a SHA-256 over everything the entry's content depends on.
type Key [32]byte

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// keyDomain starts every key's hash input. Changing it (when the entry encoding or the key
// recipe changes) makes keys built by older binaries unreachable.
const keyDomain = "shardwire cache key v1\x00"

// Part tags: each part of a key's input starts with its kind and (for variable-length parts)
// its length, so that no sequence of parts hashes like another.
const (
	partString byte = 's'
	partBytes  byte = 'b'
	partUint64 byte = 'u'
)

// KeyBuilder hashes the parts of a key. The zero value is not usable: call NewKeyBuilder.
// A KeyBuilder is not safe for concurrent use; reuse one per goroutine (or from a
// sync.Pool) with Reset.
type KeyBuilder struct {
	h   hash.Hash
	hdr [9]byte
	sum [sha256.Size]byte
	buf []byte // scratch for string parts (the hash has no WriteString)
}

// maxKeptScratch is the largest string scratch buffer a KeyBuilder keeps between keys.
const maxKeptScratch = 64 << 10

// NewKeyBuilder returns a reset KeyBuilder.
func NewKeyBuilder() *KeyBuilder {
	b := &KeyBuilder{h: sha256.New()}
	b.Reset()
	return b
}

// Reset starts a new key.
func (b *KeyBuilder) Reset() {
	b.h.Reset()
	b.buf = append(b.buf[:0], keyDomain...)
	_, _ = b.h.Write(b.buf)
}

// String adds a string part.
func (b *KeyBuilder) String(s string) {
	b.header(partString, uint64(len(s)))
	b.buf = append(b.buf[:0], s...)
	_, _ = b.h.Write(b.buf)
	if cap(b.buf) > maxKeptScratch {
		b.buf = nil
	}
}

// Bytes adds a byte-slice part. A nil slice and an empty one add the same part.
func (b *KeyBuilder) Bytes(p []byte) {
	b.header(partBytes, uint64(len(p)))
	_, _ = b.h.Write(p)
}

// Uint64 adds a fixed-size integer part (use it for int64 values too, converted).
func (b *KeyBuilder) Uint64(v uint64) {
	b.header(partUint64, v)
}

// Sum returns the key of the parts added since the last Reset. It does not reset.
func (b *KeyBuilder) Sum() Key {
	var k Key
	copy(k[:], b.h.Sum(b.sum[:0]))
	return k
}

// header writes a part's tag and a 64-bit number (its length, or its value).
func (b *KeyBuilder) header(tag byte, n uint64) {
	b.hdr[0] = tag
	binary.BigEndian.PutUint64(b.hdr[1:], n)
	_, _ = b.h.Write(b.hdr[:])
}
