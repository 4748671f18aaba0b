package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/copydata"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// copySplitFlush is how much of a group's rows the proxy gathers before sending them as one
// CopyData message.
const copySplitFlush = 64 << 10

// copySplit is a COPY ... FROM STDIN of a sharded table that the proxy splits: every group's
// branch runs the client's COPY statement, and each data row goes to the group owning its
// key. It lives from the CopyInResponse to the end of the client's data.
type copySplit struct {
	pp       *proxyPortal
	simple   bool
	implicit bool
	m        *shardmap.Map
	splitter *copydata.Splitter
	targets  []copyTarget // by group index
	prefix   []byte       // sent to every group before its first row
	started  time.Time
}

// copyTarget is one group's end of a split COPY.
type copyTarget struct {
	group string
	sc    *pool.Conn
	buf   []byte // rows not yet sent
	rows  int64
	fresh bool // the prefix has not been sent yet
}

// Prefix implements copydata.Sink: every group gets the header (or binary signature) first.
func (c *copySplit) Prefix(b []byte) error {
	c.prefix = append([]byte(nil), b...)
	return nil
}

// Row implements copydata.Sink: the row goes to the group owning its key.
func (c *copySplit) Row(raw []byte, key int64) error {
	t := &c.targets[c.m.Owner[shardmap.ShardOf(key)]]
	if t.fresh {
		t.buf = append(t.buf, c.prefix...)
		t.fresh = false
	}
	t.buf = append(t.buf, raw...)
	t.rows++
	if len(t.buf) >= copySplitFlush {
		return t.send()
	}
	return nil
}

// send writes the gathered rows as one CopyData message.
func (t *copyTarget) send() error {
	if len(t.buf) == 0 {
		return nil
	}
	if _, err := t.sc.W.Write(wire.AppendHeader(nil, wire.CopyData, len(t.buf))); err != nil {
		return fmt.Errorf("group %s: %w", t.group, err)
	}
	if _, err := t.sc.W.Write(t.buf); err != nil {
		return fmt.Errorf("group %s: %w", t.group, err)
	}
	t.buf = t.buf[:0]
	return nil
}

// copyOptions turns the router's description of the data into the splitter's options.
func copyOptions(spec *router.CopySpec) copydata.Options {
	o := copydata.Options{Delimiter: spec.Delimiter, Quote: spec.Quote, Escape: spec.Escape, Null: spec.Null,
		Header: spec.Header, KeyIndex: spec.KeyIndex, Fields: spec.Columns}
	switch spec.Format {
	case router.CopyCSV:
		o.Format = copydata.CSV
	case router.CopyBinary:
		o.Format = copydata.Binary
	default:
		o.Format = copydata.Text
	}
	return o
}

