package router

import (
	"fmt"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// CopyFormat is the data format of a COPY.
type CopyFormat uint8

// COPY formats.
const (
	CopyText   CopyFormat = iota + 1 // tab-separated text with backslash escapes (the default)
	CopyCSV                          // comma-separated values
	CopyBinary                       // Postgres' binary COPY format
)

var copyFormatNames = [...]string{"", "text", "csv", "binary"}

func (f CopyFormat) String() string {
	if int(f) < len(copyFormatNames) && f != 0 {
		return copyFormatNames[f]
	}
	return fmt.Sprintf("CopyFormat(%d)", uint8(f))
}

// MarshalText writes the format's name (as in FORMAT csv).
func (f CopyFormat) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads a format's name.
func (f *CopyFormat) UnmarshalText(b []byte) error {
	for i, n := range copyFormatNames {
		if n != "" && n == string(b) {
			*f = CopyFormat(i)
			return nil
		}
	}
	return fmt.Errorf("unknown COPY format %q", b)
}

// CopySpec describes a COPY FROM STDIN or COPY TO STDOUT of a sharded table (a plan of
// TargetSplit): how the data rows are written, where their shard key is, and for COPY TO the
// statement each group runs. The options are the client's, with Postgres' defaults for those
// it left out. For COPY FROM every group runs the client's statement as written (its WHERE
// clause included) on the rows of its shards. Each row's own key decides: a shard_key hint or
// the session's key changes nothing. It is shared by every plan of the statement's shape: do
// not modify it.
type CopySpec struct {
	// Table is the table copied, as in Plan.Tables (lower case, without schema).
	Table string `json:"table"`
	// KeyColumn is the table's shard-key column.
	KeyColumn string `json:"key_column"`
	// KeyIndex is the 0-based index of the key among a data row's fields: its place in the
	// column list, or without one in the table's column order (shardmap.Map.KeyIndex, which
	// counts stored generated columns; COPY leaves them out, so a table with one before its
	// key must be copied with a column list). It is always known for COPY FROM (the router
	// rejects the statement otherwise); for COPY TO, whose rows the groups select by shard
	// themselves, it is -1 when the rows do not carry the key or its place is unknown.
	KeyIndex int `json:"key_index"`
	// Columns is the number of fields of every data row when the statement lists its
	// columns, else 0 (unknown).
	Columns int `json:"columns,omitempty"`
	// Format is the data format.
	Format CopyFormat `json:"format"`
	// Header is set when the data begins with a header line (HEADER true, or MATCH for COPY
	// FROM, which every group checks against its columns). Never set for CopyBinary.
	Header bool `json:"header,omitempty"`
	// Delimiter separates fields (text: tab, CSV: comma); 0 for CopyBinary.
	Delimiter byte `json:"delimiter,omitempty"`
	// Quote and Escape are CSV's quote character (default ") and the character that escapes a
	// quote inside a quoted field (default the quote); 0 for the other formats.
	Quote  byte `json:"quote,omitempty"`
	Escape byte `json:"escape,omitempty"`
	// Null is the text of a NULL field (text: \N, CSV: the empty unquoted string); "" for
	// CopyBinary.
	Null string `json:"null,omitempty"`
	// Encoding is the ENCODING option, "" when the client_encoding applies.
	Encoding string `json:"encoding,omitempty"`

	// COPY TO: the per-group statement before and after its shard array literal.
	outHead, outTail string
}

// OutSQL returns, for a COPY TO STDOUT, the statement a group owning shards runs instead:
//
//	COPY (SELECT <the listed columns, or *> FROM <the table> WHERE <its rows are in shards>)
//	TO STDOUT WITH (<the client's options>)
//
// The restriction is the one ScatterSQL adds to a scattered read; HEADER, when asked for, is
// kept, so every group writes a header line. The select reads the table's partitions (and
// inheritance children) too: a partitioned table copies like a plain one. It returns "" for
// a COPY FROM. It allocates the result and nothing else.
func (c *CopySpec) OutSQL(shards shardmap.ShardSet) string {
	if c.outHead == "" {
		return ""
	}
	return c.outHead + scShardArray(shards) + c.outTail
}

// copyTable plans a COPY of a sharded table (the caller has noted the table and walked the
// WHERE clause): TargetSplit, or a reject of what the proxy cannot split.
func (b *builder) copyTable(c *pg.CopyStmt, kind Kind, table, keyCol string) stmtTemplate {
	// The options are literals (DELIMITER ';'): every one decides the plan.
	b.pinMode, b.pinWhere = pinAll, nil
	verb, std := "COPY into", "FROM STDIN"
	if !c.IsFrom {
		verb, std = "COPY of", "TO STDOUT"
	}
	if c.Filename != "" || c.IsProgram {
		return reject(kind, &RouteError{Code: CodeFeatureNotSupported,
			Message: verb + " sharded table " + table + " with a file or program on the server is not supported",
			Hint:    "use COPY " + table + " " + std + " (psql: \\copy), which the proxy splits by " + keyCol})
	}
	spec, err := parseCopyOptions(c.Options, c.IsFrom)
	if err != nil {
		return reject(kind, err)
	}
	spec.Table, spec.KeyColumn, spec.KeyIndex = table, keyCol, -1
	if len(c.Attlist) > 0 {
		spec.Columns = len(c.Attlist)
		for i, a := range c.Attlist {
			if a.GetString_().GetSval() == keyCol {
				spec.KeyIndex = i
				break
			}
		}
	} else if i, ok := b.copyKeyIndex(table); ok {
		spec.KeyIndex = i
	}
	if c.IsFrom && spec.KeyIndex < 0 {
		msg := "COPY into sharded table " + table + " without a column list needs the position of " + keyCol +
			", which the router does not know"
		if len(c.Attlist) > 0 {
			msg = "COPY into sharded table " + table + " needs its key column " + keyCol + " in the column list"
		}
		return reject(kind, &RouteError{Code: CodeFeatureNotSupported, Message: msg,
			Hint: "name the columns, " + keyCol + " among them: COPY " + table + " (" + keyCol + ", ...) FROM STDIN"})
	}
	if !c.IsFrom {
		head, tail, err := copyOutSQL(c, keyCol, b.version)
		if err != nil { // the client's own statement parsed: a defect, its text is not for the client
			return reject(kind, &RouteError{Code: CodeFeatureNotSupported,
				Message: "COPY of sharded table " + table + " could not be split over the groups",
				Hint:    "use COPY (SELECT ... FROM " + table + " WHERE " + keyCol + " = ...) TO STDOUT"})
		}
		spec.outHead, spec.outTail = head, tail
	}
	st := fixed(kind, TargetSplit)
	st.copy = &spec
	return st
}

// copyOutSQL deparses the per-group statement of COPY TO c, with a marker for the shard
// array literal, and returns the text around the literal's value.
func copyOutSQL(c *pg.CopyStmt, keyCol string, version int32) (head, tail string, err error) {
	rv := c.Relation
	from := &pg.RangeVar{Catalogname: rv.Catalogname, Schemaname: rv.Schemaname, Relname: rv.Relname,
		Inh: true, Relpersistence: rv.Relpersistence, Location: -1}
	var targets []*pg.Node
	if len(c.Attlist) == 0 {
		targets = []*pg.Node{pg.MakeResTargetNodeWithVal(pg.MakeColumnRefNode([]*pg.Node{pg.MakeAStarNode()}, -1), -1)}
	}
	for _, a := range c.Attlist {
		col := pg.MakeColumnRefNode([]*pg.Node{pg.MakeStrNode(a.GetString_().GetSval())}, -1)
		targets = append(targets, pg.MakeResTargetNodeWithVal(col, -1))
	}
	// The marker must be a string none of the statement's names and options spells out:
	// markers are tried until the deparsed text holds one exactly once.
	for attempt := 0; attempt < 16; attempt++ {
		marker := "{sw_shards_" + strconv.Itoa(attempt) + "}"
		sel := &pg.SelectStmt{
			TargetList:  targets,
			FromClause:  []*pg.Node{{Node: &pg.Node_RangeVar{RangeVar: from}}},
			WhereClause: scRestriction(rv.Relname, keyCol, marker),
			LimitOption: pg.LimitOption_LIMIT_OPTION_DEFAULT,
			Op:          pg.SetOperation_SETOP_NONE,
		}
		stmt := &pg.CopyStmt{Query: &pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: sel}}, Options: c.Options}
		out, err := pg.Deparse(&pg.ParseResult{Version: version,
			Stmts: []*pg.RawStmt{{Stmt: &pg.Node{Node: &pg.Node_CopyStmt{CopyStmt: stmt}}}}})
		if err != nil {
			return "", "", fmt.Errorf("deparse: %w", err)
		}
		quoted := "'" + marker + "'"
		if strings.Count(out, quoted) == 1 {
			i := strings.Index(out, quoted) + 1
			return out[:i], out[i+len(marker):], nil
		}
	}
	return "", "", fmt.Errorf("no place for the shard restriction")
}

