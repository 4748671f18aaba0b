package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// RFC 7677 section 3: user "user", password "pencil".
const (
	rfcSalt        = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcCredential(t testing.TB) *Credential {
	t.Helper()
	salt, err := base64.StdEncoding.DecodeString(rfcSalt)
	if err != nil {
		t.Fatal(err)
	}
	return deriveSCRAM("user", "pencil", salt, 4096)
}

// rfcServer returns a Server for the RFC 7677 exchange, past Begin.
func rfcServer(cred *Credential) *Server {
	s := NewServer(cred, SCRAMSHA256)
	s.Begin()
	s.serverNonce = rfcServerNonce
	return s
}

func saslInitialResponse(mech, data string) []byte {
	b := append([]byte(mech), 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func TestSCRAMRFC7677Vector(t *testing.T) {
	s := rfcServer(rfcCredential(t))
	reply, done, err := s.Next('p', saslInitialResponse(scramMechanism, rfcClientFirst))
	if err != nil || done {
		t.Fatalf("client-first: done=%v err=%v", done, err)
	}
	if got := string(reply.(*pgproto3.AuthenticationSASLContinue).Data); got != rfcServerFirst {
		t.Fatalf("server-first = %q, want %q", got, rfcServerFirst)
	}
	reply, done, err = s.Next('p', []byte(rfcClientFinal))
	if err != nil || !done {
		t.Fatalf("client-final: done=%v err=%v", done, err)
	}
	if got := string(reply.(*pgproto3.AuthenticationSASLFinal).Data); got != rfcServerFinal {
		t.Fatalf("server-final = %q, want %q", got, rfcServerFinal)
	}
	if _, _, err := s.Next('p', []byte(rfcClientFinal)); !errors.Is(err, ErrProtocolViolation) {
		t.Fatalf("Next after done: err=%v, want ErrProtocolViolation", err)
	}
}

// postgresVerifier was made by PostgreSQL 15 for role "app", password "app"
// (password_encryption = scram-sha-256); postgresMD5 for role "appmd5".
const (
	postgresVerifier = "SCRAM-SHA-256$4096:GG34yKRtxM0gEK/Xz00xbg==$W/JXROThF6mt0eGBqxWJZre8b6/waK+LmNDnLd9eFRA=:znlM8ZAIlUpHK04f/vVlVdvyfK12uqIkLDiD0vqwznw="
	postgresMD5      = "md5b27af67da61e61de90c73eb6eda9ec68"
)

func TestDerivationMatchesPostgres(t *testing.T) {
	pg, err := ParseSCRAMVerifier("app", postgresVerifier)
	if err != nil {
		t.Fatal(err)
	}
	ours := deriveSCRAM("app", "app", pg.salt, pg.iterations)
	if !bytes.Equal(ours.storedKey, pg.storedKey) || !bytes.Equal(ours.serverKey, pg.serverKey) {
		t.Errorf("keys derived from %q differ from Postgres's verifier", "app")
	}
	if got := md5Hash("appmd5", "app"); got != postgresMD5 {
		t.Errorf("md5Hash = %q, want %q", got, postgresMD5)
	}
}

func TestSCRAMMalformed(t *testing.T) {
	first := func(data string) []byte { return saslInitialResponse(scramMechanism, data) }
	lengthSays := func(n uint32) []byte {
		b := saslInitialResponse(scramMechanism, rfcClientFirst)
		binary.BigEndian.PutUint32(b[len(scramMechanism)+1:], n)
		return b
	}
	final := "c=biws,r=rOprNGfwEbeRWgbNEkqO" + rfcServerNonce
	proof := ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	tests := []struct {
		name    string
		typ     byte
		first   []byte
		final   string // used when first succeeds
		wantErr error
	}{
		{"empty body", 'p', nil, "", ErrProtocolViolation},
		{"wrong message type", 'Q', first(rfcClientFirst), "", ErrProtocolViolation},
		{"no mechanism terminator", 'p', []byte(scramMechanism), "", ErrProtocolViolation},
		{"unknown mechanism", 'p', saslInitialResponse("SCRAM-SHA-1", rfcClientFirst), "", ErrProtocolViolation},
		{"PLUS not offered", 'p', saslInitialResponse("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"), "", ErrProtocolViolation},
		{"short length", 'p', append([]byte(scramMechanism), 0, 0, 0), "", ErrProtocolViolation},
		{"length too long", 'p', lengthSays(1000), "", ErrProtocolViolation},
		{"length -1", 'p', lengthSays(0xFFFFFFFF), "", ErrProtocolViolation},
		{"empty data", 'p', first(""), "", ErrProtocolViolation},
		{"channel binding requested", 'p', first("p=tls-unique,,n=,r=abc"), "", ErrProtocolViolation},
		{"bad flag", 'p', first("x,,n=,r=abc"), "", ErrProtocolViolation},
		{"authzid", 'p', first("n,a=bob,n=,r=abc"), "", ErrProtocolViolation},
		{"mandatory extension", 'p', first("n,,m=x,n=,r=abc"), "", ErrProtocolViolation},
		{"no user", 'p', first("n,,r=abc"), "", ErrProtocolViolation},
		{"no nonce", 'p', first("n,,n="), "", ErrProtocolViolation},
		{"empty nonce", 'p', first("n,,n=,r="), "", ErrProtocolViolation},
		{"nonce not printable", 'p', first("n,,n=,r=a b"), "", ErrProtocolViolation},
		{"NUL in data", 'p', first("n,,n=,r=ab\x00c"), "", ErrProtocolViolation},
		{"bad extension", 'p', first("n,,n=,r=abc,zz"), "", ErrProtocolViolation},
		{"too long", 'p', first(string(make([]byte, MaxMessageLen))), "", ErrProtocolViolation},

		{"final: wrong cbind for n", 'p', first(rfcClientFirst), "c=eSws" + final[6:] + proof, ErrProtocolViolation},
		{"final: wrong cbind for y", 'p', first("y" + rfcClientFirst[1:]), final + proof, ErrProtocolViolation},
		{"final: no cbind", 'p', first(rfcClientFirst), final[7:] + proof, ErrProtocolViolation},
		{"final: nonce mismatch", 'p', first(rfcClientFirst), final + "x" + proof, ErrProtocolViolation},
		{"final: no proof", 'p', first(rfcClientFirst), final, ErrProtocolViolation},
		{"final: proof not last", 'p', first(rfcClientFirst), final + proof + ",x=1", ErrProtocolViolation},
		{"final: two proofs", 'p', first(rfcClientFirst), final + proof + proof, ErrProtocolViolation},
		{"final: proof not base64", 'p', first(rfcClientFirst), final + ",p=!!!", ErrProtocolViolation},
		{"final: proof too short", 'p', first(rfcClientFirst), final + ",p=AAAA", ErrProtocolViolation},
		{"final: empty", 'p', first(rfcClientFirst), "", ErrProtocolViolation},
		{"final: NUL", 'p', first(rfcClientFirst), final + proof + "\x00", ErrProtocolViolation},
		{"final: wrong proof", 'p', first(rfcClientFirst), final + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), ErrAuthenticationFailed},
		{"final: extension accepted, proof then fails", 'p', first(rfcClientFirst), final + ",x=1" + proof, ErrAuthenticationFailed},
	}
	cred := rfcCredential(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rfcServer(cred)
			_, done, err := s.Next(tt.typ, tt.first)
			if err == nil {
				_, done, err = s.Next('p', []byte(tt.final))
			}
			if done || !errors.Is(err, tt.wantErr) {
				t.Fatalf("done=%v err=%v, want %v", done, err, tt.wantErr)
			}
			if _, _, err := s.Next('p', []byte(rfcClientFinal)); !errors.Is(err, ErrProtocolViolation) {
				t.Fatalf("Next after failure: err=%v, want ErrProtocolViolation", err)
			}
		})
	}
}