// runCopy starts a COPY of a sharded table: FROM STDIN splits the client's rows over the
// groups, TO STDOUT concatenates every group's rows.
func (s *session) runCopy(pp *proxyPortal, simple bool) error {
	if pp.plan.Kind != router.KindWrite {
		return s.copyOut(pp, simple)
	}
	spec := pp.plan.Copy
	if spec.Encoding != "" && !copydata.SupportsClientEncoding(spec.Encoding) {
		s.routeFailed(newClientError(codeFeatureNotSupp, "COPY into a sharded table with ENCODING "+spec.Encoding+" is not supported").
			withHint("send the data in UTF8 or another ASCII-compatible encoding"), simple)
		return nil
	}
	opts := copyOptions(spec)
	splitter, err := copydata.NewSplitter(opts)
	if err != nil {
		s.routeFailed(newClientError(codeInvalidParameterValue, err.Error()), simple)
		return nil
	}
	implicit, ok := s.openSplitTx()
	if !ok {
		msg, hint := "COPY into sharded table "+spec.Table+" inside a transaction needs two_phase_commit on the database",
			"run the COPY outside BEGIN ... COMMIT, or set two_phase_commit for the database"
		if s.mode == config.PoolModeSession {
			msg, hint = "COPY into sharded table "+spec.Table+" is not supported in session pool mode", "use transaction pool mode for bulk loads into sharded tables"
		}
		s.routeFailed(newClientError(codeFeatureNotSupp, msg).withHint(hint), simple)
		return nil
	}
	if implicit {
		s.srv.multi.multiGroup.Inc()
	}
	m := pp.m
	cs := &copySplit{pp: pp, simple: simple, implicit: implicit, m: m, splitter: splitter,
		targets: make([]copyTarget, len(m.Groups)), started: time.Now()}
	// Every group's branch first (opening one talks to the others), then every COPY.
	for gi := range m.Groups {
		sc, err := s.enterGroup(gi)
		if err != nil {
			if errors.Is(err, errBranchLost) {
				s.abandonSplit(implicit, simple, lostServerError())
			} else {
				s.abandonSplit(implicit, simple, asClientError(err))
			}
			return nil
		}
		s.mu.Lock()
		s.noteWriteTouchesLocked(&pp.plan, m)
		s.mu.Unlock()
		cs.targets[gi] = copyTarget{group: m.Groups[gi].Name, sc: sc, fresh: true}
	}
	if spec.Encoding == "" {
		// The data comes in the session's client_encoding: a multi-byte one whose bytes can
		// look like a delimiter or a quote cannot be split row by row.
		rows, err := queryText(cs.targets[0].sc, "SHOW client_encoding", splitBudget)
		if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
			cs.targets[0].sc.MarkBroken()
			s.abandonSplit(implicit, simple, lostServerError().withCause(err))
			return nil
		}
		if enc := rows[0][0]; !copydata.SupportsClientEncoding(enc) {
			s.abandonSplit(implicit, simple, newClientError(codeFeatureNotSupp, "COPY into sharded table "+spec.Table+" with client_encoding "+enc+" is not supported").
				withHint("send the data in UTF8 (SET client_encoding = 'UTF8') or another ASCII-compatible encoding"))
			return nil
		}
	}
	if major := serverMajor(cs.targets[0].sc.Params()["server_version"]); major > 0 {
		// How `\.` reads depends on the servers' version: split as they will read.
		opts.ServerMajor = major
		if cs.splitter, err = copydata.NewSplitter(opts); err != nil {
			s.abandonSplit(implicit, simple, newClientError(codeInvalidParameterValue, err.Error()))
			return nil
		}
	}
	var response []byte
	for gi := range m.Groups {
		sc := cs.targets[gi].sc
		resp, fail, err := startCopyIn(sc, pp.sql)
		if err != nil || fail != nil {
			cs.abortStarted(gi)
			ce := lostServerError().withCause(err)
			if err != nil {
				sc.MarkBroken()
			} else {
				body := wire.Frame(fail).Body()
				ce = &clientError{code: errorCode(body), message: errorMessage(body), raw: downgradeFatal(wire.Frame(fail))}
			}
			s.abandonSplit(implicit, simple, ce)
			return nil
		}
		if response == nil {
			response = resp
		}
	}
	s.copySplit = cs
	s.wmu.Lock()
	s.writeClient(response)
	_ = s.out.Flush()
	s.wmu.Unlock()
	return nil
}

// startCopyIn sends a COPY FROM STDIN statement and reads to its CopyInResponse (returned,
// copied), or to the ReadyForQuery after its error (fail, the ErrorResponse frame).
func startCopyIn(sc *pool.Conn, sql string) (response, fail []byte, err error) {
	sc.UnnamedOwner = nil
	_ = sc.SetDeadline(time.Now().Add(splitBudget))
	defer sc.SetDeadline(time.Time{})
	if _, err := sc.W.Write(simpleQueryFrame(sql)); err != nil {
		return nil, nil, fmt.Errorf("send: %w", err)
	}
	if err := sc.W.Flush(); err != nil {
		return nil, nil, fmt.Errorf("send: %w", err)
	}
	for {
		f, err := sc.R.Next()
		if err != nil {
			return nil, nil, fmt.Errorf("read reply: %w", err)
		}
		switch f.Type() {
		case wire.CopyInResponse:
			return append([]byte(nil), f...), nil, nil
		case wire.ErrorResponse:
			fail = append([]byte(nil), f...)
		case wire.ReadyForQuery:
			if fail == nil {
				fail = []byte(newErrorFrame(codeInternal, "the group did not start the COPY"))
			}
			return nil, fail, nil
		}
	}
}

// newErrorFrame encodes an ErrorResponse.
func newErrorFrame(code, msg string) []byte {
	return appendErrorResponse(nil, newClientError(code, msg))
}

