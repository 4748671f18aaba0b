package router

import "github.com/shardwire/shardwire/shardmap"

// bindText checks that sql has t's shape and, on the way, folds sql's key literals into acc
// (which holds the leaves' initial values) and, when scanHints is set, records the hint
// comments of each statement in hints (see hint.scan). It returns false, leaving acc and hints
// in an undefined state, when sql is not of t's shape.
func (t *template) bindText(sql string, src *tokenSource, acc []leafAcc, hints []hint, scanHints bool) bool {
	shape := t.shape
	pos, lit, ri, pi, stmt := 0, int32(0), 0, 0, 0
	for tokIdx := int32(0); ; tokIdx++ {
		tk, gap, head, class := src.next()
		if scanHints && len(hints) > 0 {
			for stmt+1 < len(t.stmts) && t.stmts[stmt+1].startTok <= tokIdx {
				stmt++
			}
			if gap < tk.start {
				hints[stmt].scan(sql[gap:tk.start])
			}
		}
		if tk.kind == tokEOF {
			if head&headOpen != 0 {
				return pos+1 == len(shape) && shape[pos] == head
			}
			return pos == len(shape)
		}
		if pos >= len(shape) || shape[pos] != head {
			return false
		}
		pos++
		text := sql[tk.start:tk.end]
		if class != 0 {
			if pos >= len(shape) || shape[pos] != class {
				return false
			}
			pos++
			for ; pi < len(t.pins) && t.pins[pi].lit == lit; pi++ {
				if t.pins[pi].text != text {
					return false
				}
			}
			for ; ri < len(t.litRefs) && t.litRefs[ri].lit == lit; ri++ {
				r := &t.litRefs[ri]
				addLiteral(&acc[r.leaf], sql, tk, class, r.neg, r.array)
			}
			lit++
			continue
		}
		n, k := uvarintString(shape[pos:])
		if k <= 0 || uint64(len(text)) != n || len(shape)-pos-k < len(text) {
			return false
		}
		pos += k
		if shape[pos:pos+len(text)] != text {
			return false
		}
		pos += len(text)
	}
}

// uvarintString decodes a uvarint at the start of s, as binary.Uvarint does for bytes.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < 10; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// addLiteral folds the value of literal token tk (of the given class) into a.
func addLiteral(a *leafAcc, sql string, tk token, class byte, neg, array bool) {
	switch class {
	case 'i', 'I', 'f':
		if array {
			a.flags |= accBad
			return
		}
		a.addNumber(sql[tk.start:tk.end], neg)
	case 's', 'e', 'n', 'd':
		s, ok := stringText(sql, tk)
		switch {
		case !ok:
			a.flags |= accBad
		case array:
			addArrayText(a, s)
		default:
			addText(a, s, neg)
		}
	default: // bit strings and Unicode-escaped strings are not integers here
		a.flags |= accBad
	}
}

// stmtResult is the plan of one statement.
type stmtResult struct {
	kind   Kind
	target Target
	shards shardmap.ShardSet
	merge  *MergeSpec
	err    *RouteError
	keyed  bool // target TargetShards decided by the statement's own keys (no hint)
}

// evalStmt plans statement st given its leaves' values and hint.
func (t *template) evalStmt(st *stmtTemplate, acc []leafAcc, h hint, sess Session) stmtResult {
	r := stmtResult{kind: st.kind, target: st.target, err: st.err}
	if st.target != TargetShards {
		return r
	}
	if h.set || sess.HasShardKey {
		if h.set && h.bad {
			return stmtResult{kind: st.kind, target: TargetReject, err: t.errs.badHint}
		}
		key := sess.ShardKey
		if h.set {
			key = h.key
		}
		r.shards = shardmap.Of(shardmap.ShardOf(key))
		return t.checkMoves(st, acc, r)
	}
	if !st.keyless && st.root >= 0 {
		set, state, bad := evalKey(t.nodes, acc, st.root)
		switch state {
		case keyBad:
			return t.badKey(st, acc, bad)
		case keyKnown:
			keyed := true
			for _, n := range st.required {
				if _, s, _ := evalKey(t.nodes, acc, n); s != keyKnown {
					keyed = false
					break
				}
			}
			if keyed {
				r.shards, r.keyed = set, true
				return t.checkMoves(st, acc, r)
			}
		}
	}
	r.target, r.err, r.merge = st.fallback, st.fallErr, st.merge
	return r
}