// copyOptions is what parseCopyOptions has seen of the options it checks but does not report.
type copyOptions struct {
	seen                      map[string]bool
	delim, null, dflt         *string
	quote, escape             *string
	forceQuote, forceNotNull  bool
	forceNull, freeze, ignore bool
}

// parseCopyOptions reads a COPY's options — the WITH (...) list and the legacy syntax, which
// the parser gives alike — into a CopySpec with Postgres' defaults, and rejects what Postgres
// would reject on sight (ProcessCopyOptions), with its SQLSTATE: an unknown or repeated
// option, an unknown format, a delimiter or quote that is not one byte, options of another
// format or direction. Options that only the server acts on (FREEZE, ENCODING, FORCE_*,
// ON_ERROR, ...) are checked as far as they conflict with others and passed on.
func parseCopyOptions(opts []*pg.Node, isFrom bool) (CopySpec, *RouteError) {
	spec := CopySpec{Format: CopyText}
	o := copyOptions{seen: map[string]bool{}}
	for _, n := range opts {
		d := n.GetDefElem()
		if d == nil {
			continue
		}
		name := d.Defname
		switch name {
		case "format", "freeze", "delimiter", "null", "default", "header", "quote", "escape",
			"force_quote", "force_not_null", "force_null", "encoding", "on_error", "log_verbosity", "reject_limit":
		default:
			return spec, &RouteError{Code: CodeSyntaxError, Message: "option \"" + name + "\" not recognized"}
		}
		if o.seen[name] {
			return spec, &RouteError{Code: CodeSyntaxError, Message: "conflicting or redundant options",
				Hint: "give the COPY option " + strings.ToUpper(name) + " once"}
		}
		o.seen[name] = true
		var err *RouteError
		switch name {
		case "format":
			var f string
			if f, err = defString(d); err == nil {
				switch f {
				case "text":
					spec.Format = CopyText
				case "csv":
					spec.Format = CopyCSV
				case "binary":
					spec.Format = CopyBinary
				default:
					err = &RouteError{Code: CodeInvalidParameter, Message: "COPY format \"" + f + "\" not recognized"}
				}
			}
		case "header":
			spec.Header, err = copyHeader(d, isFrom)
		case "freeze":
			o.freeze, err = defBool(d)
		case "delimiter":
			o.delim, err = defStringPtr(d)
		case "null":
			o.null, err = defStringPtr(d)
		case "default":
			o.dflt, err = defStringPtr(d)
		case "quote":
			o.quote, err = defStringPtr(d)
		case "escape":
			o.escape, err = defStringPtr(d)
		case "encoding":
			spec.Encoding, err = defString(d)
		case "force_quote", "force_not_null", "force_null":
			if d.Arg.GetAStar() == nil && d.Arg.GetList() == nil {
				err = &RouteError{Code: CodeInvalidParameter,
					Message: "argument to option \"" + name + "\" must be a list of column names"}
			}
			o.forceQuote = o.forceQuote || name == "force_quote"
			o.forceNotNull = o.forceNotNull || name == "force_not_null"
			o.forceNull = o.forceNull || name == "force_null"
		case "on_error":
			var v string
			if v, err = defString(d); err == nil {
				switch {
				case !isFrom:
					err = &RouteError{Code: CodeInvalidParameter, Message: "COPY ON_ERROR cannot be used with COPY TO"}
				case strings.EqualFold(v, "ignore"):
					o.ignore = true
				case !strings.EqualFold(v, "stop"):
					err = &RouteError{Code: CodeInvalidParameter, Message: "COPY ON_ERROR \"" + v + "\" not recognized"}
				}
			}
		}
		if err != nil {
			return spec, err
		}
	}
	return spec, o.apply(&spec, isFrom)
}

