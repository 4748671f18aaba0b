package router

import (
	"errors"
	"fmt"
	"strings"
)

// SetStatement returns a statement that sets the session setting name to the raw value, as a
// startup parameter (DateStyle=ISO) or set_config would: `SET "DateStyle" TO 'ISO'`. The name
// is always quoted; the value is a literal, written E'...' when it holds a backslash so that
// it reads the same whatever standard_conforming_strings is.
//
// For list settings whose elements SET quotes as identifiers (search_path, temp_tablespaces,
// *_preload_libraries), the raw value is split the way the server splits it and each element
// becomes one literal, so "a, \"B\"" is replayed as `SET "search_path" TO 'a', 'B'`. SET
// cannot express an empty such list; an empty value is replayed as an empty string.
func SetStatement(name, value string) string {
	var b strings.Builder
	b.WriteString("SET ")
	b.WriteString(quoteIdent(name))
	b.WriteString(" TO ")
	if listQuoted(strings.ToLower(name)) {
		if elems, ok := splitIdentifiers(value); ok && len(elems) > 0 {
			for i, e := range elems {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(quoteLiteral(e))
			}
			return b.String()
		}
	}
	b.WriteString(quoteLiteral(value))
	return b.String()
}

// ParseOptions parses a libpq "options" startup parameter into setting names and values the
// way the server does: words are separated by whitespace, a backslash makes the next
// character literal (so `\ ` is a space in a value), and each setting is written
// "-c name=value", "-cname=value" or "--name=value". Dashes in a name become underscores and
// names are lower-cased (settings are case-insensitive); a later setting of a name wins. Other
// command-line switches, a word that is not a switch, or a setting without '=' are errors.
func ParseOptions(options string) (map[string]string, error) {
	words := splitOptions(options)
	out := make(map[string]string)
	for i := 0; i < len(words); i++ {
		w := words[i]
		var setting string
		switch {
		case w == "-c":
			if i+1 >= len(words) {
				return nil, errors.New("router: options: -c requires a name=value argument")
			}
			i++
			setting = words[i]
		case strings.HasPrefix(w, "-c"):
			setting = w[2:]
		case strings.HasPrefix(w, "--"):
			setting = w[2:]
		case strings.HasPrefix(w, "-"):
			return nil, fmt.Errorf("router: options: unsupported switch %q (only -c and --name=value)", w)
		default:
			return nil, fmt.Errorf("router: options: %q is not a -c or --name=value setting", w)
		}
		name, value, ok := strings.Cut(setting, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("router: options: setting %q requires name=value", setting)
		}
		out[strings.ToLower(strings.ReplaceAll(name, "-", "_"))] = value
	}
	return out, nil
}

// splitOptions splits options at unescaped whitespace, undoing backslash escapes, as the
// server's pg_split_opts does (a trailing lone backslash is dropped).
func splitOptions(s string) []string {
	var words []string
	var b strings.Builder
	inWord, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			b.WriteByte(c)
			escaped = false
		case c == '\\':
			escaped, inWord = true, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

// listQuoted reports whether SET quotes each element of setting name as an identifier
// (GUC_LIST_QUOTE).
func listQuoted(name string) bool {
	switch name {
	case "search_path", "temp_tablespaces", "session_preload_libraries",
		"local_preload_libraries", "shared_preload_libraries":
		return true
	}
	return false
}

// splitIdentifiers splits a comma-separated list of identifiers as the server's
// SplitIdentifierString does: "quoted" elements keep their case, others are trimmed and
// lower-cased. ok is false for a malformed list.
func splitIdentifiers(s string) (elems []string, ok bool) {
	i := 0
	skip := func() {
		for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
			i++
		}
	}
	skip()
	if i == len(s) {
		return nil, true
	}
	for {
		var e string
		if s[i] == '"' {
			var b strings.Builder
			for i++; ; i++ {
				if i >= len(s) {
					return nil, false
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						i++
					} else {
						i++
						break
					}
				}
				b.WriteByte(s[i])
			}
			e = b.String()
			if e == "" {
				return nil, false
			}
		} else {
			j := i
			for i < len(s) && s[i] != ',' && strings.IndexByte(" \t\n\r\f\v", s[i]) < 0 {
				i++
			}
			if i == j {
				return nil, false
			}
			e = lowerASCII(s[j:i])
		}
		elems = append(elems, e)
		skip()
		if i == len(s) {
			return elems, true
		}
		if s[i] != ',' {
			return nil, false
		}
		i++
		skip()
		if i == len(s) {
			return nil, false
		}
	}
}

// quoteIdent quotes s as a SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes s as a SQL string literal, in E'...' form when it holds a backslash.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.IndexByte(s, '\\') >= 0 {
		return "E'" + strings.ReplaceAll(s, `\`, `\\`) + "'"
	}
	return "'" + s + "'"
}

// formatName writes a canonical setting name for a SET or RESET statement: bare when every
// dot-separated part is a plain lower-case identifier that is not a keyword SET treats
// specially, else quoted.
func formatName(name string) string {
	if name == "" {
		return `""`
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" || reservedWord(part) || setSpecialWord(part) || isDigit(part[0]) || part[0] == '$' {
			return quoteIdent(name)
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !(c >= 'a' && c <= 'z' || c == '_' || c == '$' || isDigit(c)) {
				return quoteIdent(name)
			}
		}
	}
	return name
}

// reservedWord reports whether w (any case) is a keyword that cannot be a bare setting name or
// table name: Postgres's reserved and type/function-name keywords.
func reservedWord(w string) bool {
	switch strings.ToLower(w) {
	case "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
		"authorization", "binary", "both", "case", "cast", "check", "collate", "collation",
		"column", "concurrently", "constraint", "create", "cross", "current_catalog",
		"current_date", "current_role", "current_schema", "current_time", "current_timestamp",
		"current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end",
		"except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant",
		"group", "having", "ilike", "in", "initially", "inner", "intersect", "into", "is",
		"isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
		"localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or",
		"order", "outer", "overlaps", "placing", "primary", "references", "returning",
		"right", "select", "session_user", "similar", "some", "symmetric", "system_user",
		"table", "tablesample", "then", "to", "trailing", "true", "union", "unique", "user",
		"using", "variadic", "verbose", "when", "where", "window", "with":
		return true
	}
	return false
}

// setSpecialWord reports whether w starts one of SET's special forms (SET ROLE, SET TIME
// ZONE, ...), so that a setting of that name must be quoted.
func setSpecialWord(w string) bool {
	switch w {
	case "catalog", "constraints", "local", "names", "role", "schema", "session", "time",
		"transaction", "xml":
		return true
	}
	return false
}
