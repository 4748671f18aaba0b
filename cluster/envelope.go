package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// envelope types, the first byte of every user message this package sends.
const (
	envBroadcast byte = 1 // best effort, no reply
	envRequest   byte = 2 // reply with an envAck carrying the same id
	envAck       byte = 3
)

// envelope is the wire form of a Message plus routing fields.
type envelope struct {
	typ  byte
	id   uint64
	from string // sender node name
	addr string // sender gossip address host:port, where acks go
	err  string // handler error, acks only
	Message
}

func (e envelope) encode() []byte {
	n := 1 + binary.MaxVarintLen64*6 + len(e.from) + len(e.addr) + len(e.Kind) + len(e.err) + len(e.Body)
	b := make([]byte, 0, n)
	b = append(b, e.typ)
	b = binary.AppendUvarint(b, e.id)
	for _, s := range []string{e.from, e.addr, e.Kind, e.err} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	return append(b, e.Body...)
}

var errShortEnvelope = errors.New("truncated message")

func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 1 {
		return e, fmt.Errorf("cluster: decode message: %w", errShortEnvelope)
	}
	e.typ, b = b[0], b[1:]
	if e.typ < envBroadcast || e.typ > envAck {
		return e, fmt.Errorf("cluster: decode message: unknown type %d", e.typ)
	}
	id, n := binary.Uvarint(b)
	if n <= 0 {
		return e, fmt.Errorf("cluster: decode message id: %w", errShortEnvelope)
	}
	e.id, b = id, b[n:]
	field := func() ([]byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, errShortEnvelope
		}
		f := b[n : n+int(l)]
		b = b[n+int(l):]
		return f, nil
	}
	var fields [5][]byte
	for i := range fields {
		f, err := field()
		if err != nil {
			return envelope{}, fmt.Errorf("cluster: decode message field %d: %w", i, err)
		}
		fields[i] = f
	}
	if len(b) != 0 {
		return envelope{}, fmt.Errorf("cluster: decode message: %d trailing bytes", len(b))
	}
	e.from, e.addr, e.Kind, e.err = string(fields[0]), string(fields[1]), string(fields[2]), string(fields[3])
	e.Body = append([]byte(nil), fields[4]...)
	return e, nil
}