// apply checks the options against each other as Postgres does, in its order, and sets the
// spec's delimiter, quote, escape and NULL text, with the format's defaults.
func (o *copyOptions) apply(spec *CopySpec, isFrom bool) *RouteError {
	csv, binary := spec.Format == CopyCSV, spec.Format == CopyBinary
	syntax := func(msg string) *RouteError { return &RouteError{Code: CodeSyntaxError, Message: msg} }
	invalid := func(msg string) *RouteError { return &RouteError{Code: CodeInvalidParameter, Message: msg} }
	unsupported := func(msg string) *RouteError { return &RouteError{Code: CodeFeatureNotSupported, Message: msg} }
	switch {
	case binary && o.delim != nil:
		return syntax("cannot specify DELIMITER in BINARY mode")
	case binary && o.null != nil:
		return syntax("cannot specify NULL in BINARY mode")
	case binary && o.dflt != nil:
		return syntax("cannot specify DEFAULT in BINARY mode")
	}
	delim, null := "\t", `\N`
	if csv {
		delim, null = ",", ""
	}
	if o.delim != nil {
		delim = *o.delim
	}
	if o.null != nil {
		null = *o.null
	}
	quote, escape := "", ""
	if csv {
		quote = `"`
		if o.quote != nil {
			quote = *o.quote
		}
		escape = quote
		if o.escape != nil {
			escape = *o.escape
		}
	}
	switch {
	case len(delim) != 1:
		return unsupported("COPY delimiter must be a single one-byte character")
	case delim[0] == '\r' || delim[0] == '\n':
		return invalid("COPY delimiter cannot be newline or carriage return")
	case strings.ContainsAny(null, "\r\n"):
		return invalid("COPY null representation cannot use newline or carriage return")
	case o.dflt != nil && strings.ContainsAny(*o.dflt, "\r\n"):
		return invalid("COPY default representation cannot use newline or carriage return")
	case !csv && strings.IndexByte(`\.abcdefghijklmnopqrstuvwxyz0123456789`, delim[0]) >= 0:
		return invalid("COPY delimiter cannot be \"" + delim + "\"")
	case binary && spec.Header:
		return unsupported("cannot specify HEADER in BINARY mode")
	case !csv && o.quote != nil:
		return unsupported("COPY QUOTE requires CSV mode")
	case csv && len(quote) != 1:
		return unsupported("COPY quote must be a single one-byte character")
	case csv && delim[0] == quote[0]:
		return invalid("COPY delimiter and quote must be different")
	case !csv && o.escape != nil:
		return unsupported("COPY ESCAPE requires CSV mode")
	case csv && len(escape) != 1:
		return unsupported("COPY escape must be a single one-byte character")
	case !csv && o.forceQuote:
		return unsupported("COPY FORCE_QUOTE requires CSV mode")
	case o.forceQuote && isFrom:
		return unsupported("COPY FORCE_QUOTE cannot be used with COPY FROM")
	case !csv && o.forceNotNull:
		return unsupported("COPY FORCE_NOT_NULL requires CSV mode")
	case o.forceNotNull && !isFrom:
		return invalid("COPY FORCE_NOT_NULL cannot be used with COPY TO")
	case !csv && o.forceNull:
		return unsupported("COPY FORCE_NULL requires CSV mode")
	case o.forceNull && !isFrom:
		return invalid("COPY FORCE_NULL cannot be used with COPY TO")
	case strings.IndexByte(null, delim[0]) >= 0:
		return invalid("COPY delimiter character must not appear in the NULL specification")
	case csv && strings.IndexByte(null, quote[0]) >= 0:
		return invalid("CSV quote character must not appear in the NULL specification")
	case o.freeze && !isFrom:
		return invalid("COPY FREEZE cannot be used with COPY TO")
	case o.dflt != nil && !isFrom:
		return unsupported("COPY DEFAULT cannot be used with COPY TO")
	case o.dflt != nil && strings.IndexByte(*o.dflt, delim[0]) >= 0:
		return unsupported("COPY delimiter character must not appear in the DEFAULT specification")
	case o.dflt != nil && csv && strings.IndexByte(*o.dflt, quote[0]) >= 0:
		return unsupported("CSV quote character must not appear in the DEFAULT specification")
	case o.dflt != nil && *o.dflt == null:
		return unsupported("NULL specification and DEFAULT specification cannot be the same")
	case binary && o.ignore:
		return syntax("only ON_ERROR STOP is allowed in BINARY mode")
	}
	if !binary {
		spec.Delimiter, spec.Null = delim[0], null
	}
	if csv {
		spec.Quote, spec.Escape = quote[0], escape[0]
	}
	return nil
}

