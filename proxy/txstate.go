package proxy

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"github.com/shardwire/shardwire/router"
)

// A transaction is pinned to the group of its first routed statement, which the proxy does not
// know at BEGIN. So the proxy answers BEGIN itself and sends it to the backend ahead of that
// statement; a transaction that ends before any statement reached a backend is answered by the
// proxy too. virtualTx is the status the client sees meanwhile ('T', or 'E' after an error).

// virtualTxControl answers BEGIN, COMMIT and ROLLBACK while no backend holds the session's
// transaction, and reports whether it did.
func (s *session) virtualTxControl(f []byte, plan *router.Plan) bool {
	s.mu.Lock()
	if s.server != nil {
		s.mu.Unlock()
		return false
	}
	var tag string
	switch plan.Kind {
	case router.KindBegin:
		if s.virtualTx != 0 {
			s.mu.Unlock()
			return false // Postgres warns about the transaction in progress; let it say so
		}
		s.virtualTx = 'T'
		s.deferredBegin = append(s.deferredBegin[:0], f...)
		s.txBeginFrame = append(s.txBeginFrame[:0], f...)
		tag = "BEGIN"
	case router.KindCommit, router.KindRollback:
		if s.virtualTx == 0 {
			s.mu.Unlock()
			return false
		}
		tag = "COMMIT"
		if plan.Kind == router.KindRollback || s.virtualTx == 'E' {
			tag = "ROLLBACK"
		}
		s.virtualTx = 0
		s.deferredBegin = nil
		s.txBeginFrame = s.txBeginFrame[:0]
		s.hasLocalShardKey = false
	default:
		s.mu.Unlock()
		return false
	}
	s.mu.Unlock()
	s.reply(commandCompleteFrame(tag))
	s.reply(nil)
	return true
}

// abortedVirtualTx refuses a statement in a transaction the proxy holds that already failed,
// as Postgres does, and reports whether it did.
func (s *session) abortedVirtualTx(plan *router.Plan, simple bool) bool {
	s.mu.Lock()
	aborted := s.server == nil && s.virtualTx == 'E'
	s.mu.Unlock()
	if !aborted || plan.Kind == router.KindCommit || plan.Kind == router.KindRollback {
		return false
	}
	s.localError(newClientError("25P02", "current transaction is aborted, commands ignored until end of transaction block"), simple)
	return true
}

// shardKeySet matches SET [SESSION|LOCAL] shardwire.shard_key {=|TO} n and RESET.
var shardKeySet = regexp.MustCompile(`(?is)^\s*(?:(set)\s+(?:(session|local)\s+)?shardwire\.shard_key\s*(?:=|\s+to\s+)\s*'?\s*(-?\d+|default)\s*'?|(reset)\s+shardwire\.shard_key)\s*;?\s*$`)

// consistencySet matches SET [SESSION] shardwire.consistency {=|TO} value and RESET.
var consistencySet = regexp.MustCompile(`(?is)^\s*(?:set\s+(?:session\s+)?shardwire\.consistency\s*(?:=|\s+to\s+)\s*'?\s*([a-z]+)\s*'?|(reset)\s+shardwire\.consistency)\s*;?\s*$`)

// proxySetting handles the settings the proxy keeps itself (the backends never see them):
// shardwire.shard_key and shardwire.consistency. It returns the command tag, or ok=false for
// any other statement; a bad value is an error for the client.
func (s *session) proxySetting(sql []byte) (tag string, ce *clientError, ok bool) {
	if !bytes.Contains(sql, []byte("shardwire.")) && !bytes.Contains(sql, []byte("SHARDWIRE.")) {
		return "", nil, false
	}
	if m := consistencySet.FindSubmatch(sql); m != nil {
		if m[2] != nil {
			s.strong = false
			return "RESET", nil, true
		}
		switch string(bytes.ToLower(m[1])) {
		case "strong":
			s.strong = true
		case "default", "eventual":
			s.strong = false
		default:
			return "", newClientError(codeInvalidParameterValue, fmt.Sprintf("invalid value for shardwire.consistency: %q", m[1])).
				withHint("use 'strong' (reads on writers, no cache) or 'default'"), true
		}
		return "SET", nil, true
	}
	tag, ok = s.shardKeySetting(sql)
	return tag, nil, ok
}

// shardKeySetting handles SET/RESET shardwire.shard_key in the proxy (the backends never see
// it) and returns the command tag. ok is false for any other statement.
func (s *session) shardKeySetting(sql []byte) (tag string, ok bool) {
	if !bytes.Contains(sql, []byte("shard_key")) {
		return "", false
	}
	m := shardKeySet.FindSubmatch(sql)
	if m == nil {
		return "", false
	}
	if m[4] != nil || bytes.EqualFold(m[3], []byte("default")) {
		s.hasShardKey, s.hasLocalShardKey = false, false
		if m[4] != nil {
			return "RESET", true
		}
		return "SET", true
	}
	v, err := strconv.ParseInt(string(m[3]), 10, 64)
	if err != nil {
		return "", false
	}
	if bytes.EqualFold(m[2], []byte("local")) {
		s.mu.Lock()
		inTx := s.virtualTx != 0 || (s.server != nil && s.txStatus != 'I')
		s.mu.Unlock()
		if inTx { // outside a transaction SET LOCAL has no effect, as in Postgres
			s.localShardKey, s.hasLocalShardKey = v, true
		}
		return "SET", true
	}
	s.shardKey, s.hasShardKey = v, true
	return "SET", true
}
