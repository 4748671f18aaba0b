package router

import (
	"math/bits"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// InsertSplit describes the VALUES rows of a multi-row INSERT on a sharded table, so that the
// proxy can send each group only the rows of the shards it owns when the rows span several
// groups: RowShards says where each row goes, Render writes the INSERT of some of the rows.
//
// It is set (Plan.Split) for one INSERT INTO t [(cols)] VALUES (...), (...) [ON CONFLICT ...]
// [RETURNING ...], optionally under a WITH of queries, sent alone, routed by its rows' keys —
// constants or bound parameters — when it names no other sharded table, changes no row's key
// and has no data-modifying CTE: splitting such a statement runs the same rows, each on the
// group that owns it. What is outside the rows — the WITH queries, ON CONFLICT, RETURNING —
// runs in every part, once per part as in the whole statement once.
//
// It is shared by every plan of the statement's shape and holds no byte offsets: RowShards
// and Render read the text they are given (the statement's own, of the plan's shape, whatever
// the length of its literals) with the router's lexer, so literal-only variants share it. It
// is safe for concurrent use; do not modify it.
type InsertSplit struct {
	// Rows is the number of VALUES rows (at least 2).
	Rows int `json:"rows"`
	// Returning is set when the INSERT has a RETURNING clause: each part returns its rows in
	// the order of its VALUES (as Postgres does for INSERT ... VALUES), and the proxy puts them
	// back in the order of the whole statement's rows.
	Returning bool `json:"returning,omitempty"`

	keys     []rowKey // where each row's key comes from
	rowOpen  []int32  // index of each row's '(' token in the statement's tokens
	rowClose []int32  // and of its ')'
	// The routing errors of a key that is not an integer, or NULL (the key leaf's).
	badErr, nullErr *RouteError
	unbound         *RouteError
}

// rowKey is where one VALUES row's key comes from: a literal token, a bound parameter, or a
// value the parser fixed (NULL, TRUE).
type rowKey struct {
	kind  uint8 // valLiteral, valParam, valFixed
	neg   bool  // valLiteral: negate the number
	class byte  // valLiteral: the literal's class (see literalClass), the same in every string of the shape
	idx   int32 // valLiteral: index of the literal's token; valParam: 0-based parameter index
	fixed leafAcc
}

// insertSplit returns the InsertSplit of the top-level INSERT s whose statement template is
// st, or nil when s is not one the proxy may split (see InsertSplit).
func (b *builder) insertSplit(s *pg.InsertStmt, st *stmtTemplate) *InsertSplit {
	in := &b.info
	sel := s.SelectStmt.GetSelectStmt()
	switch {
	case in.valuesStmt != s || len(in.valuesKeys) < 2 || sel == nil,
		st.keyless || len(st.checks) > 0 || st.root < 0,
		len(b.keyCols) != 1, // another sharded table (a subquery) would read one group's rows only
		modifyingCTE(s.WithClause),
		sel.WithClause != nil || len(sel.SortClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil:
		return nil
	}
	open, closing, ok := b.valuesRows(s.Relation.GetLocation(), len(sel.ValuesLists))
	if !ok || len(open) != len(in.valuesKeys) {
		return nil
	}
	errs := b.colErrs[in.valuesCol]
	sp := &InsertSplit{
		Rows:      len(open),
		Returning: len(s.ReturningList) > 0,
		keys:      make([]rowKey, len(in.valuesKeys)),
		rowOpen:   open,
		rowClose:  closing,
		badErr:    errs[0],
		nullErr:   errs[1],
		unbound: &RouteError{Code: CodeInvalidParameter,
			Message: "a parameter holding the shard key " + in.valuesCol + " is not bound"},
	}
	tok := 0 // the literals' tokens, found in one pass: rows come in text order
	for i, v := range in.valuesKeys {
		k := rowKey{kind: v.kind, neg: v.neg, fixed: v.static}
		switch v.kind {
		case valLiteral:
			for tok < len(b.toks) && b.toks[tok].lit != v.lit {
				tok++
			}
			if tok == len(b.toks) {
				return nil
			}
			k.idx, k.class = int32(tok), literalClass(b.sql, b.toks[tok].token)
		case valParam:
			k.idx = v.param
		}
		sp.keys[i] = k
	}
	return sp
}

// modifyingCTE reports whether a WITH clause holds an INSERT, UPDATE, DELETE or MERGE, which
// every part of a split statement would run again.
func modifyingCTE(w *pg.WithClause) bool {
	for _, c := range w.GetCtes() {
		if q := c.GetCommonTableExpr().GetCtequery(); q != nil && q.GetSelectStmt() == nil {
			return true
		}
	}
	return false
}

// valuesRows finds the rows of INSERT INTO rel [AS alias] [(cols)] [OVERRIDING ... VALUE]
// VALUES (...), ... in the statement's tokens, starting at the relation's name (byte offset
// relLoc), and returns the token indexes of each row's parentheses. ok is false when the
// tokens are not of that form with n rows.
func (b *builder) valuesRows(relLoc int32, n int) (open, closing []int32, ok bool) {
	toks := b.toks
	isWord := func(i int, w string) bool {
		return i < len(toks) && toks[i].kind == tokIdent && eqFold(b.sql[toks[i].start:toks[i].end], w)
	}
	isOp := func(i int, c byte) bool {
		return i < len(toks) && toks[i].kind == tokOp && b.sql[toks[i].start] == c
	}
	isName := func(i int) bool { return i < len(toks) && (toks[i].kind == tokIdent || toks[i].kind == tokQIdent) }
	i := b.tokenAt(relLoc)
	if !isName(i) {
		return nil, nil, false
	}
	for i++; isOp(i, '.') && isName(i+1); i += 2 {
	}
	if isWord(i, "as") && isName(i+1) {
		i += 2
	}
	if isOp(i, '(') {
		j, found := b.matchParen(i)
		if !found {
			return nil, nil, false
		}
		i = j + 1
	}
	if isWord(i, "overriding") {
		i += 3 // OVERRIDING SYSTEM VALUE, OVERRIDING USER VALUE
	}
	if !isWord(i, "values") {
		return nil, nil, false
	}
	open, closing = make([]int32, 0, n), make([]int32, 0, n)
	for i++; isOp(i, '('); i++ {
		j, found := b.matchParen(i)
		if !found {
			return nil, nil, false
		}
		open, closing = append(open, int32(i)), append(closing, int32(j))
		if i = j + 1; !isOp(i, ',') {
			break
		}
	}
	return open, closing, len(open) == n
}

// matchParen returns the index of the ')' token closing the '(' token at index i.
func (b *builder) matchParen(i int) (int, bool) {
	depth := 0
	for ; i < len(b.toks); i++ {
		if b.toks[i].kind != tokOp {
			continue
		}
		switch b.sql[b.toks[i].start] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i, true
			}
		}
	}
	return 0, false
}