// abortStarted ends the COPY of the groups before index n that started it.
func (c *copySplit) abortStarted(n int) {
	for gi := range n {
		if t := &c.targets[gi]; t.sc != nil {
			endCopyIn(t.sc, copyFailFrame)
		}
	}
}

// endCopyIn sends end (CopyDone or CopyFail) and reads the group's reply to ReadyForQuery:
// the row count of its CommandComplete, or its ErrorResponse frame, and the status after.
func endCopyIn(sc *pool.Conn, end []byte) (rows int64, fail []byte, status byte, err error) {
	fail, status, err = exchange(sc, end, splitBudget, func(f wire.Frame) {
		if f.Type() == wire.CommandComplete {
			tag := bytes.TrimRight(f.Body(), "\x00")
			if i := bytes.LastIndexByte(tag, ' '); i >= 0 {
				rows, _ = strconv.ParseInt(string(tag[i+1:]), 10, 64)
			}
		}
	})
	if err != nil {
		sc.MarkBroken()
	}
	return rows, fail, status, err
}

// copySplitMessage handles a client message while a split COPY runs.
func (s *session) copySplitMessage(f wire.Frame) error {
	cs := s.copySplit
	switch f.Type() {
	case wire.CopyData:
		if err := cs.splitter.Feed(f.Body(), cs); err != nil {
			s.failCopy(cs, copyDataError(err, cs.pp.plan.Copy.Table))
		}
		return nil
	case wire.CopyDone:
		if err := cs.splitter.Finish(cs); err != nil {
			s.failCopy(cs, copyDataError(err, cs.pp.plan.Copy.Table))
			return nil
		}
		s.finishCopy(cs)
		return nil
	case wire.CopyFail:
		msg, _, _ := wire.CString(f.Body())
		s.failCopy(cs, newClientError("57014", "COPY from stdin failed: "+string(msg)))
		return nil
	case wire.Flush, wire.Sync:
		return nil // Postgres ignores them during COPY FROM STDIN
	}
	s.failCopy(cs, newClientError(codeProtocolViolation, fmt.Sprintf("unexpected message type 0x%02X during COPY from stdin", f.Type())))
	return s.dispatch(f)
}

// copyDataError is the client's error for malformed COPY data.
func copyDataError(err error, table string) *clientError {
	var re *copydata.RowError
	if errors.As(err, &re) {
		return newClientError(re.Code, fmt.Sprintf("COPY %s, %s", table, re.Error())).
			withHint("fix the row and run the COPY again: nothing of it was stored")
	}
	return newClientError("22P04", fmt.Sprintf("COPY %s: %v", table, err))
}

// failCopy aborts a split COPY: every group gets CopyFail (its COPY fails, storing nothing);
// the proxy's own transaction rolls back, the client's is failed. The client's remaining COPY
// messages are dropped.
func (s *session) failCopy(cs *copySplit, ce *clientError) {
	s.copySplit = nil
	s.copyDiscard = true
	for gi := range cs.targets {
		t := &cs.targets[gi]
		_, _, status, err := endCopyIn(t.sc, copyFailFrame)
		s.noteBranchStatus(t.sc, status, err)
	}
	s.srv.metrics.errors.WithLabelValues(ce.code, "proxy").Inc()
	s.logger().Info("split COPY failed", zap.String("table", cs.pp.plan.Copy.Table), zap.String("sqlstate", ce.code), zap.String("error", ce.message))
	s.abandonSplit(cs.implicit, cs.simple, ce)
}

// noteBranchStatus records the transaction status of a branch after the proxy talked to it
// directly (s.txStatus for the attached one).
func (s *session) noteBranchStatus(sc *pool.Conn, status byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		status = 'E'
	}
	if sc == s.server {
		s.txStatus = status
	}
	for i := range s.branches {
		if s.branches[i].sc == sc {
			s.branches[i].status = status
		}
	}
}