func TestSCRAMYFlag(t *testing.T) {
	// Same exchange as the RFC, but the client says "y,,": the proof covers
	// c=eSws, so compute it from the known password.
	cred := rfcCredential(t)
	s := rfcServer(cred)
	if _, _, err := s.Next('p', saslInitialResponse(scramMechanism, "y"+rfcClientFirst[1:])); err != nil {
		t.Fatal(err)
	}
	withoutProof := "c=eSws,r=rOprNGfwEbeRWgbNEkqO" + rfcServerNonce
	auth := rfcClientFirst[3:] + "," + rfcServerFirst + "," + withoutProof
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	clientKey := hmacSHA256(saltedPassword("pencil", salt, 4096), "Client Key")
	proof := hmacSHA256(cred.storedKey, auth)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	_, done, err := s.Next('p', []byte(withoutProof+",p="+base64.StdEncoding.EncodeToString(proof)))
	if err != nil || !done {
		t.Fatalf("done=%v err=%v", done, err)
	}
}

func TestDecoyNeverVerifies(t *testing.T) {
	// Even a proof computed from the decoy's own keys fails.
	cred := NewDecoyCredential("user", []byte("0123456789abcdef"))
	s := rfcServer(cred)
	if _, _, err := s.Next('p', saslInitialResponse(scramMechanism, rfcClientFirst)); err != nil {
		t.Fatal(err)
	}
	_, done, err := s.Next('p', []byte(rfcClientFinal))
	if done || !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("done=%v err=%v, want ErrAuthenticationFailed", done, err)
	}
	again := NewDecoyCredential("user", []byte("0123456789abcdef"))
	if !bytes.Equal(cred.salt, again.salt) {
		t.Error("decoy salt is not stable for the same user and key")
	}
	if other := NewDecoyCredential("other", []byte("0123456789abcdef")); bytes.Equal(cred.salt, other.salt) {
		t.Error("decoy salt does not depend on the user")
	}
}

