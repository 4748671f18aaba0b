package auth_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"

	"github.com/shardwire/shardwire/proxy/auth"
)

// Made by PostgreSQL 15 for password "app": role "app" with
// password_encryption = scram-sha-256, role "appmd5" with md5.
const (
	postgresVerifier = "SCRAM-SHA-256$4096:GG34yKRtxM0gEK/Xz00xbg==$W/JXROThF6mt0eGBqxWJZre8b6/waK+LmNDnLd9eFRA=:znlM8ZAIlUpHK04f/vVlVdvyfK12uqIkLDiD0vqwznw="
	postgresMD5      = "md5b27af67da61e61de90c73eb6eda9ec68"
)

// users is the test server's user table.
type users struct {
	creds    map[string]*auth.Credential
	decoyKey []byte
}

func newUsers(t *testing.T) *users {
	t.Helper()
	u := &users{creds: map[string]*auth.Credential{}, decoyKey: []byte("test decoy key, 16+ bytes")}
	add := func(c *auth.Credential, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		u.creds[c.User()] = c
	}
	add(auth.NewPlainCredential("alice", "s3cret"))
	add(auth.NewPlainCredential("zoë", "pässwörd"))
	add(auth.ParseSCRAMVerifier("app", postgresVerifier))
	add(auth.ParseMD5Hash("appmd5", postgresMD5))
	add(auth.ParseSecret("bob", "hunter2"))
	return u
}

func (u *users) lookup(user string) *auth.Credential {
	if c, ok := u.creds[user]; ok {
		return c
	}
	return auth.NewDecoyCredential(user, u.decoyKey)
}