// defString returns an option's value as text, as Postgres' defGetString does.
func defString(d *pg.DefElem) (string, *RouteError) {
	a := d.Arg
	switch {
	case a == nil:
		return "", &RouteError{Code: CodeSyntaxError, Message: d.Defname + " requires a parameter"}
	case a.GetString_() != nil:
		return a.GetString_().Sval, nil
	case a.GetInteger() != nil:
		return strconv.Itoa(int(a.GetInteger().Ival)), nil
	case a.GetFloat() != nil:
		return a.GetFloat().Fval, nil
	case a.GetBoolean() != nil:
		return strconv.FormatBool(a.GetBoolean().Boolval), nil
	case a.GetAStar() != nil:
		return "*", nil
	}
	return "", &RouteError{Code: CodeSyntaxError, Message: "invalid value for COPY option " + d.Defname}
}

// defStringPtr is defString for options whose absence matters.
func defStringPtr(d *pg.DefElem) (*string, *RouteError) {
	s, err := defString(d)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// copyBool reads a Boolean option value: none (true), 0 or 1, true/false/on/off in any case.
// ok is false for anything else.
func copyBool(a *pg.Node) (v, ok bool) {
	switch {
	case a == nil:
		return true, true
	case a.GetBoolean() != nil:
		return a.GetBoolean().Boolval, true
	case a.GetInteger() != nil:
		switch a.GetInteger().Ival {
		case 0:
			return false, true
		case 1:
			return true, true
		}
		return false, false
	case a.GetString_() != nil:
		switch strings.ToLower(a.GetString_().Sval) {
		case "true", "on":
			return true, true
		case "false", "off":
			return false, true
		}
	}
	return false, false
}

// defBool reads a Boolean option, as Postgres' defGetBoolean does.
func defBool(d *pg.DefElem) (bool, *RouteError) {
	if v, ok := copyBool(d.Arg); ok {
		return v, nil
	}
	return false, &RouteError{Code: CodeSyntaxError, Message: d.Defname + " requires a Boolean value"}
}

// copyHeader reads HEADER: a Boolean, or MATCH (COPY FROM only).
func copyHeader(d *pg.DefElem, isFrom bool) (bool, *RouteError) {
	if v, ok := copyBool(d.Arg); ok {
		return v, nil
	}
	if s := d.Arg.GetString_(); s != nil && strings.EqualFold(s.Sval, "match") {
		if !isFrom {
			return false, &RouteError{Code: CodeFeatureNotSupported,
				Message: "cannot use \"" + s.Sval + "\" with HEADER in COPY TO"}
		}
		return true, nil
	}
	return false, &RouteError{Code: CodeSyntaxError, Message: d.Defname + " requires a Boolean value or \"match\""}
}
