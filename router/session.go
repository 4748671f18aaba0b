package router

import (
	"fmt"
	"strings"
)

// SessionEffects summarises what one SQL string — one or more ';'-separated statements, as
// sent in a simple Query or a Parse — does to session state. The zero value means "nothing":
// the string can run on any pooled backend connection.
//
// The analysis is lexical, not a parse: it never executes or validates SQL. It does not model
// transactions (a SET later rolled back is still reported) nor what functions, DO blocks or
// procedures do inside the server.
type SessionEffects struct {
	// Flags is the set of effects present, in no particular order.
	Flags EffectFlags `json:"flags,omitempty"`
	// Changes lists SET, RESET, RESET ALL and DISCARD ALL (and set_config calls with literal
	// arguments) in statement order; nil when there are none.
	Changes []SettingChange `json:"changes,omitempty"`
	// AdvisoryLocks counts call sites of the session-level lock functions
	// (pg_advisory_lock, pg_advisory_lock_shared, pg_try_advisory_lock,
	// pg_try_advisory_lock_shared), not the *_xact_* ones. A call in a query over many rows
	// counts once, and a try_ call counts even if it fails to lock.
	AdvisoryLocks int `json:"advisory_locks,omitempty"`
	// AdvisoryUnlocks counts call sites of pg_advisory_unlock and pg_advisory_unlock_shared.
	AdvisoryUnlocks int `json:"advisory_unlocks,omitempty"`
	// PinReason says, in a few words, why the client must stay on its backend connection for
	// the rest of the session; it is set exactly when Flags has EffectPin. With several
	// reasons, the first one is kept.
	PinReason string `json:"pin_reason,omitempty"`
	// Deallocate is the statement name of the last DEALLOCATE [PREPARE] name, as Postgres
	// folds it ("" for DEALLOCATE ALL); set with EffectDeallocate.
	Deallocate string `json:"deallocate,omitempty"`
	// DeallocateAll is true when a DEALLOCATE [PREPARE] ALL is present.
	DeallocateAll bool `json:"deallocate_all,omitempty"`
}

// Has reports whether all of flags are present.
func (e *SessionEffects) Has(flags EffectFlags) bool { return e.Flags&flags == flags }

// EffectFlags is a set of session effects of a SQL string.
type EffectFlags uint16

const (
	// EffectBegin: BEGIN or START TRANSACTION.
	EffectBegin EffectFlags = 1 << iota
	// EffectCommit: COMMIT, END, COMMIT AND CHAIN, or PREPARE TRANSACTION (which also ends
	// the session's transaction). AND CHAIN opens a new transaction at once; ReadyForQuery
	// remains the authority on transaction status.
	EffectCommit
	// EffectRollback: ROLLBACK or ABORT, but not ROLLBACK TO SAVEPOINT nor ROLLBACK PREPARED.
	EffectRollback
	// EffectSession: Changes is not empty.
	EffectSession
	// EffectListen: LISTEN or UNLISTEN; notifications need a session-pooled client.
	EffectListen
	// EffectAdvisory: session-level advisory lock or unlock calls are present (see
	// AdvisoryLocks and AdvisoryUnlocks).
	EffectAdvisory
	// EffectUnlockAll: pg_advisory_unlock_all() or DISCARD ALL releases every session
	// advisory lock.
	EffectUnlockAll
	// EffectPin: the client must be pinned to its backend; see PinReason.
	EffectPin
	// EffectDeallocate: DEALLOCATE name or DEALLOCATE ALL; see Deallocate and DeallocateAll.
	EffectDeallocate
	// EffectDiscardAll: DISCARD ALL, which besides resetting settings and advisory locks
	// drops every prepared statement of the connection (RESET ALL does not).
	EffectDiscardAll
)

var effectNames = [...]string{"Begin", "Commit", "Rollback", "Session", "Listen", "Advisory",
	"UnlockAll", "Pin", "Deallocate", "DiscardAll"}

