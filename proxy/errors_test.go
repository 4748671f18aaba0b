package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardwire/shardwire/proxy/wire"
)

func TestErrorFieldHelpers(t *testing.T) {
	enc := func(sev, code string) wire.Frame {
		b, err := (&pgproto3.ErrorResponse{Severity: sev, SeverityUnlocalized: sev, Code: code, Message: "m"}).Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		sev, code string
		fatal     bool
	}{{"ERROR", "42P01", false}, {"FATAL", "57P01", true}, {"PANIC", "XX000", true}}
	for _, c := range cases {
		f := enc(c.sev, c.code)
		if got := errorCode(f.Body()); got != c.code {
			t.Errorf("errorCode = %q, want %q", got, c.code)
		}
		if got := isFatal(f.Body()); got != c.fatal {
			t.Errorf("isFatal(%s) = %v", c.sev, got)
		}
		d := downgradeFatal(f)
		var msg pgproto3.ErrorResponse
		if err := msg.Decode(d.Body()); err != nil {
			t.Fatalf("downgraded frame does not decode: %v", err)
		}
		if msg.Severity != "ERROR" || msg.SeverityUnlocalized != "ERROR" || msg.Code != c.code || msg.Message != "m" {
			t.Errorf("downgraded %s: %+v", c.sev, msg)
		}
	}
	if errorCode([]byte("Cabc")) != "" || isFatal([]byte("VFATAL")) {
		t.Error("malformed bodies must not match")
	}
}