// RowShards appends to dst the shard of each VALUES row, in row order, for the statement text
// sql of the plan (a simple query's string, or a prepared statement's text) with the bound
// parameters params (nil for a simple query). It reads the keys as routing did: literals of
// the text, parameters in text or binary form. A key that is NULL or not an integer is the
// routing error (SQLSTATE 22023); so is a parameter params lacks, or a text of another shape.
// On an error dst is returned as it was given.
func (s *InsertSplit) RowShards(sql string, params Params, dst []shardmap.Shard) ([]shardmap.Shard, error) {
	start := len(dst)
	lex := lexer{s: sql}
	var tk token
	i := int32(-1) // index of tk, the last token lexed
	for _, k := range s.keys {
		a := k.fixed
		switch k.kind {
		case valLiteral:
			for i < k.idx {
				if tk = lex.next(); tk.kind == tokEOF {
					return dst[:start], s.unbound
				}
				i++
			}
			if i != k.idx || literalClass(sql, tk) != k.class {
				return dst[:start], s.unbound // not a string of the plan's shape
			}
			addLiteral(&a, sql, tk, k.class, k.neg, false)
		case valParam:
			bindParam(&a, params, paramRef{param: k.idx})
		}
		switch {
		case a.flags&accNull != 0:
			return dst[:start], s.nullErr
		case a.flags&accBad != 0:
			return dst[:start], s.badErr
		case a.flags&accUnknown != 0 || a.set.Len() != 1:
			return dst[:start], s.unbound
		}
		dst = append(dst, shardmap.Shard(bits.TrailingZeros16(uint16(a.set))))
	}
	return dst, nil
}

