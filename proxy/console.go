package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/proxy/wire"
)

// textOID is the type of every console column: text.
const textOID = 25

// codeInsufficientPrivilege refuses a non-admin user on the console database.
const codeInsufficientPrivilege = admin.CodeInsufficientPrivilege

// consoleGreeting are the ParameterStatus values a console session is greeted with.
var consoleGreeting = [][2]string{
	{"server_version", "16.0 (shardwire admin console)"},
	{"server_encoding", "UTF8"},
	{"client_encoding", "UTF8"},
	{"DateStyle", "ISO, MDY"},
	{"integer_datetimes", "on"},
	{"standard_conforming_strings", "on"},
	{"application_name", ""},
}

// isConsoleLogin reports whether a startup packet asks for the admin console database (the
// database parameter, or the user name when it is absent, as Postgres defaults it).
func isConsoleLogin(params map[string]string) bool {
	db := params["database"]
	if db == "" {
		db = params["user"]
	}
	return db == admin.ConsoleDatabase
}

// serveConsole runs a client of the admin console database from authentication to its
// end: admin users get the console, others an insufficient_privilege error.
func (s *Server) serveConsole(ctx context.Context, nc net.Conn, in *wire.Reader, out *wire.Writer, startup *pgproto3.StartupMessage) {
	user := startup.Parameters["user"]
	if user == "" {
		_ = s.refuseLogin(out, "bad_startup", fatalError(codeProtocolViolation, "no user name in the startup packet"))
		return
	}
	if err := s.authenticate(nc, in, out, user); err != nil {
		s.log.Info("admin console login refused", zap.Stringer("client", nc.RemoteAddr()), zap.Error(err))
		return
	}
	if !slices.Contains(s.config().AdminUsers, user) {
		err := s.refuseLogin(out, "not_admin", fatalError(codeInsufficientPrivilege,
			fmt.Sprintf("user %q may not use the admin console database %q", user, admin.ConsoleDatabase)).
			withHint("list the user in admin_users in the proxy's configuration"))
		s.log.Info("admin console login refused", zap.String("user", user), zap.Stringer("client", nc.RemoteAddr()), zap.Error(err))
		return
	}
	var key [8]byte
	_, _ = rand.Read(key[:])
	buf, _ := (&pgproto3.AuthenticationOk{}).Encode(nil)
	for _, p := range consoleGreeting {
		buf, _ = (&pgproto3.ParameterStatus{Name: p[0], Value: p[1]}).Encode(buf)
	}
	buf, _ = (&pgproto3.BackendKeyData{ProcessID: binary.BigEndian.Uint32(key[:4]), SecretKey: key[4:]}).Encode(buf)
	buf = append(buf, readyForQueryFrame('I')...)
	if _, err := out.Write(buf); err != nil {
		return
	}
	if err := out.Flush(); err != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	s.metrics.logins.WithLabelValues("ok").Inc()
	log := s.log.With(zap.String("user", user), zap.Stringer("client", nc.RemoteAddr()))
	log.Info("admin console session started")
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	cs := &consoleSession{srv: s, in: in, out: out, log: log, console: admin.NewConsole(s.consoleData())}
	if err := cs.run(ctx); err != nil {
		log.Info("admin console session ended", zap.Error(err))
	}
}

// consoleSession is one admin console client after login.
type consoleSession struct {
	srv     *Server
	in      *wire.Reader
	out     *wire.Writer
	log     *zap.Logger
	console *admin.Console
	// skipUntilSync: an extended-protocol message was refused; the rest up to Sync is dropped.
	skipUntilSync bool
}