// String returns the flag names joined by '|' ("Begin|Session"), or "0" for none.
func (f EffectFlags) String() string {
	if f == 0 {
		return "0"
	}
	var b strings.Builder
	for i, name := range effectNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(name)
		}
	}
	if rest := f &^ (1<<len(effectNames) - 1); rest != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		fmt.Fprintf(&b, "%#x", uint16(rest))
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (f EffectFlags) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler for the String form (names only).
func (f *EffectFlags) UnmarshalText(b []byte) error {
	*f = 0
	if s := string(b); s != "0" && s != "" {
	names:
		for _, name := range strings.Split(s, "|") {
			for i, n := range effectNames {
				if n == name {
					*f |= 1 << i
					continue names
				}
			}
			return fmt.Errorf("router: unknown effect flag %q", name)
		}
	}
	return nil
}

// ChangeKind is the kind of a SettingChange.
type ChangeKind uint8

const (
	// ChangeSet sets a setting for the session: SET, SET SESSION, set_config(..., false).
	ChangeSet ChangeKind = iota
	// ChangeReset restores one setting to its default: RESET x, SET x TO DEFAULT,
	// SET TIME ZONE LOCAL, SET ROLE NONE, SET SESSION AUTHORIZATION DEFAULT.
	ChangeReset
	// ChangeResetAll restores every setting: RESET ALL, DISCARD ALL.
	ChangeResetAll
)

var changeNames = [...]string{"Set", "Reset", "ResetAll"}