// Render returns the INSERT sql (the text the plan was made for) restricted to the VALUES
// rows rows — 0-based, ascending, at least one — and everything else as written: WITH,
// column list, ON CONFLICT, RETURNING, comments outside the VALUES list. Its parameters are
// renumbered $1, $2, ... in the order they first appear in the text; params[i] is the
// original (1-based) number of $(i+1): the part's Bind sends as its parameter i the client's
// parameter params[i] (and its type and format). Parameters outside the VALUES rows are in
// every rendering. It lexes sql once and never parses it. It returns "" and nil when rows is
// empty, not ascending or out of range, or sql ends before the plan's rows do.
func (s *InsertSplit) Render(sql string, rows []int) (text string, params []int) {
	if len(rows) == 0 {
		return "", nil
	}
	for i, r := range rows {
		if r < 0 || r >= len(s.rowOpen) || i > 0 && r <= rows[i-1] {
			return "", nil
		}
	}
	var out strings.Builder
	out.Grow(len(sql))
	var nums paramNumbers
	first, last := s.rowOpen[0], s.rowClose[len(s.rowClose)-1]
	l := lexer{s: sql}
	from, copying := 0, true // copying: sql[from:] up to the current token is being kept
	next, row := 0, -1       // next: index in rows of the next row to keep; row: the row being kept
	for i := int32(0); ; i++ {
		t := l.next()
		if t.kind == tokEOF {
			break
		}
		if i == first { // the end of the text before the rows
			out.WriteString(sql[from:t.start])
			copying = false
		}
		if !copying && next < len(rows) && i == s.rowOpen[rows[next]] {
			if next > 0 {
				out.WriteString(", ")
			}
			from, copying, row = t.start, true, rows[next]
		}
		if copying && t.kind == tokParam {
			out.WriteString(sql[from:t.start])
			if n, err := strconv.Atoi(sql[t.start+1 : t.end]); err == nil {
				var num [12]byte
				out.Write(strconv.AppendInt(append(num[:0], '$'), int64(nums.number(n)), 10))
			} else {
				out.WriteString(sql[t.start:t.end])
			}
			from = t.end
		}
		if row >= 0 && i == s.rowClose[row] {
			out.WriteString(sql[from:t.end])
			copying, row = false, -1
			next++
		}
		if i == last { // the text after the rows
			from, copying = t.end, true
		}
	}
	if next != len(rows) || !copying {
		return "", nil // not of the plan's shape
	}
	out.WriteString(sql[from:])
	return out.String(), nums.params
}

// paramNumbers numbers parameters in order of first appearance.
type paramNumbers struct {
	params []int         // original numbers, by new number - 1
	byOrig []int32       // new number by original number (0: not yet), for numbers up to maxDense
	sparse map[int]int32 // the same beyond
}

// maxDense bounds the original parameter numbers paramNumbers keeps in a slice (a Bind has
// at most 65535 parameters).
const maxDense = 1 << 16

// number returns the new number of original parameter orig, giving it the next one when it
// appears for the first time.
func (p *paramNumbers) number(orig int) int {
	if orig >= 0 && orig < maxDense {
		if orig >= cap(p.byOrig) {
			grown := make([]int32, orig+1, max(orig+1, 2*cap(p.byOrig), 16))
			copy(grown, p.byOrig)
			p.byOrig = grown
		}
		if orig >= len(p.byOrig) {
			p.byOrig = p.byOrig[:orig+1] // never written beyond its length: zeros
		}
		if n := p.byOrig[orig]; n > 0 {
			return int(n)
		}
		p.params = append(p.params, orig)
		p.byOrig[orig] = int32(len(p.params))
		return len(p.params)
	}
	if n, ok := p.sparse[orig]; ok {
		return int(n)
	}
	if p.sparse == nil {
		p.sparse = map[int]int32{}
	}
	p.params = append(p.params, orig)
	p.sparse[orig] = int32(len(p.params))
	return len(p.params)
}
