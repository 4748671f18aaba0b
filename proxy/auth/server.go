package auth

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// MaxMessageLen is the largest client authentication message body, in
// bytes, that a Server accepts (Postgres's PG_MAX_AUTH_TOKEN_LENGTH). The
// caller should refuse longer frames before reading them.
const MaxMessageLen = 65535

// passwordMessageType is the type byte shared by PasswordMessage,
// SASLInitialResponse and SASLResponse.
const passwordMessageType = 'p'

type state int

const (
	stateNew       state = iota // Begin not called yet
	stateWantMD5                // sent AuthenticationMD5Password
	stateWantFirst              // sent AuthenticationSASL
	stateWantFinal              // sent AuthenticationSASLContinue
	stateDone                   // succeeded or failed; no more messages
)

// Server runs one authentication exchange with one client, from the proxy's
// side. It performs no I/O: the caller sends what Begin and Next return and
// feeds Next the client's frames. A Server is not safe for concurrent use
// and cannot be reused.
type Server struct {
	cred   *Credential
	method Method
	state  state

	md5Salt [4]byte

	// SCRAM exchange state, set by the client-first message.
	cbindFlag       byte   // 'n' or 'y' from the gs2 header
	clientFirstBare string // client-first-message-bare
	serverFirst     string // server-first-message
	nonce           string // client nonce + server nonce
	serverNonce     string // preset only by tests; random otherwise
}

// NewServer returns a Server that authenticates cred's user with method,
// which must be SCRAMSHA256 or MD5 (NewServer panics otherwise). As in
// Postgres, asking for MD5 with a SCRAM-only credential runs SCRAM instead,
// and asking for SCRAM with an md5-only credential runs a SCRAM exchange
// that always fails authentication. cred must not be nil; for an unknown
// user pass a NewDecoyCredential.
func NewServer(cred *Credential, method Method) *Server {
	switch method {
	case SCRAMSHA256:
		if !cred.Supports(SCRAMSHA256) {
			cred = cred.withDecoySCRAM()
		}
	case MD5:
		if !cred.Supports(MD5) {
			method = SCRAMSHA256
		}
	default:
		panic(fmt.Sprintf("auth: NewServer: invalid method %d", method))
	}
	return &Server{cred: cred, method: method}
}

// Method returns the method the exchange uses, which may differ from the one
// asked of NewServer (see there).
func (s *Server) Method() Method { return s.method }

// Begin returns the first message to send to the client, right after its
// StartupMessage: AuthenticationSASL offering "SCRAM-SHA-256", or
// AuthenticationMD5Password with a fresh random salt. Call it exactly once,
// before Next.
func (s *Server) Begin() pgproto3.BackendMessage {
	if s.state != stateNew {
		panic("auth: Server.Begin called twice")
	}
	if s.method == MD5 {
		s.state = stateWantMD5
		randRead(s.md5Salt[:])
		return &pgproto3.AuthenticationMD5Password{Salt: s.md5Salt}
	}
	s.state = stateWantFirst
	return &pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}
}

// Next consumes one client message, given as its type byte and its body
// (without the type byte and length). Next does not keep body after it
// returns.
//
// When err is nil and done is false, the caller sends reply and waits for
// the client's next message. When done is true the client is authenticated:
// the caller sends reply if it is not nil (AuthenticationSASLFinal for
// SCRAM; nil for md5) and then AuthenticationOk. When err is not nil the
// exchange has failed, reply is nil, and err wraps ErrAuthenticationFailed
// or ErrProtocolViolation; the caller sends the matching ErrorResponse and
// closes the connection. Calls after done or an error return an error
// wrapping ErrProtocolViolation; calling Next before Begin is a programming
// error and returns an unclassified error.
func (s *Server) Next(msgType byte, body []byte) (reply pgproto3.BackendMessage, done bool, err error) {
	if s.state == stateNew {
		return nil, false, errors.New("auth: Server.Next called before Begin")
	}
	st := s.state
	s.state = stateDone // until a step succeeds and says otherwise
	if st == stateDone {
		return nil, false, protocolErrorf("authentication exchange already finished")
	}
	if msgType != passwordMessageType {
		return nil, false, protocolErrorf("expected password response, got message type %q", msgType)
	}
	if len(body) > MaxMessageLen {
		return nil, false, protocolErrorf("authentication message of %d bytes is too long", len(body))
	}
	switch st {
	case stateWantMD5:
		err = s.handlePasswordMessage(body)
		return nil, err == nil, err
	case stateWantFirst:
		reply, err = s.handleSASLInitialResponse(body)
		if err == nil {
			s.state = stateWantFinal
		}
		return reply, false, err
	default: // stateWantFinal
		reply, err = s.handleSASLResponse(body)
		return reply, err == nil, err
	}
}

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocolViolation, fmt.Sprintf(format, args...))
}

func authFailedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAuthenticationFailed, fmt.Sprintf(format, args...))
}
