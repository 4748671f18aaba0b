package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/proxy/auth"
	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
)

// Startup packet codes.
const (
	protocolVersion30 = 3 << 16
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
	maxStartupPacket  = 10000
)

// Client buffer sizes. Buffers come from node-wide pools and are held only while a client has
// data in flight, so an idle client holds none.
const (
	clientReadBuffer  = 8 << 10
	clientWriteBuffer = 16 << 10
)

// serveConn runs one client connection from its first byte to its close.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	cfg := s.config()
	_ = nc.SetDeadline(time.Now().Add(cfg.ClientLoginTimeout.D()))
	in := wire.NewPooledReader(nc, s.readBuffers, cfg.MaxMessageSize)
	out := wire.NewWriter(nc, s.writeBuffers)
	startup, nc, in, out, err := s.negotiate(nc, in, out)
	if err != nil {
		if !errors.Is(err, errHandled) {
			s.log.Debug("client startup failed", zap.Stringer("client", nc.RemoteAddr()), zap.Error(err))
		}
		return
	}
	if n := s.clients.Add(1); n > int64(cfg.MaxClientConn) {
		s.clients.Add(-1)
		s.metrics.logins.WithLabelValues("too_many_clients").Inc()
		s.rejectLogin(out, fatalError(codeTooManyConnections, fmt.Sprintf("too many client connections (max_client_conn %d)", cfg.MaxClientConn)))
		return
	}
	defer s.clients.Add(-1)
	if isConsoleLogin(startup.Parameters) { // the virtual admin database, never a backend's
		s.serveConsole(ctx, nc, in, out, startup)
		return
	}
	sess, err := s.login(ctx, nc, in, out, startup)
	if err != nil {
		s.log.Info("client login refused", zap.Stringer("client", nc.RemoteAddr()), zap.Error(err))
		return
	}
	_ = nc.SetDeadline(time.Time{})
	s.metrics.clientsActive.Inc()
	s.track(sess, true)
	s.cancels.add(sess)
	err = sess.run()
	s.cancels.remove(sess)
	s.track(sess, false)
	s.metrics.clientsActive.Dec()
	if err != nil {
		sess.logger().Info("client session ended", zap.Error(err))
	}
}

// errHandled means the connection was already answered (a cancel, or an error sent).
var errHandled = errors.New("handled")

// negotiate reads startup packets until a StartupMessage: it answers SSLRequest (upgrading to
// TLS when configured) and GSSENCRequest, and serves CancelRequest.
func (s *Server) negotiate(nc net.Conn, in *wire.Reader, out *wire.Writer) (*pgproto3.StartupMessage, net.Conn, *wire.Reader, *wire.Writer, error) {
	tlsDone := false
	for {
		payload, err := in.ReadStartup(maxStartupPacket)
		if err != nil {
			return nil, nc, in, out, fmt.Errorf("read startup packet: %w", err)
		}
		code := binary.BigEndian.Uint32(payload)
		switch {
		case code == sslRequestCode && len(payload) == 4:
			if in.Buffered() > 0 { // data after SSLRequest would bypass TLS
				return nil, nc, in, out, s.startupError(out, fatalError(codeProtocolViolation, "unexpected data after SSLRequest"))
			}
			if s.tlsConfig == nil || tlsDone {
				if _, err := nc.Write([]byte{'N'}); err != nil {
					return nil, nc, in, out, err
				}
				continue
			}
			if _, err := nc.Write([]byte{'S'}); err != nil {
				return nil, nc, in, out, err
			}
			tc := tls.Server(nc, s.tlsConfig)
			if err := tc.Handshake(); err != nil {
				return nil, nc, in, out, fmt.Errorf("TLS handshake: %w", err)
			}
			nc, tlsDone = tc, true
			cfg := s.config()
			in = wire.NewPooledReader(nc, s.readBuffers, cfg.MaxMessageSize)
			out = wire.NewWriter(nc, s.writeBuffers)
		case code == gssEncRequestCode && len(payload) == 4:
			if _, err := nc.Write([]byte{'N'}); err != nil {
				return nil, nc, in, out, err
			}
		case code == cancelRequestCode:
			var req pgproto3.CancelRequest
			if err := req.Decode(payload); err != nil {
				return nil, nc, in, out, fmt.Errorf("decode CancelRequest: %w", err)
			}
			s.handleCancel(req.ProcessID, req.SecretKey)
			return nil, nc, in, out, errHandled
		case code>>16 == 3:
			var msg pgproto3.StartupMessage
			if err := msg.Decode(payload); err != nil {
				// Unsupported minor versions are negotiated down below; other faults are fatal.
				if code&0xffff == 0 {
					return nil, nc, in, out, s.startupError(out, fatalError(codeProtocolViolation, "invalid startup packet"))
				}
				msg.ProtocolVersion = code
				if err := decodeStartupParams(&msg, payload[4:]); err != nil {
					return nil, nc, in, out, s.startupError(out, fatalError(codeProtocolViolation, "invalid startup packet"))
				}
			}
			return &msg, nc, in, out, nil
		default:
			return nil, nc, in, out, s.startupError(out, fatalError(codeProtocolViolation,
				fmt.Sprintf("unsupported frontend protocol %d.%d: this proxy speaks 3.0", code>>16, code&0xffff)))
		}
	}
}