func (t *template) badKey(st *stmtTemplate, acc []leafAcc, leaf int32) stmtResult {
	err := t.leaves[leaf].badErr
	if acc[leaf].flags&accBad == 0 {
		err = t.leaves[leaf].nullErr
	}
	return stmtResult{kind: st.kind, target: TargetReject, err: err}
}

// checkMoves verifies that an UPDATE setting the key keeps its rows in the shards it runs on.
func (t *template) checkMoves(st *stmtTemplate, acc []leafAcc, r stmtResult) stmtResult {
	for _, leaf := range st.checks {
		a := acc[leaf]
		switch {
		case a.flags&(accBad|accNull) != 0:
			return t.badKey(st, acc, leaf)
		case a.flags&accUnknown != 0 || a.set.Empty():
			return stmtResult{kind: st.kind, target: TargetReject, err: st.unknownErr}
		case a.set&^r.shards != 0:
			return stmtResult{kind: st.kind, target: TargetReject, err: st.moveErr}
		}
	}
	return r
}

// plan plans a string of t's shape given its leaves' values and hints.
func (t *template) plan(acc []leafAcc, hints []hint, sess Session, m *shardmap.Map) Plan {
	p := Plan{Kind: t.kind, Tables: t.tables, Statements: len(t.stmts), TxControl: t.tx}
	if len(t.stmts) == 0 {
		p.Target, p.NoCache = TargetAny, NoCacheStatement
		return p
	}
	if len(t.stmts) == 1 {
		st := &t.stmts[0]
		h := hintOf(hints, 0)
		r := t.evalStmt(st, acc, h, sess)
		p.Target, p.Err, p.Merge = r.target, r.err, r.merge
		switch r.target {
		case TargetShards:
			p.Shards = r.shards
			if r.keyed {
				p.Split = st.split
			}
			if r.keyed && st.exact && st.root >= 0 {
				if !evalKeys(t.nodes, acc, st.root, &p.Keys) {
					p.Keys = KeySet{}
				}
			}
		case TargetSplit:
			p.Copy = st.copy
		}
		switch {
		case r.target == TargetReject:
			p.NoCache = NoCacheStatement
		case st.noCache != CacheOK:
			p.NoCache = st.noCache
		case h.noCache:
			p.NoCache = NoCacheHint
		default:
			p.CacheTTL = h.ttl
		}
		return p
	}
	p.NoCache = NoCacheStatement
	var shards shardmap.ShardSet
	var anyShards, anyDefault, defaultData, allGroups bool
	for i := range t.stmts {
		r := t.evalStmt(&t.stmts[i], acc, hintOf(hints, i), sess)
		switch r.target {
		case TargetReject:
			p.Target, p.Err = TargetReject, r.err
			return p
		case TargetScatter:
			p.Target, p.Err = TargetReject, t.errs.scatterAlone
			return p
		case TargetSplit:
			p.Target, p.Err = TargetReject, t.errs.copyAlone
			return p
		case TargetShards:
			anyShards = true
			shards |= r.shards
		case TargetDefault:
			anyDefault = true
			if r.kind != KindDDL {
				defaultData = true
			}
		case TargetAllGroups:
			allGroups = true
		}
	}
	switch {
	case allGroups && (anyShards || defaultData):
		return t.rejectGroups(p)
	case allGroups:
		p.Target = TargetAllGroups
	case anyShards && anyDefault:
		if m == nil || len(m.Groups) == 0 || m.GroupsOf(shards) != 1<<uint(m.DefaultGroup) {
			return t.rejectGroups(p)
		}
		p.Target, p.Shards = TargetShards, shards
	case anyShards:
		p.Target, p.Shards = TargetShards, shards
	case anyDefault:
		p.Target = TargetDefault
	default:
		p.Target = TargetAny
	}
	return p
}

func hintOf(hints []hint, i int) hint {
	if i < len(hints) {
		return hints[i]
	}
	return hint{}
}

func (t *template) rejectGroups(p Plan) Plan {
	p.Target, p.Shards, p.Err = TargetReject, 0, t.errs.crossGroup
	return p
}
