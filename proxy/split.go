package proxy

import (
	"bytes"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy/pool"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

// A statement whose rows belong to several groups — a multi-row INSERT, a COPY FROM STDIN —
// runs as one transaction over those groups: inside the client's transaction (a database
// with two_phase_commit), or in one the proxy opens for it and commits when every group
// succeeded (with two-phase commit when the database has it, else one group after another).

// errBranchLost says a group's backend failed while the proxy prepared it for a statement;
// the client has been told.
var errBranchLost = errors.New("shard group backend lost")

// splitBudget bounds one group's part of a split statement.
const splitBudget = 10 * time.Minute

// splitsGroups reports whether a plan's shards span several groups of m.
func splitsGroups(plan *router.Plan, m *shardmap.Map) bool {
	if plan.Target != router.TargetShards {
		return false
	}
	_, one := shardsGroup(plan.Shards, m)
	return !one
}

// openSplitTx makes sure a transaction holds the split statement's groups. Inside the
// client's transaction that needs two_phase_commit (else the caller refuses as for any
// cross-group statement: ok false); outside one the proxy opens its own (implicit true).
func (s *session) openSplitTx() (implicit, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == config.PoolModeSession {
		return false, false // the session keeps one backend: it cannot span groups
	}
	inTx := s.virtualTx != 0 || (s.server != nil && s.txStatus != 'I')
	if inTx {
		return false, s.twoPhaseEnabled()
	}
	if s.server != nil && s.queue.len() > 0 {
		return false, false // a pipeline still running on a backend
	}
	s.virtualTx = 'T'
	s.deferredBegin = append(s.deferredBegin[:0], beginFrame...)
	s.implicitTx = true
	return true, true
}

// enterGroup attaches the transaction's branch of group gi, opening it if needed, and waits
// until it is idle in the transaction. On failure the client has been told (errBranchLost,
// or the attach error for the caller to report).
func (s *session) enterGroup(gi int) (*pool.Conn, error) {
	sc, err := s.begin(routeTarget{group: gi, writer: true})
	if err != nil {
		return nil, err
	}
	s.wrote = true
	s.mu.Unlock()
	_ = s.endWrite(sc) // what begin queued: a held-back BEGIN, a branch's BEGIN
	s.pump()
	s.mu.Lock()
	ok := s.server == sc && s.queue.len() == 0 && s.txStatus == 'T'
	s.mu.Unlock()
	if !ok {
		return nil, errBranchLost
	}
	return sc, nil
}

// abandonSplit ends a split statement that failed: an implicit transaction is rolled back
// everywhere; in the client's transaction the failure stays (the branch is failed) for its
// ROLLBACK. ce goes to the client.
func (s *session) abandonSplit(implicit, simple bool, ce *clientError) {
	s.logger().Info("statement split over shard groups failed", zap.String("sqlstate", ce.code), zap.String("error", ce.message), zap.Error(ce.cause))
	if implicit {
		s.mu.Lock()
		attached := s.server != nil || len(s.branches) > 0
		s.mu.Unlock()
		if attached {
			s.finishMultiGroupTx(false)
		} else {
			s.mu.Lock()
			s.virtualTx, s.deferredBegin, s.implicitTx = 0, nil, false
			s.mu.Unlock()
		}
	} else {
		s.mu.Lock()
		if s.server != nil {
			s.txStatus = 'E'
		} else if s.virtualTx != 0 {
			s.virtualTx = 'E'
		}
		s.mu.Unlock()
	}
	s.localError(ce, simple)
}

// splitPart is one group's rows of a split INSERT.
type splitPart struct {
	group int
	rows  []int // VALUES row indexes, ascending
	out   [][]byte
}

// splitInsert runs a multi-row INSERT whose VALUES rows belong to several groups: each group
// gets an INSERT of its own rows (router.InsertSplit.Render), in one transaction. RETURNING
// rows come back in the order of the VALUES rows; the command tag counts them all.
func (s *session) splitInsert(pp *proxyPortal, simple bool) error {
	m := pp.m
	split := pp.plan.Split
	shards := pp.rowShards
	if shards == nil {
		var err error
		if shards, err = split.RowShards(pp.sql, nil, nil); err != nil {
			s.routeFailed(routeErrorOf(err), simple)
			return nil
		}
	}
	var parts []splitPart
	partOf := make([]int, len(m.Groups))
	for i := range partOf {
		partOf[i] = -1
	}
	rowPart := make([]int, len(shards))
	for i, sh := range shards {
		gi := int(m.Owner[sh])
		if partOf[gi] < 0 {
			partOf[gi] = len(parts)
			parts = append(parts, splitPart{group: gi})
		}
		parts[partOf[gi]].rows = append(parts[partOf[gi]].rows, i)
		rowPart[i] = partOf[gi]
	}
	implicit, ok := s.openSplitTx()
	if !ok {
		s.routeFailed(crossGroupError(pp.plan.Shards, m), simple)
		return nil
	}
	if implicit {
		s.srv.multi.multiGroup.Inc()
	}
	var rowDesc, completeTag []byte
	var total int64
	for i := range parts {
		part := &parts[i]
		sc, err := s.enterGroup(part.group)
		if err != nil {
			if errors.Is(err, errBranchLost) {
				s.abandonSplit(implicit, simple, lostServerError())
				return nil
			}
			s.abandonSplit(implicit, simple, asClientError(err))
			return nil
		}
		s.mu.Lock()
		s.noteWriteTouchesLocked(&pp.plan, m)
		s.mu.Unlock()
		text, params := split.Render(pp.sql, part.rows)
		if text == "" {
			s.abandonSplit(implicit, simple, newClientError(codeInternal, "could not split the INSERT by shard group"))
			return nil
		}
		msg, ce := s.splitMessage(pp, text, params, simple)
		if ce != nil {
			s.abandonSplit(implicit, simple, ce)
			return nil
		}
		var tag []byte
		fail, status, err := exchange(sc, msg, splitBudget, func(f wire.Frame) {
			switch f.Type() {
			case wire.RowDescription:
				if rowDesc == nil {
					rowDesc = append([]byte(nil), f...)
				}
			case wire.DataRow:
				part.out = append(part.out, append([]byte(nil), f...))
			case wire.CommandComplete:
				tag = append(tag[:0], f.Body()...)
			}
		})
		if err != nil {
			sc.MarkBroken()
			s.abandonSplit(implicit, simple, lostServerError().withCause(err))
			return nil
		}
		s.mu.Lock()
		s.txStatus = status
		s.mu.Unlock()
		if fail != nil {
			body := wire.Frame(fail).Body()
			s.abandonSplit(implicit, simple, &clientError{code: errorCode(body), message: errorMessage(body), raw: downgradeFatal(wire.Frame(fail))})
			return nil
		}
		total += insertCount(tag)
		completeTag = tag
	}
	if implicit {
		if _, ce := s.finishMultiGroupTx(true); ce != nil {
			s.localError(ce, simple)
			return nil
		}
	}
	s.wmu.Lock()
	if simple || pp.describe {
		if rowDesc != nil {
			s.writeClient(rowDesc)
		} else if !simple {
			s.writeClient(noDataFrame)
		}
	}
	for _, f := range mergeReturning(parts, rowPart) {
		s.writeClient(f)
	}
	s.writeClient(commandCompleteFrame(insertTag(completeTag, total)))
	s.wmu.Unlock()
	if simple {
		s.reply(nil)
	}
	return nil
}

// mergeReturning puts the RETURNING rows of the parts back in the order of the VALUES rows:
// each part returns its rows in its order. When a part returned another number of rows than
// it was sent (ON CONFLICT DO NOTHING skipped some) that order cannot be told: the parts'
// rows follow one another.
func mergeReturning(parts []splitPart, rowPart []int) [][]byte {
	var out [][]byte
	whole := true
	for _, p := range parts {
		whole = whole && len(p.out) == len(p.rows)
	}
	if !whole {
		for _, p := range parts {
			out = append(out, p.out...)
		}
		return out
	}
	next := make([]int, len(parts))
	for _, pi := range rowPart {
		if len(parts[pi].out) == 0 {
			continue
		}
		out = append(out, parts[pi].out[next[pi]])
		next[pi]++
	}
	return out
}

// insertCount reads the row count of an INSERT command tag ("INSERT 0 n").
func insertCount(tag []byte) int64 {
	tag = bytes.TrimRight(tag, "\x00")
	i := bytes.LastIndexByte(tag, ' ')
	n, _ := strconv.ParseInt(string(tag[i+1:]), 10, 64)
	return n
}

// insertTag is the command tag for total rows inserted, in the form of a group's tag.
func insertTag(groupTag []byte, total int64) string {
	groupTag = bytes.TrimRight(groupTag, "\x00")
	if i := bytes.LastIndexByte(groupTag, ' '); i > 0 {
		return string(groupTag[:i+1]) + strconv.FormatInt(total, 10)
	}
	return "INSERT 0 " + strconv.FormatInt(total, 10)
}

// splitMessage builds what one group's part sends: a Query for a simple query, else an
// unnamed Parse of the part with its parameters' types, a Bind of its parameters, a Describe,
// an Execute and a Sync.
func (s *session) splitMessage(pp *proxyPortal, text string, params []int, simple bool) ([]byte, *clientError) {
	if simple {
		return simpleQueryFrame(text), nil
	}
	oids := make([]uint32, len(params))
	for i, p := range params {
		if p-1 < len(pp.paramOIDs) {
			oids[i] = pp.paramOIDs[p-1]
		}
	}
	bind := pgproto3.Bind{ResultFormatCodes: pp.bind.ResultFormatCodes}
	formats := pp.bind.ParameterFormatCodes
	if len(formats) > 1 {
		bind.ParameterFormatCodes = make([]int16, len(params))
	} else {
		bind.ParameterFormatCodes = formats
	}
	bind.Parameters = make([][]byte, len(params))
	for i, p := range params {
		if p-1 >= len(pp.bind.Parameters) {
			return nil, newClientError(codeProtocolViolation, "bind message supplies too few parameters")
		}
		bind.Parameters[i] = pp.bind.Parameters[p-1]
		if len(formats) > 1 {
			bind.ParameterFormatCodes[i] = formats[p-1]
		}
	}
	msg, _ := (&pgproto3.Parse{Query: text, ParameterOIDs: oids}).Encode(nil)
	msg, _ = bind.Encode(msg)
	msg, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(msg)
	msg, _ = (&pgproto3.Execute{}).Encode(msg)
	msg, _ = (&pgproto3.Sync{}).Encode(msg)
	return msg, nil
}

// routeErrorOf turns a router error into the client's error.
func routeErrorOf(err error) *clientError {
	var re *router.RouteError
	if errors.As(err, &re) {
		return routeClientError(re)
	}
	return newClientError(codeInternal, "could not route the statement").withCause(err)
}