// decodeStartupParams reads name/value pairs of a StartupMessage whose version pgproto3 refuses.
func decodeStartupParams(msg *pgproto3.StartupMessage, b []byte) error {
	msg.Parameters = map[string]string{}
	for len(b) > 1 {
		k, rest, ok := wire.CString(b)
		if !ok {
			return errors.New("unterminated parameter name")
		}
		v, rest2, ok := wire.CString(rest)
		if !ok {
			return errors.New("unterminated parameter value")
		}
		msg.Parameters[string(k)] = string(v)
		b = rest2
	}
	return nil
}

func (s *Server) startupError(out *wire.Writer, ce *clientError) error {
	s.rejectLogin(out, ce)
	return errHandled
}

func (s *Server) rejectLogin(out *wire.Writer, ce *clientError) {
	s.metrics.errors.WithLabelValues(ce.code, "proxy").Inc()
	_, _ = out.Write(appendErrorResponse(nil, ce))
	_ = out.Flush()
}

// login authenticates the client, checks its database, greets it and returns its session.
func (s *Server) login(ctx context.Context, nc net.Conn, in *wire.Reader, out *wire.Writer, startup *pgproto3.StartupMessage) (*session, error) {
	cfg := s.config()
	params := startup.Parameters
	userName := params["user"]
	if userName == "" {
		return nil, s.refuseLogin(out, "bad_startup", fatalError(codeProtocolViolation, "no user name in the startup packet"))
	}
	if params["replication"] != "" && params["replication"] != "false" && params["replication"] != "0" {
		return nil, s.refuseLogin(out, "bad_startup", fatalError(codeProtocolViolation, "replication connections are not supported by the proxy").
			withHint("connect replication clients to the database server directly"))
	}
	dbName := params["database"]
	if dbName == "" {
		dbName = userName
	}
	var unsupported []string
	for k := range params {
		if strings.HasPrefix(k, "_pq_.") {
			unsupported = append(unsupported, k)
		}
	}
	if startup.ProtocolVersion != protocolVersion30 || len(unsupported) > 0 {
		msg := pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unsupported}
		buf, _ := msg.Encode(nil)
		_, _ = out.Write(buf)
	}

	if err := s.authenticate(nc, in, out, userName); err != nil {
		return nil, err
	}
	user, known := cfg.User(userName)
	if !known { // authenticate fails for unknown users; this guards a reload in between
		return nil, s.refuseLogin(out, "auth_failed", fatalError(codeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", userName)))
	}
	db, ok := cfg.Database(dbName)
	if !ok {
		return nil, s.refuseLogin(out, "unknown_database", fatalError(codeInvalidCatalogName, fmt.Sprintf("database %q does not exist", dbName)).
			withHint("the proxy serves only the databases in its configuration"))
	}
	if err := s.waitPausedLogin(ctx, nc, db.Name); err != nil {
		return nil, s.refuseLogin(out, "paused", asClientError(err))
	}
	cur := s.topo.store.Current()
	entry, err := s.poolFor(s.topo.health.Writer(cur.Groups[cur.DefaultGroup].Name), db, user)
	if err != nil {
		return nil, s.refuseLogin(out, "internal", asClientError(err))
	}
	changes, err := startupChanges(params)
	if err != nil {
		return nil, s.refuseLogin(out, "bad_startup", fatalError(codeProtocolViolation, err.Error()))
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.ClientLoginTimeout.D())
	welcome, err := entry.welcome(wctx)
	cancel()
	if err != nil {
		return nil, s.refuseLogin(out, "backend_unavailable", fatalError(codeCannotConnect, "cannot connect to the database server").
			withHint("the backend is unreachable or refused the proxy's login; retry later").withCause(err))
	}

	startupSettings, _ := emptySettings.with(changes, emptySettings)
	sess := &session{
		srv:        s,
		ctx:        ctx,
		conn:       nc,
		in:         in,
		out:        out,
		user:       userName,
		db:         db,
		userCfg:    user,
		mode:       cfg.ModeFor(db, user),
		pool:       entry,
		statements: make(map[string]*statement),
		startup:    startupSettings,
		settings:   startupSettings,
		txStatus:   'I',
	}
	sess.writingDone = sync.NewCond(&sess.mu)
	sess.key = s.cancels.newKey(s.nodeTag)
	sess.log = s.log
	sess.logFields = []zap.Field{zap.String("user", userName), zap.String("database", dbName),
		zap.Stringer("client", nc.RemoteAddr()), zap.Uint32("client_pid", sess.key.pid)}

	buf, _ := (&pgproto3.AuthenticationOk{}).Encode(nil)
	for k, v := range greetingParams(welcome, params) {
		buf, _ = (&pgproto3.ParameterStatus{Name: k, Value: v}).Encode(buf)
	}
	buf, _ = (&pgproto3.BackendKeyData{ProcessID: sess.key.pid, SecretKey: sess.key.secret[:]}).Encode(buf)
	buf = append(buf, readyForQueryFrame('I')...)
	if _, err := out.Write(buf); err != nil {
		return nil, err
	}
	if err := out.Flush(); err != nil {
		return nil, err
	}
	s.metrics.logins.WithLabelValues("ok").Inc()
	sess.logger().Debug("client logged in", zap.String("pool_mode", string(sess.mode)))
	return sess, nil
}

func (s *Server) refuseLogin(out *wire.Writer, result string, ce *clientError) error {
	s.metrics.logins.WithLabelValues(result).Inc()
	s.rejectLogin(out, ce)
	return ce
}

// authenticate runs the password exchange. Unknown users go through the same exchange with a
// decoy credential and fail at the proof, like a wrong password.
func (s *Server) authenticate(nc net.Conn, in *wire.Reader, out *wire.Writer, user string) error {
	cfg := s.config()
	cred := (*s.creds.Load())[user]
	if cred == nil {
		cred = auth.NewDecoyCredential(user, s.decoyKey)
	}
	method := auth.SCRAMSHA256
	if cfg.AuthType == "md5" {
		method = auth.MD5
	}
	ex := auth.NewServer(cred, method)
	reply := ex.Begin()
	for {
		if reply != nil {
			buf, err := reply.Encode(nil)
			if err != nil {
				return fmt.Errorf("encode auth message: %w", err)
			}
			if _, err := out.Write(buf); err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return err
			}
		}
		f, err := in.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("client left during authentication: %w", err)
			}
			return s.refuseLogin(out, "bad_auth_message", fatalError(codeProtocolViolation, "invalid authentication message").withCause(err))
		}
		var done bool
		reply, done, err = ex.Next(f.Type(), f.Body())
		switch {
		case errors.Is(err, auth.ErrAuthenticationFailed):
			return s.refuseLogin(out, "auth_failed", fatalError(codeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", user)))
		case err != nil:
			return s.refuseLogin(out, "bad_auth_message", fatalError(codeProtocolViolation, "invalid authentication message").withCause(err))
		case done:
			if reply != nil {
				buf, _ := reply.Encode(nil)
				_, _ = out.Write(buf)
			}
			return nil
		}
	}
}