// String returns "Set", "Reset" or "ResetAll".
func (k ChangeKind) String() string {
	if int(k) < len(changeNames) {
		return changeNames[k]
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (k ChangeKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler for the String form.
func (k *ChangeKind) UnmarshalText(b []byte) error {
	for i, n := range changeNames {
		if n == string(b) {
			*k = ChangeKind(i)
			return nil
		}
	}
	return fmt.Errorf("router: unknown change kind %q", b)
}

// SettingChange is one change to a session setting.
type SettingChange struct {
	// Kind says whether the setting was set, reset, or all settings were reset.
	Kind ChangeKind `json:"kind"`
	// Name is the canonical lower-case setting name: "timezone" for SET TIME ZONE,
	// "client_encoding" for SET NAMES, "search_path" for SET SCHEMA, "role",
	// "session_authorization", "myext.opt", ...; "" for ChangeResetAll.
	Name string `json:"name,omitempty"`
	// SetSQL, for ChangeSet, is a complete statement that re-applies the change on another
	// connection, with the value text copied verbatim from the input and without
	// LOCAL/SESSION: `SET search_path TO "$user", public`, `SET TIME ZONE 'UTC'`,
	// `SET ROLE admin`. Empty for the other kinds.
	SetSQL string `json:"set_sql,omitempty"`
	// ResetSQL is the statement that restores the default: `RESET search_path`,
	// `RESET ROLE`, `RESET SESSION AUTHORIZATION`, `RESET timezone`, `RESET ALL`.
	ResetSQL string `json:"reset_sql"`
}

// Pin reasons, as reported in SessionEffects.PinReason.
const (
	pinTemp         = "temporary table, view or sequence"
	pinHold         = "cursor declared WITH HOLD"
	pinPrepare      = "SQL-level PREPARE"
	pinLoad         = "LOAD of a shared library"
	pinCharacterist = "SET SESSION CHARACTERISTICS"
	pinSetConfig    = "set_config with non-literal arguments"
)

// AnalyzeSession reports what sql does to session state. It never fails: malformed or
// unterminated input yields whatever the complete statements before it imply. For SQL with
// none of the statements and functions it looks for, it does not allocate.
//
// It assumes standard_conforming_strings=on, and it splits statements at ';' the way psql
// does, including inside CREATE FUNCTION ... BEGIN ATOMIC ... END bodies.
func AnalyzeSession(sql string) SessionEffects {
	a := analyzer{lx: lexer{s: sql}, s: sql}
	a.raw()
	for a.cur.kind != tokEOF {
		if a.cur.kind == tokSemi {
			a.raw()
			continue
		}
		a.statement()
	}
	if len(a.out.Changes) > 0 {
		a.out.Flags |= EffectSession
	}
	return a.out
}

// analyzer walks the tokens of one SQL string. cur is the current token; advance stops at the
// end of the statement (';' or EOF), so statement handlers can never read into the next one.
type analyzer struct {
	lx       lexer
	s        string
	out      SessionEffects
	cur      token
	ahead    token
	hasAhead bool
}

// stmt is what the rest of a statement's scan needs to know about its beginning.
type stmt struct {
	selectLike bool // starts with SELECT or WITH: INTO TEMP creates a temporary table
	routine    bool // CREATE [OR REPLACE] FUNCTION|PROCEDURE: BEGIN ... END may hold ';'
	skip       bool // do not look for function calls (body of PREPARE)
	tempTable  bool // CREATE TEMP ...: pin unless ON COMMIT DROP
	commitDrop bool // ON COMMIT DROP seen
	depth      int  // parenthesis depth
	begins     int  // BEGIN ... END depth inside a routine body
}

func (a *analyzer) raw() {
	if a.hasAhead {
		a.cur, a.hasAhead = a.ahead, false
		return
	}
	a.cur = a.lx.next()
}

func (a *analyzer) atEnd() bool { return a.cur.kind == tokEOF || a.cur.kind == tokSemi }

func (a *analyzer) advance() {
	if !a.atEnd() {
		a.raw()
	}
}

// peek returns the token after cur without consuming it (cur itself at the end).
func (a *analyzer) peek() token {
	if a.atEnd() {
		return a.cur
	}
	if !a.hasAhead {
		a.ahead, a.hasAhead = a.lx.next(), true
	}
	return a.ahead
}

// is reports whether t is the unquoted keyword w (lower case).
func (a *analyzer) is(t token, w string) bool {
	return t.kind == tokIdent && eqFold(a.s[t.start:t.end], w)
}

// kw reports whether cur is the unquoted keyword w (lower case).
func (a *analyzer) kw(w string) bool { return a.is(a.cur, w) }

// accept advances past cur if it is the keyword w.
func (a *analyzer) accept(w string) bool {
	if a.kw(w) {
		a.advance()
		return true
	}
	return false
}

func (a *analyzer) isOp(t token, c byte) bool { return t.kind == tokOp && a.s[t.start] == c }

func (a *analyzer) pin(reason string) {
	if a.out.Flags&EffectPin == 0 {
		a.out.Flags |= EffectPin
		a.out.PinReason = reason
	}
}

// statement analyzes one statement starting at cur and consumes it with its ';'.
func (a *analyzer) statement() {
	for a.isOp(a.cur, '(') {
		a.advance()
	}
	var st stmt
	if a.cur.kind == tokIdent {
		first := a.s[a.cur.start:a.cur.end]
		a.advance()
		switch {
		case eqFold(first, "select"), eqFold(first, "with"):
			st.selectLike = true
		case eqFold(first, "set"):
			a.set()
		case eqFold(first, "reset"):
			a.reset()
		case eqFold(first, "discard"):
			if a.kw("all") {
				a.out.Changes = append(a.out.Changes, SettingChange{Kind: ChangeResetAll, ResetSQL: "RESET ALL"})
				a.out.Flags |= EffectUnlockAll | EffectDiscardAll
			}
		case eqFold(first, "begin"):
			a.out.Flags |= EffectBegin
		case eqFold(first, "start"):
			if a.kw("transaction") {
				a.out.Flags |= EffectBegin
			}
		case eqFold(first, "commit"):
			if !a.kw("prepared") {
				a.out.Flags |= EffectCommit
			}
		case eqFold(first, "end"):
			a.out.Flags |= EffectCommit
		case eqFold(first, "rollback"):
			a.rollback()
		case eqFold(first, "abort"):
			a.out.Flags |= EffectRollback
		case eqFold(first, "listen"), eqFold(first, "unlisten"):
			a.out.Flags |= EffectListen
		case eqFold(first, "create"):
			a.create(&st)
		case eqFold(first, "declare"):
			a.declare()
		case eqFold(first, "prepare"):
			if p := a.peek(); a.kw("transaction") && (p.kind == tokString || p.kind == tokDollar) {
				a.out.Flags |= EffectCommit
			} else {
				a.pin(pinPrepare)
				st.skip = true
			}
		case eqFold(first, "load"):
			a.pin(pinLoad)
		case eqFold(first, "deallocate"):
			a.deallocate()
		}
	}
	a.rest(&st)
}

// rest scans to the end of the statement for function calls and the clauses the statement
// handlers left, then consumes the terminating ';'.
func (a *analyzer) rest(st *stmt) {
	for {
		t := a.cur
		switch t.kind {
		case tokEOF:
			a.endStatement(st)
			return
		case tokSemi:
			if st.begins == 0 {
				a.endStatement(st)
				a.raw()
				return
			}
		case tokOp:
			switch a.s[t.start] {
			case '(':
				st.depth++
			case ')':
				st.depth--
			}
		case tokIdent, tokQIdent:
			if a.word(st) {
				continue // cur is already past what word consumed
			}
		}
		a.raw()
	}
}

func (a *analyzer) endStatement(st *stmt) {
	if st.tempTable && !st.commitDrop {
		a.pin(pinTemp)
	}
}

// word looks at the identifier cur inside a statement's body. It reports whether it advanced.
func (a *analyzer) word(st *stmt) bool {
	t := a.cur
	w := a.s[t.start:t.end]
	if t.kind == tokQIdent {
		if len(w) < 2 || w[0] != '"' || strings.IndexByte(w[1:len(w)-1], '"') >= 0 {
			return false
		}
		w = w[1 : len(w)-1] // a quoted name is case-sensitive: match it exactly
	} else if st.routine && st.depth == 0 {
		switch {
		case eqFold(w, "begin"):
			st.begins++
		case eqFold(w, "case"):
			if st.begins > 0 {
				st.begins++
			}
		case eqFold(w, "end"):
			if st.begins > 0 {
				st.begins--
			}
		}
	}
	switch n := len(w); {
	case n >= 16 && n <= 27 && (w[0] == 'p' || w[0] == 'P') && !st.skip:
		if !a.isOp(a.peek(), '(') {
			return false
		}
		switch lowered := t.kind == tokIdent; {
		case a.fn(w, lowered, "pg_advisory_lock"), a.fn(w, lowered, "pg_advisory_lock_shared"),
			a.fn(w, lowered, "pg_try_advisory_lock"), a.fn(w, lowered, "pg_try_advisory_lock_shared"):
			a.out.AdvisoryLocks++
			a.out.Flags |= EffectAdvisory
		case a.fn(w, lowered, "pg_advisory_unlock"), a.fn(w, lowered, "pg_advisory_unlock_shared"):
			a.out.AdvisoryUnlocks++
			a.out.Flags |= EffectAdvisory
		case a.fn(w, lowered, "pg_advisory_unlock_all"):
			a.out.Flags |= EffectUnlockAll
		}
	case n == 10 && !st.skip && (t.kind == tokIdent && eqFold(w, "set_config") || w == "set_config"):
		if a.isOp(a.peek(), '(') {
			a.setConfig()
			return true
		}
	case n == 4 && t.kind == tokIdent && st.selectLike && eqFold(w, "into"):
		a.advance()
		if a.kw("local") || a.kw("global") {
			a.advance()
		}
		if a.kw("temp") || a.kw("temporary") {
			if p := a.peek(); p.kind == tokQIdent || a.is(p, "table") || p.kind == tokIdent &&
				!reservedWord(a.s[p.start:p.end]) && !a.is(p, "values") && !a.is(p, "overriding") {
				a.pin(pinTemp)
			}
		}
		return true
	case n == 2 && st.tempTable && t.kind == tokIdent && eqFold(w, "on"):
		a.advance()
		if a.accept("commit") && a.kw("drop") {
			st.commitDrop = true
		}
		return true
	}
	return false
}

// fn reports whether w names function f: any case when unquoted, exactly when quoted.
func (a *analyzer) fn(w string, unquoted bool, f string) bool {
	if unquoted {
		return eqFold(w, f)
	}
	return w == f
}

// set handles the statement after SET.
func (a *analyzer) set() {
	if a.kw("local") {
		return // transaction-scoped, whatever follows
	}
	if a.kw("session") {
		if p := a.peek(); !a.is(p, "authorization") && !a.is(p, "characteristics") {
			a.advance() // SET SESSION x: the default scope
		}
	}
	// SET role = 'x', SET time = ...: a plain setting name, not a special form.
	if p := a.peek(); !a.is(p, "to") && !a.isOp(p, '=') && a.setSpecial() {
		return
	}
	name, ok := a.settingName()
	if !ok {
		return
	}
	if !a.accept("to") {
		if !a.isOp(a.cur, '=') {
			return // FROM CURRENT (a no-op outside functions) or malformed
		}
		a.advance()
	}
	a.special(name, "SET "+formatName(name)+" TO ", "default")
}

// setSpecial handles SET's special forms at cur (SET TIME ZONE, SET ROLE, ...); it reports
// false for a plain setting name.
func (a *analyzer) setSpecial() bool {
	switch {
	case a.kw("transaction"), a.kw("constraints"):
		return true // transaction-scoped
	case a.kw("session"):
		a.advance()
		if a.accept("characteristics") {
			a.pin(pinCharacterist)
			return true
		}
		if a.accept("authorization") {
			a.special("session_authorization", "SET SESSION AUTHORIZATION ", "default")
		}
		return true
	case a.kw("time") && a.is(a.peek(), "zone"):
		a.advance()
		a.advance()
		a.special("timezone", "SET TIME ZONE ", "local", "default")
		return true
	case a.kw("role"):
		a.advance()
		a.special("role", "SET ROLE ", "none")
		return true
	case a.kw("names"):
		a.advance()
		if a.atEnd() {
			a.change(ChangeReset, "client_encoding", "")
			return true
		}
		a.special("client_encoding", "SET client_encoding TO ", "default")
		return true
	case a.kw("schema"):
		a.advance()
		a.special("search_path", "SET search_path TO ")
		return true
	case a.kw("xml") && a.is(a.peek(), "option"):
		a.advance()
		a.advance()
		a.special("xmloption", "SET xmloption TO ")
		return true
	}
	return false
}

// special records the change made by a SET whose value starts at cur: a reset when the value
// is one unquoted keyword of resetWords, else a ChangeSet replayed by prefix + value.
func (a *analyzer) special(name, prefix string, resetWords ...string) {
	start, end, n := a.value()
	if n == 0 {
		return // malformed: the server rejects it
	}
	if n == 1 {
		for _, w := range resetWords {
			if a.is(token{kind: tokIdent, start: start, end: end}, w) && a.s[start] != '"' {
				a.change(ChangeReset, name, "")
				return
			}
		}
	}
	a.change(ChangeSet, name, prefix+a.s[start:end])
}

// value consumes the rest of the statement and returns the span of its n tokens.
func (a *analyzer) value() (start, end, n int) {
	start = a.cur.start
	for ; !a.atEnd(); a.advance() {
		end = a.cur.end
		n++
	}
	return start, end, n
}

// settingName consumes a possibly dotted, possibly quoted setting name and returns it in
// canonical lower case.
func (a *analyzer) settingName() (string, bool) {
	name, ok := identText(a.s, a.cur)
	if !ok {
		return "", false
	}
	a.advance()
	for a.isOp(a.cur, '.') {
		a.advance()
		part, ok := identText(a.s, a.cur)
		if !ok {
			return "", false
		}
		a.advance()
		name += "." + part
	}
	return strings.ToLower(name), name != ""
}

func (a *analyzer) change(kind ChangeKind, name, setSQL string) {
	c := SettingChange{Kind: kind, Name: name, SetSQL: setSQL, ResetSQL: resetSQL(name)}
	if kind == ChangeResetAll {
		c.Name, c.ResetSQL = "", "RESET ALL"
	}
	a.out.Changes = append(a.out.Changes, c)
}

// resetSQL returns the statement that resets setting name.
func resetSQL(name string) string {
	switch name {
	case "role":
		return "RESET ROLE"
	case "session_authorization":
		return "RESET SESSION AUTHORIZATION"
	}
	return "RESET " + formatName(name)
}

// reset handles the statement after RESET.
func (a *analyzer) reset() {
	switch {
	case a.kw("all"):
		a.change(ChangeResetAll, "", "")
	case a.kw("transaction"):
		// RESET TRANSACTION ISOLATION LEVEL: transaction-scoped
	case a.kw("role"):
		a.change(ChangeReset, "role", "")
	case a.kw("session") && a.is(a.peek(), "authorization"):
		a.change(ChangeReset, "session_authorization", "")
	case a.kw("time") && a.is(a.peek(), "zone"):
		a.change(ChangeReset, "timezone", "")
	default:
		if name, ok := a.settingName(); ok {
			a.change(ChangeReset, name, "")
		}
	}
}

// rollback handles the statement after ROLLBACK.
func (a *analyzer) rollback() {
	if a.kw("prepared") {
		return // ROLLBACK PREPARED 'gid': a two-phase transaction, not this session's
	}
	if !a.accept("work") {
		a.accept("transaction")
	}
	if !a.kw("to") {
		a.out.Flags |= EffectRollback
	}
}

// create handles the statement after CREATE.
func (a *analyzer) create(st *stmt) {
	if a.accept("or") {
		a.accept("replace")
	}
	if !a.accept("local") {
		a.accept("global")
	}
	switch {
	case a.kw("temp"), a.kw("temporary"):
		st.tempTable = true
	case a.kw("function"), a.kw("procedure"):
		st.routine = true
	}
}

// declare handles the statement after DECLARE: a cursor WITH HOLD outlives its transaction.
func (a *analyzer) declare() {
	for ; !a.atEnd() && !a.kw("for"); a.advance() {
		if a.kw("with") && a.is(a.peek(), "hold") {
			a.pin(pinHold)
			return
		}
	}
}

// deallocate handles the statement after DEALLOCATE.
func (a *analyzer) deallocate() {
	if a.kw("prepare") && a.peek().kind != tokSemi && a.peek().kind != tokEOF {
		a.advance()
	}
	if a.kw("all") {
		a.out.Flags |= EffectDeallocate
		a.out.DeallocateAll = true
		return
	}
	if name, ok := identText(a.s, a.cur); ok {
		a.out.Flags |= EffectDeallocate
		a.out.Deallocate = name
	}
}

// setConfig handles a set_config( call at cur: with literal arguments it is a SettingChange
// (none when is_local is true); otherwise the session cannot be tracked and is pinned.
func (a *analyzer) setConfig() {
	a.advance() // set_config
	a.advance() // (
	name, nameOK := stringText(a.s, a.cur)
	a.advance()
	ok := nameOK && a.isOp(a.cur, ',')
	a.advance()
	value, valueOK := stringText(a.s, a.cur)
	null := a.kw("null")
	a.advance()
	ok = ok && (valueOK || null) && a.isOp(a.cur, ',')
	a.advance()
	local, localOK := a.boolLiteral()
	a.advance()
	if !ok || !localOK || !a.isOp(a.cur, ')') || name == "" {
		a.pin(pinSetConfig)
		return
	}
	a.advance()
	if local {
		return
	}
	name = strings.ToLower(name)
	if null {
		a.change(ChangeReset, name, "")
		return
	}
	a.change(ChangeSet, name, SetStatement(name, value))
}

// boolLiteral decodes cur as a boolean constant: TRUE, FALSE, NULL (false for set_config's
// is_local) or a string Postgres accepts as a boolean.
func (a *analyzer) boolLiteral() (v, ok bool) {
	switch {
	case a.kw("true"):
		return true, true
	case a.kw("false"), a.kw("null"):
		return false, true
	}
	s, ok := stringText(a.s, a.cur)
	if !ok {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "tr", "tru", "true", "y", "ye", "yes", "on", "1":
		return true, true
	case "f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0":
		return false, true
	}
	return false, false
}