func TestSASLPrep(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pencil", "pencil"},
		{"I\u00ADX", "IX"},                           // soft hyphen mapped to nothing
		{"user", "user"},                             // ASCII unchanged
		{"\u00AA", "a"},                              // NFKC
		{"\u2168", "IX"},                             // NFKC
		{"a\u00A0b", "a b"},                          // non-ASCII space
		{"\u0007\u00e9", "\u0007\u00e9"},             // prohibited: raw
		{"\u0627\u0031", "\u0627\u0031"},             // bidi violation: raw
		{"\u0627\u0031\u0628", "\u0627\u0031\u0628"}, // valid RandAL
		{"\xff\xfe", "\xff\xfe"},                     // not UTF-8: raw
		{"e\u0301", "\u00e9"},                        // composed
	}
	for _, tt := range tests {
		if got := saslPrep(tt.in); got != tt.want {
			t.Errorf("saslPrep(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSCRAM feeds arbitrary client-first and client-final bodies to a
// Server holding the RFC 7677 credential; seeds are the RFC exchange and
// variants. It checks that nothing panics and every error is classified.
func FuzzSCRAM(f *testing.F) {
	f.Add(saslInitialResponse(scramMechanism, rfcClientFirst), []byte(rfcClientFinal))
	f.Add(saslInitialResponse(scramMechanism, "y,,n=*,r=rOprNGfwEbeRWgbNEkqO"), []byte("c=eSws,r=rOprNGfwEbeRWgbNEkqO"+rfcServerNonce+",p=AAAA"))
	f.Add(saslInitialResponse(scramMechanism, "n,,n=,r=rOprNGfwEbeRWgbNEkqO,e=x"), []byte(rfcClientFinal))
	f.Add(saslInitialResponse("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=x"), []byte{})
	f.Add([]byte("SCRAM-SHA-256\x00\xff\xff\xff\xff"), []byte("c=biws"))
	f.Add([]byte{}, []byte{})
	cred := rfcCredential(f)
	f.Fuzz(func(t *testing.T, first, final []byte) {
		s := rfcServer(cred)
		reply, done, err := s.Next('p', first)
		checkStep(t, reply, done, err, false)
		if err != nil {
			return
		}
		reply, done, err = s.Next('p', final)
		checkStep(t, reply, done, err, true)
	})
}

// FuzzMD5 feeds arbitrary PasswordMessage bodies to an md5 exchange.
func FuzzMD5(f *testing.F) {
	f.Add([]byte("md5" + "0123456789abcdef0123456789abcdef\x00"))
	f.Add([]byte("\x00"))
	f.Add([]byte("x"))
	f.Add([]byte{})
	cred, err := ParseMD5Hash("appmd5", postgresMD5)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := NewServer(cred, MD5)
		s.Begin()
		reply, done, err := s.Next('p', body)
		if reply != nil || (err == nil) != done {
			t.Fatalf("reply=%v done=%v err=%v", reply, done, err)
		}
		if err != nil && !errors.Is(err, ErrProtocolViolation) && !errors.Is(err, ErrAuthenticationFailed) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

// FuzzParseVerifier checks that parsing configured SCRAM verifiers and md5
// hashes never panics and classifies its errors.
func FuzzParseVerifier(f *testing.F) {
	f.Add(postgresVerifier)
	f.Add(postgresMD5)
	f.Add("SCRAM-SHA-256$1:AA==$:")
	f.Add("md5ZZ")
	f.Fuzz(func(t *testing.T, secret string) {
		for _, parse := range []func(string, string) (*Credential, error){ParseSCRAMVerifier, ParseMD5Hash} {
			c, err := parse("u", secret)
			if (err == nil) == (c == nil) || err != nil && !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("cred=%v err=%v", c, err)
			}
		}
	})
}

func checkStep(t *testing.T, reply pgproto3.BackendMessage, done bool, err error, final bool) {
	t.Helper()
	switch {
	case err != nil:
		if reply != nil || done {
			t.Fatalf("error with reply=%v done=%v", reply, done)
		}
		if !errors.Is(err, ErrProtocolViolation) && !errors.Is(err, ErrAuthenticationFailed) {
			t.Fatalf("unclassified error %v", err)
		}
	case final:
		if _, ok := reply.(*pgproto3.AuthenticationSASLFinal); !ok || !done {
			t.Fatalf("final step: reply=%T done=%v", reply, done)
		}
	default:
		if _, ok := reply.(*pgproto3.AuthenticationSASLContinue); !ok || done {
			t.Fatalf("first step: reply=%T done=%v", reply, done)
		}
	}
}
