package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files with the current results")

const sessionCasesFile = "testdata/session_cases.json"

// sessionCase is one line of testdata/session_cases.json.
type sessionCase struct {
	Comment string         `json:"comment"`
	SQL     string         `json:"sql"`
	Want    SessionEffects `json:"want"`
}

func loadSessionCases(tb testing.TB) []sessionCase {
	tb.Helper()
	f, err := os.Open(sessionCasesFile)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []sessionCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var c sessionCase
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			tb.Fatalf("%s:%d: %v", sessionCasesFile, line, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return cases
}

func TestAnalyzeSessionGolden(t *testing.T) {
	cases := loadSessionCases(t)
	if len(cases) < 40 {
		t.Fatalf("only %d golden cases", len(cases))
	}
	var out bytes.Buffer
	for _, c := range cases {
		got := AnalyzeSession(c.SQL)
		if *update {
			c.Want = got
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(c); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !reflect.DeepEqual(got, c.Want) {
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(c.Want)
			t.Errorf("%s\nsql:  %q\ngot:  %s\nwant: %s", c.Comment, c.SQL, gotJSON, wantJSON)
		}
	}
	if *update {
		if err := os.WriteFile(sessionCasesFile, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAnalyzeSessionReplay checks that every SetSQL and ResetSQL the golden cases produce is
// itself understood as the change it stands for.
func TestAnalyzeSessionReplay(t *testing.T) {
	for _, c := range loadSessionCases(t) {
		for _, ch := range AnalyzeSession(c.SQL).Changes {
			if ch.Kind == ChangeSet {
				got := AnalyzeSession(ch.SetSQL).Changes
				if len(got) != 1 || got[0].Kind != ChangeSet || got[0].Name != ch.Name {
					t.Errorf("%s: SetSQL %q analyzes as %+v", c.Comment, ch.SetSQL, got)
				}
			}
			got := AnalyzeSession(ch.ResetSQL).Changes
			if len(got) != 1 || got[0].Kind == ChangeSet || got[0].Name != ch.Name {
				t.Errorf("%s: ResetSQL %q analyzes as %+v", c.Comment, ch.ResetSQL, got)
			}
		}
	}
}

func TestAnalyzeSessionAllocs(t *testing.T) {
	for _, sql := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
		"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
		"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
		"/* c */ BEGIN; SELECT 'SET x' FROM t -- SET\n; COMMIT; LISTEN x; SELECT pg_advisory_lock(1)",
	} {
		if n := testing.AllocsPerRun(100, func() { AnalyzeSession(sql) }); n != 0 {
			t.Errorf("AnalyzeSession(%q): %v allocations, want 0", sql, n)
		}
	}
}

func TestSetStatement(t *testing.T) {
	for _, c := range []struct{ name, value, want string }{
		{"DateStyle", "ISO", `SET "DateStyle" TO 'ISO'`},
		{"application_name", "it's", `SET "application_name" TO 'it''s'`},
		{"my\"var", `a\b`, `SET "my""var" TO E'a\\b'`},
		{"search_path", `"$user", Public`, `SET "search_path" TO '$user', 'public'`},
		{"search_path", `a,"B C"`, `SET "search_path" TO 'a', 'B C'`},
		{"search_path", "", `SET "search_path" TO ''`},
		{"search_path", `a,,b`, `SET "search_path" TO 'a,,b'`},
		{"DateStyle", "ISO, MDY", `SET "DateStyle" TO 'ISO, MDY'`},
	} {
		if got := SetStatement(c.name, c.value); got != c.want {
			t.Errorf("SetStatement(%q, %q) = %s, want %s", c.name, c.value, got, c.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	for _, c := range []struct {
		in   string
		want map[string]string
		err  bool
	}{
		{"", map[string]string{}, false},
		{"-c search_path=app", map[string]string{"search_path": "app"}, false},
		{"-cgeqo=off --statement-timeout=5s  -c DateStyle=ISO,\\ MDY",
			map[string]string{"geqo": "off", "statement_timeout": "5s", "datestyle": "ISO, MDY"}, false},
		{`-c a.b=x\\y -c a.b=z`, map[string]string{"a.b": "z"}, false},
		{`-c x=a\ b\`, map[string]string{"x": "a b"}, false},
		{"-c", nil, true},
		{"-c foo", nil, true},
		{"--foo", nil, true},
		{"-B 100", nil, true},
		{"search_path=x", nil, true},
	} {
		got, err := ParseOptions(c.in)
		if (err != nil) != c.err || !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseOptions(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestEffectFlagsText(t *testing.T) {
	f := EffectBegin | EffectPin | EffectDeallocate
	if s := f.String(); s != "Begin|Pin|Deallocate" {
		t.Fatalf("String = %q", s)
	}
	var g EffectFlags
	if err := g.UnmarshalText([]byte(f.String())); err != nil || g != f {
		t.Fatalf("UnmarshalText = %v, %v", g, err)
	}
	if err := g.UnmarshalText([]byte("Nope")); err == nil {
		t.Fatal("UnmarshalText accepted an unknown name")
	}
	if s := EffectFlags(1 << 15).String(); s != "0x8000" {
		t.Fatalf("unknown bit String = %q", s)
	}
}

func BenchmarkAnalyzeSession(b *testing.B) {
	for _, bc := range []struct{ name, sql string }{
		{"select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"},
		{"update", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;"},
		{"set", "SET search_path TO \"$user\", public"},
		{"set_config", "SELECT set_config('app.user_id', '42', false)"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.sql)))
			for b.Loop() {
				AnalyzeSession(bc.sql)
			}
		})
	}
	b.Run("golden", func(b *testing.B) {
		cases := loadSessionCases(b)
		b.ReportAllocs()
		for b.Loop() {
			for _, c := range cases {
				AnalyzeSession(c.SQL)
			}
		}
	})
}

func FuzzAnalyzeSession(f *testing.F) {
	for _, c := range loadSessionCases(f) {
		f.Add(c.SQL)
	}
	for _, s := range []string{"'", `"`, "$", "$a", "$a$", "E'\\", "U&'", "/*", "/* /*", "--",
		"SET", "SET x", "SET x TO", "SET TIME", "RESET", "DEALLOCATE", "DEALLOCATE PREPARE",
		"SELECT set_config(", "SELECT set_config('a',", "SELECT set_config('a','b',",
		"SELECT set_config(E'\\x", "SELECT set_config('a',E'\\u00", "CREATE TEMP TABLE t ON",
		"SELECT INTO TEMP", "CREATE FUNCTION f() BEGIN ATOMIC", "((((", "DECLARE c WITH"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		e := AnalyzeSession(sql)
		if (e.Flags&EffectSession != 0) != (len(e.Changes) > 0) {
			t.Errorf("Session flag %v with %d changes", e.Flags, len(e.Changes))
		}
		if (e.Flags&EffectPin != 0) != (e.PinReason != "") {
			t.Errorf("Pin flag %v with reason %q", e.Flags, e.PinReason)
		}
		if (e.Flags&EffectAdvisory != 0) != (e.AdvisoryLocks+e.AdvisoryUnlocks > 0) {
			t.Errorf("Advisory flag %v with %d locks, %d unlocks", e.Flags, e.AdvisoryLocks, e.AdvisoryUnlocks)
		}
		if e.Flags&EffectDeallocate == 0 && (e.Deallocate != "" || e.DeallocateAll) {
			t.Errorf("Deallocate %q/%v without the flag", e.Deallocate, e.DeallocateAll)
		}
		for _, c := range e.Changes {
			switch {
			case c.Kind == ChangeResetAll && (c.Name != "" || c.ResetSQL != "RESET ALL"),
				c.Kind != ChangeResetAll && (c.Name == "" || c.Name != strings.ToLower(c.Name)),
				(c.Kind == ChangeSet) != (c.SetSQL != ""),
				c.ResetSQL == "":
				t.Errorf("malformed change %+v", c)
			}
			if c.Kind == ChangeSet {
				if r := AnalyzeSession(c.SetSQL).Changes; len(r) != 1 || r[0].Kind != ChangeSet || r[0].Name != c.Name {
					t.Errorf("SetSQL %q of %+v analyzes as %+v", c.SetSQL, c, r)
				}
			}
		}
	})
}