// startupChanges turns the client's startup parameters into session settings.
func startupChanges(params map[string]string) ([]router.SettingChange, error) {
	var changes []router.SettingChange
	add := func(name, value string) {
		lname := strings.ToLower(name)
		changes = append(changes, router.SettingChange{
			Kind: router.ChangeSet, Name: lname, SetSQL: router.SetStatement(name, value), ResetSQL: "RESET " + quoteIdent(name),
		})
	}
	for k, v := range params {
		switch k {
		case "user", "database", "replication", "options":
			continue
		}
		if strings.HasPrefix(k, "_pq_.") {
			continue
		}
		add(k, v)
	}
	if opts := params["options"]; opts != "" {
		m, err := router.ParseOptions(opts)
		if err != nil {
			return nil, fmt.Errorf("invalid options startup parameter: %w", err)
		}
		for k, v := range m {
			add(k, v)
		}
	}
	return changes, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// greetingParams is the ParameterStatus set sent at login: the backend's, with the client's own
// startup values for the parameters it set.
func greetingParams(server, client map[string]string) map[string]string {
	out := make(map[string]string, len(server))
	for k, v := range server {
		out[k] = v
	}
	for k, v := range client {
		for sk := range server {
			if strings.EqualFold(sk, k) {
				out[sk] = v
			}
		}
	}
	return out
}