// run is the console's message loop.
func (c *consoleSession) run(ctx context.Context) error {
	for {
		f, err := c.in.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read from admin console client: %w", err)
		}
		var buf []byte
		switch f.Type() {
		case wire.Query:
			buf = c.query(ctx, f.Body())
		case wire.Parse, wire.Bind, wire.Describe, wire.Execute, wire.Close:
			if !c.skipUntilSync {
				c.skipUntilSync = true
				buf = c.errorFrame(nil, newClientError(codeFeatureNotSupp,
					"the admin console speaks only the simple query protocol").
					withHint("send console commands as simple queries (psql does; pgx: QueryExecModeSimpleProtocol)"))
			}
		case wire.Sync:
			c.skipUntilSync = false
			buf = readyForQueryFrame('I')
		case wire.Flush:
		case wire.Terminate:
			return nil
		default:
			ce := fatalError(codeProtocolViolation, fmt.Sprintf("unexpected message type %q on the admin console", f.Type()))
			_, _ = c.out.Write(c.errorFrame(nil, ce))
			_ = c.out.Flush()
			return ce
		}
		if len(buf) == 0 {
			continue
		}
		if _, err := c.out.Write(buf); err != nil {
			return fmt.Errorf("write to admin console client: %w", err)
		}
		if c.in.Buffered() == 0 {
			if err := c.out.Flush(); err != nil {
				return fmt.Errorf("write to admin console client: %w", err)
			}
		}
	}
}

// query runs one simple Query and returns its whole answer, ReadyForQuery included.
func (c *consoleSession) query(ctx context.Context, body []byte) []byte {
	if len(body) == 0 || body[len(body)-1] != 0 {
		return append(c.errorFrame(nil, newClientError(codeProtocolViolation, "malformed Query message")), readyForQueryFrame('I')...)
	}
	sql := string(body[:len(body)-1])
	if isBlank(sql) {
		buf, _ := (&pgproto3.EmptyQueryResponse{}).Encode(nil)
		return append(buf, readyForQueryFrame('I')...)
	}
	res, err := c.console.Run(ctx, sql)
	if err != nil {
		var ce *admin.ConsoleError
		cle := newClientError(codeInternal, "admin console command failed")
		if errors.As(err, &ce) {
			cle = newClientError(ce.Code, ce.Message).withHint(ce.Hint)
		}
		c.log.Info("admin console command failed", zap.String("command", sql), zap.Error(err))
		return append(c.errorFrame(nil, cle), readyForQueryFrame('I')...)
	}
	c.log.Info("admin console command", zap.String("command", sql))
	return append(appendResult(nil, res), readyForQueryFrame('I')...)
}

// errorFrame appends ce as an ErrorResponse and counts it.
func (c *consoleSession) errorFrame(dst []byte, ce *clientError) []byte {
	c.srv.metrics.errors.WithLabelValues(ce.code, "proxy").Inc()
	return appendErrorResponse(dst, ce)
}

// appendResult encodes a console result: NoticeResponse, RowDescription and DataRows when
// it has columns, and CommandComplete.
func appendResult(dst []byte, res admin.Result) []byte {
	if res.Notice != "" {
		dst, _ = (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: res.Notice}).Encode(dst)
	}
	if res.Columns != nil {
		rd := pgproto3.RowDescription{Fields: make([]pgproto3.FieldDescription, len(res.Columns))}
		for i, name := range res.Columns {
			rd.Fields[i] = pgproto3.FieldDescription{Name: []byte(name), DataTypeOID: textOID, DataTypeSize: -1, TypeModifier: -1}
		}
		dst, _ = rd.Encode(dst)
		for _, row := range res.Rows {
			dr := pgproto3.DataRow{Values: make([][]byte, len(row))}
			for i, v := range row {
				if v != nil {
					dr.Values[i] = []byte(*v)
				}
			}
			dst, _ = dr.Encode(dst)
		}
	}
	return append(dst, commandCompleteFrame(res.Tag)...)
}

// isBlank reports whether sql holds only white space and semicolons.
func isBlank(sql string) bool {
	for _, r := range sql {
		switch r {
		case ' ', '\t', '\n', '\r', '\f', ';':
		default:
			return false
		}
	}
	return true
}
