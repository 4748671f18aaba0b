package twopc

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNewGID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		gid := NewGID("p0")
		if !strings.HasPrefix(gid, GIDPrefix+"p0:") || !IsGID(gid) {
			t.Fatalf("NewGID(p0) = %q, want the prefix %q", gid, GIDPrefix+"p0:")
		}
		if seen[gid] {
			t.Fatalf("NewGID returned %q twice", gid)
		}
		seen[gid] = true
	}
	for _, node := range []string{"", strings.Repeat("n", 500), strings.Repeat("é", 150), strings.Repeat("x", 180) + "€€€"} {
		gid := NewGID(node)
		if len(gid) > MaxGIDLen || !utf8.ValidString(gid) || !IsGID(gid) {
			t.Errorf("NewGID(%d-byte node) = %q (%d bytes), want a valid prefixed identifier of at most %d bytes", len(node), gid, len(gid), MaxGIDLen)
		}
	}
	if IsGID("pgbouncer:1") {
		t.Error("IsGID accepted a foreign identifier")
	}
}

func TestQuoteLiteral(t *testing.T) {
	tests := []struct{ in, want string }{
		{"shardwire:p0:1", `'shardwire:p0:1'`},
		{"it's", `'it''s'`},
		{`back\slash`, `E'back\\slash'`},
		{`both\'`, `E'both\\'''`},
		{"", `''`},
	}
	for _, tt := range tests {
		if got := quoteLiteral(tt.in); got != tt.want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if got, want := CommitPreparedSQL("a'b"), `COMMIT PREPARED 'a''b'`; got != want {
		t.Errorf("CommitPreparedSQL = %s, want %s", got, want)
	}
}

// unquoteLiteral reads back what quoteLiteral wrote, the way Postgres reads a literal
// (only the escapes quoteLiteral produces), and reports whether it is well formed.
func unquoteLiteral(q string) (string, bool) {
	escape := strings.HasPrefix(q, "E'")
	if escape {
		q = q[1:]
	}
	if len(q) < 2 || q[0] != '\'' || q[len(q)-1] != '\'' {
		return "", false
	}
	body := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '\'':
			if i+1 >= len(body) || body[i+1] != '\'' {
				return "", false // the literal would end here
			}
			b.WriteByte('\'')
			i++
		case c == '\\' && escape:
			if i+1 >= len(body) {
				return "", false
			}
			b.WriteByte(body[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func FuzzQuoteLiteral(f *testing.F) {
	for _, s := range []string{"", "shardwire:p0:1", "'", `\`, `\'`, `'\''`, "a''b", `E'x'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := quoteLiteral(s)
		got, ok := unquoteLiteral(q)
		if !ok || got != s {
			t.Fatalf("quoteLiteral(%q) = %s, which reads back as %q (well formed: %v)", s, q, got, ok)
		}
	})
}
