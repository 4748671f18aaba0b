package proxy

import (
	"fmt"
	"time"

	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
)

// While the proxy holds a client's BEGIN (the transaction's group is not known until its
// first keyed statement), statements the client prepares are prepared and described on a
// side connection — the default group's writer, not attached to the session — so that
// preparing does not pin the transaction to the default group. The statement is prepared
// again on whichever backend runs it.

// heldTx reports whether the session holds a BEGIN with no backend attached yet.
func (s *session) heldTx() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server == nil && s.virtualTx != 0
}

// sidePrepare validates st by preparing it on a side connection.
func (s *session) sidePrepare(st *statement) *clientError {
	_, ce := s.sideRun(nil, st)
	if ce == nil {
		st.valid.Store(true)
	}
	return ce
}

// sideRun prepares st (nil: the client's unnamed statement) on a side connection, runs msgs
// after it, syncs, and returns the replies that describe the statement (ParameterDescription,
// RowDescription, NoData), or the backend's error.
func (s *session) sideRun(msgs []byte, st *statement) ([][]byte, *clientError) {
	m := s.currentMap()
	addr := s.srv.topo.health.Writer(m.Groups[m.DefaultGroup].Name)
	sc, entry, err := s.acquire(addr)
	if err != nil {
		return nil, asClientError(err)
	}
	var buf []byte
	prepared := ""
	switch {
	case st == nil:
		if s.unnamed == nil {
			entry.release(sc)
			return nil, newClientError(codeInvalidStatementName, "unnamed prepared statement does not exist")
		}
		buf = append(buf, s.unnamed.frame...)
		sc.UnnamedOwner = nil // the side connection's unnamed statement is not tracked
	case !sc.Prepared().Has(st.name):
		if evicted, ok := sc.Prepared().Add(st.name); ok {
			buf = appendRenamed(buf, wire.Close, []byte{'S'}, evicted, nil)
		}
		buf = append(buf, st.frame...)
		prepared = st.name
	}
	buf = append(buf, msgs...)
	buf = append(buf, wire.Sync, 0, 0, 0, 4)
	replies, fail, ioErr := sideExchange(sc, buf)
	if ioErr != nil || fail != nil {
		if prepared != "" {
			sc.Prepared().Remove(prepared)
		}
	}
	if ioErr != nil {
		sc.MarkBroken()
		entry.release(sc)
		return nil, lostServerError().withCause(ioErr)
	}
	entry.release(sc)
	if fail != nil {
		body := wire.Frame(fail).Body()
		s.srv.metrics.errors.WithLabelValues(errorCode(body), "server").Inc()
		return nil, &clientError{code: errorCode(body), message: errorMessage(body), raw: downgradeFatal(fail)}
	}
	return replies, nil
}

// sideExchange writes msgs (ending with a Sync) on a connection the caller owns and reads to
// ReadyForQuery: the describing replies, copied, and the ErrorResponse frame, if any.
func sideExchange(sc *pool.Conn, msgs []byte) (replies [][]byte, fail []byte, err error) {
	fail, status, err := exchange(sc, msgs, 30*time.Second, func(f wire.Frame) {
		switch f.Type() {
		case wire.ParameterDesc, wire.RowDescription, wire.NoData:
			replies = append(replies, append([]byte(nil), f...))
		}
	})
	if err == nil && status != 'I' {
		sc.MarkBroken()
	}
	return replies, fail, err
}

// deferredAnswerableLocked reports whether every reply held behind deferred Parses can be
// given without a backend: each deferred unnamed Parse is the current one and was checked on
// a side connection (s.mu held).
func (s *session) deferredAnswerableLocked() bool {
	for _, d := range s.deferredParses {
		switch {
		case d.synth != nil:
		case d.unnamed:
			if s.unnamed == nil || d.gen != s.unnamedGen || !s.unnamed.checked {
				return false
			}
		case d.stmt != nil:
			if !d.stmt.valid.Load() {
				return false
			}
		}
	}
	return true
}

// describeHeld answers a Describe of a statement inside a held BEGIN on a side connection.
func (s *session) describeHeld(name, body []byte) error {
	var st *statement
	var describe []byte
	if len(name) == 0 {
		describe = wire.AppendHeader(nil, wire.Describe, len(body))
		describe = append(describe, body...)
	} else {
		s.mu.Lock()
		st = s.statements[string(name)]
		s.mu.Unlock()
		if st == nil {
			s.localError(newClientError(codeInvalidStatementName, fmt.Sprintf("prepared statement %q does not exist", name)), false)
			return nil
		}
		describe = appendRenamed(nil, wire.Describe, body[:1], st.name, nil)
	}
	replies, ce := s.sideRun(describe, st)
	if ce != nil {
		s.localError(ce, false)
		return nil
	}
	if st == nil && s.unnamed != nil {
		s.unnamed.checked = true
	}
	for _, r := range replies {
		s.reply(r)
	}
	return nil
}