// finishCopy ends a split COPY whose data was whole: the rest of every group's rows and
// CopyDone go out, every group's count comes back; then the proxy's own transaction commits.
func (s *session) finishCopy(cs *copySplit) {
	s.copySplit = nil
	trailer := cs.splitter.Trailer()
	var total int64
	var failed *clientError
	for gi := range cs.targets {
		t := &cs.targets[gi]
		if len(trailer) > 0 {
			if t.fresh {
				t.buf = append(t.buf, cs.prefix...)
				t.fresh = false
			}
			t.buf = append(t.buf, trailer...)
		}
		end := copyDoneFrame
		if err := t.send(); err != nil {
			end = copyFailFrame
		}
		rows, fail, status, err := endCopyIn(t.sc, end)
		s.noteBranchStatus(t.sc, status, err)
		switch {
		case err != nil && failed == nil:
			failed = lostServerError().withCause(err)
		case fail != nil && failed == nil:
			body := wire.Frame(fail).Body()
			failed = &clientError{code: errorCode(body), message: errorMessage(body) + " (on shard group " + t.group + ")", raw: nil}
		}
		total += rows
	}
	if failed != nil {
		s.copyDiscard = false
		s.abandonSplit(cs.implicit, cs.simple, failed)
		return
	}
	if cs.implicit {
		if _, ce := s.finishMultiGroupTx(true); ce != nil {
			s.localError(ce, cs.simple)
			return
		}
	}
	s.srv.multi.copyRows.Add(float64(total))
	s.reply(commandCompleteFrame("COPY " + strconv.FormatInt(total, 10)))
	if cs.simple {
		s.reply(nil)
	}
}

// serverMajor reads the major version from a server_version parameter ("15.18 (Debian ...)").
func serverMajor(version string) int {
	end := 0
	for end < len(version) && version[end] >= '0' && version[end] <= '9' {
		end++
	}
	major, _ := strconv.Atoi(version[:end])
	return major
}

// copyDoneFrame is a CopyDone message.
var copyDoneFrame = []byte{wire.CopyDone, 0, 0, 0, 4}

// copyOut runs a COPY TO STDOUT of a sharded table: every group runs Plan.Copy.OutSQL for the
// shards it owns, one after another; the client gets one CopyOutResponse, every group's rows
// (the header line once), one CopyDone and the total count.
func (s *session) copyOut(pp *proxyPortal, simple bool) error {
	s.mu.Lock()
	inTx := s.virtualTx != 0 || (s.server != nil && (s.txStatus != 'I' || s.queue.len() > 0))
	s.mu.Unlock()
	if inTx {
		s.routeFailed(newClientError(codeFeatureNotSupp, "COPY of sharded table "+pp.plan.Copy.Table+" TO STDOUT reads every shard group and cannot run inside a transaction").
			withHint("run it outside BEGIN ... COMMIT, or copy a query restricted to one customer"), simple)
		return nil
	}
	m := pp.m
	var total int64
	started := false
	for gi := range m.Groups {
		sc, entry, _, err := s.attach(routeTarget{group: gi, read: true})
		if err != nil {
			s.localError(asClientError(err), simple)
			return nil
		}
		header := pp.plan.Copy.Header && started // later groups' header lines are dropped
		firstData := true
		var rows int64
		fail, _, err := exchange(sc, simpleQueryFrame(pp.plan.Copy.OutSQL(m.OwnedBy(gi))), splitBudget, func(f wire.Frame) {
			s.wmu.Lock()
			defer s.wmu.Unlock()
			switch f.Type() {
			case wire.CopyOutResponse:
				if !started {
					s.writeClient(f)
					started = true
				}
			case wire.CopyData:
				if header && firstData {
					firstData = false
					return
				}
				firstData = false
				s.writeClient(f)
			case wire.CommandComplete:
				tag := bytes.TrimRight(f.Body(), "\x00")
				if i := bytes.LastIndexByte(tag, ' '); i >= 0 {
					rows, _ = strconv.ParseInt(string(tag[i+1:]), 10, 64)
				}
			}
		})
		if err != nil {
			sc.MarkBroken()
		}
		entry.release(sc)
		switch {
		case err != nil:
			s.localError(lostServerError().withCause(err), simple)
			return nil
		case fail != nil:
			body := wire.Frame(fail).Body()
			s.localError(&clientError{code: errorCode(body), message: errorMessage(body) + " (on shard group " + m.Groups[gi].Name + ")"}, simple)
			return nil
		}
		total += rows
	}
	s.wmu.Lock()
	s.writeClient(copyDoneFrame)
	s.writeClient(commandCompleteFrame("COPY " + strconv.FormatInt(total, 10)))
	s.wmu.Unlock()
	if simple {
		s.reply(nil)
	}
	return nil
}