// serveStartup plays a Postgres server up to ReadyForQuery on conn: it reads
// the StartupMessage, authenticates with method, and then waits for the
// client's Terminate. It returns the authentication error, if any.
func serveStartup(conn net.Conn, u *users, method auth.Method) error {
	defer conn.Close()
	startup, err := readStartup(conn)
	if err != nil {
		return err
	}
	user := startup.Parameters["user"]
	s := auth.NewServer(u.lookup(user), method)
	if err := send(conn, s.Begin()); err != nil {
		return err
	}
	for {
		typ, body, err := readFrame(conn)
		if err != nil {
			return err
		}
		reply, done, err := s.Next(typ, body)
		if err != nil {
			// The proxy's one translation to SQLSTATE, in miniature.
			e := &pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: "invalid authentication message"}
			if errors.Is(err, auth.ErrAuthenticationFailed) {
				e.Code, e.Message = "28P01", fmt.Sprintf("password authentication failed for user %q", user)
			}
			send(conn, e)
			return err
		}
		if reply != nil {
			if err := send(conn, reply); err != nil {
				return err
			}
		}
		if done {
			break
		}
	}
	err = send(conn,
		&pgproto3.AuthenticationOk{},
		&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"},
		&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"},
		&pgproto3.ParameterStatus{Name: "DateStyle", Value: "ISO, MDY"},
		&pgproto3.ParameterStatus{Name: "integer_datetimes", Value: "on"},
		&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"},
		&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
	if err != nil {
		return err
	}
	typ, _, err := readFrame(conn)
	if err == nil && typ != 'X' {
		err = fmt.Errorf("got message %q after ReadyForQuery, want Terminate", typ)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

func readStartup(conn net.Conn) (*pgproto3.StartupMessage, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > 10000 {
		return nil, fmt.Errorf("bad startup length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	var m pgproto3.StartupMessage
	if err := m.Decode(body); err != nil {
		return nil, err
	}
	return &m, nil
}

func readFrame(conn net.Conn) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n-4 > auth.MaxMessageLen {
		return 0, nil, fmt.Errorf("bad frame length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

func send(conn net.Conn, msgs ...pgproto3.BackendMessage) error {
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	_, err := conn.Write(buf)
	return err
}

type driverCase struct {
	name     string
	method   auth.Method
	user     string
	password string
	wantCode string // "" for success
}

var driverCases = []driverCase{
	{"scram plain", auth.SCRAMSHA256, "alice", "s3cret", ""},
	{"scram plain wrong password", auth.SCRAMSHA256, "alice", "s3cre", "28P01"},
	{"scram non-ASCII password", auth.SCRAMSHA256, "zoë", "pässwörd", ""},
	{"scram postgres verifier", auth.SCRAMSHA256, "app", "app", ""},
	{"scram postgres verifier wrong password", auth.SCRAMSHA256, "app", "App", "28P01"},
	{"scram unknown user", auth.SCRAMSHA256, "mallory", "app", "28P01"},
	{"scram asked, md5-only credential", auth.SCRAMSHA256, "appmd5", "app", "28P01"},
	{"scram ParseSecret plain", auth.SCRAMSHA256, "bob", "hunter2", ""},
	{"md5 plain", auth.MD5, "alice", "s3cret", ""},
	{"md5 plain wrong password", auth.MD5, "alice", "secret", "28P01"},
	{"md5 postgres hash", auth.MD5, "appmd5", "app", ""},
	{"md5 postgres hash wrong password", auth.MD5, "appmd5", "ap", "28P01"},
	{"md5 unknown user", auth.MD5, "mallory", "app", "28P01"},
	{"md5 asked, scram-only credential upgrades", auth.MD5, "app", "app", ""},
}

func TestPgconn(t *testing.T) {
	u := newUsers(t)
	for _, tt := range driverCases {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client, server := net.Pipe()
			served := make(chan error, 1)
			go func() { served <- serveStartup(server, u, tt.method) }()

			cfg, err := pgconn.ParseConfig("host=127.0.0.1 port=5432 dbname=db sslmode=disable")
			if err != nil {
				t.Fatal(err)
			}
			cfg.User, cfg.Password = tt.user, tt.password
			dialed := false
			cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) {
				if dialed {
					return nil, errors.New("dialed twice")
				}
				dialed = true
				return client, nil
			}
			conn, err := pgconn.ConnectConfig(ctx, cfg)
			if tt.wantCode != "" {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != tt.wantCode {
					t.Fatalf("Connect err = %v, want PgError %s", err, tt.wantCode)
				}
				if err := <-served; !errors.Is(err, auth.ErrAuthenticationFailed) {
					t.Fatalf("server err = %v, want ErrAuthenticationFailed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Connect: %v (server: %v)", err, <-served)
			}
			if conn.IsClosed() || conn.ParameterStatus("server_version") != "15.0" || conn.PID() != 42 {
				t.Errorf("connection not usable after auth: closed=%v pid=%d", conn.IsClosed(), conn.PID())
			}
			conn.Close(ctx)
			if err := <-served; err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
}

// pipeDialer hands lib/pq one end of a net.Pipe.
type pipeDialer struct{ conn net.Conn }

func (d pipeDialer) Dial(string, string) (net.Conn, error) { return d.conn, nil }
func (d pipeDialer) DialTimeout(string, string, time.Duration) (net.Conn, error) {
	return d.conn, nil
}

func TestLibPQ(t *testing.T) {
	u := newUsers(t)
	for _, tt := range driverCases {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client, server := net.Pipe()
			served := make(chan error, 1)
			go func() { served <- serveStartup(server, u, tt.method) }()

			connector, err := pq.NewConnectorConfig(pq.Config{
				Host: "127.0.0.1", Port: 5432, Database: "db", SSLMode: pq.SSLModeDisable,
				User: tt.user, Password: tt.password,
			})
			if err != nil {
				t.Fatal(err)
			}
			connector.Dialer(pipeDialer{client})
			conn, err := connector.Connect(ctx)
			if tt.wantCode != "" {
				var pqErr *pq.Error
				if !errors.As(err, &pqErr) || string(pqErr.Code) != tt.wantCode {
					t.Fatalf("Connect err = %v, want pq.Error %s", err, tt.wantCode)
				}
				if err := <-served; !errors.Is(err, auth.ErrAuthenticationFailed) {
					t.Fatalf("server err = %v, want ErrAuthenticationFailed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Connect: %v (server: %v)", err, <-served)
			}
			conn.Close()
			if err := <-served; err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
}

func TestProtocolViolationFromClient(t *testing.T) {
	// A client that answers AuthenticationSASL with a PasswordMessage.
	u := newUsers(t)
	client, server := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- serveStartup(server, u, auth.SCRAMSHA256) }()
	defer client.Close()
	fe := pgproto3.NewFrontend(client, client)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "alice"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
		t.Fatalf("got %T, want AuthenticationSASL", msg)
	}
	fe.Send(&pgproto3.PasswordMessage{Password: "s3cret"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if e, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "08P01" {
		t.Fatalf("got %#v, %v; want ErrorResponse 08P01", msg, err)
	}
	if err := <-served; !errors.Is(err, auth.ErrProtocolViolation) {
		t.Fatalf("server err = %v, want ErrProtocolViolation", err)
	}
}

func TestCredentialParsing(t *testing.T) {
	tests := []struct {
		name, secret string
		ok           bool
		scram, md5   bool
	}{
		{"postgres verifier", postgresVerifier, true, true, false},
		{"postgres md5", postgresMD5, true, false, true},
		{"upper-case md5", "MD5B27AF67DA61E61DE90C73EB6EDA9EC68", true, true, true}, // not a hash: a plain password
		{"plain", "hunter2", true, true, true},
		{"empty", "", false, false, false},
		{"verifier bad iterations", "SCRAM-SHA-256$0:GG34yKRtxM0gEK/Xz00xbg==$W/JXROThF6mt0eGBqxWJZre8b6/waK+LmNDnLd9eFRA=:znlM8ZAIlUpHK04f/vVlVdvyfK12uqIkLDiD0vqwznw=", false, false, false},
		{"verifier short key", "SCRAM-SHA-256$4096:GG34yKRtxM0gEK/Xz00xbg==$AAAA:znlM8ZAIlUpHK04f/vVlVdvyfK12uqIkLDiD0vqwznw=", false, false, false},
		{"verifier no keys", "SCRAM-SHA-256$4096:GG34yKRtxM0gEK/Xz00xbg==", false, false, false},
		{"verifier bad salt", "SCRAM-SHA-256$4096:!!$W/JXROThF6mt0eGBqxWJZre8b6/waK+LmNDnLd9eFRA=:znlM8ZAIlUpHK04f/vVlVdvyfK12uqIkLDiD0vqwznw=", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := auth.ParseSecret("u", tt.secret)
			if !tt.ok {
				if !errors.Is(err, auth.ErrInvalidSecret) {
					t.Fatalf("err = %v, want ErrInvalidSecret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Supports(auth.SCRAMSHA256) != tt.scram || c.Supports(auth.MD5) != tt.md5 {
				t.Errorf("supports scram=%v md5=%v, want %v %v", c.Supports(auth.SCRAMSHA256), c.Supports(auth.MD5), tt.scram, tt.md5)
			}
		})
	}
	if _, err := auth.ParseMD5Hash("u", "md5xyz"); !errors.Is(err, auth.ErrInvalidSecret) {
		t.Errorf("ParseMD5Hash(md5xyz) err = %v", err)
	}
}
