package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	scramMechanism   = "SCRAM-SHA-256"
	serverNonceBytes = 18
)

// handleSASLInitialResponse reads SASLInitialResponse (mechanism name,
// int32 length, client-first-message) and returns server-first-message.
func (s *Server) handleSASLInitialResponse(body []byte) (pgproto3.BackendMessage, error) {
	nul := bytes.IndexByte(body, 0)
	if nul < 0 {
		return nil, protocolErrorf("malformed SASLInitialResponse: no mechanism name")
	}
	if mech := string(body[:nul]); mech != scramMechanism {
		return nil, protocolErrorf("client selected an invalid SASL authentication mechanism %q", mech)
	}
	rest := body[nul+1:]
	if len(rest) < 4 {
		return nil, protocolErrorf("malformed SASLInitialResponse: no data length")
	}
	n := int32(binary.BigEndian.Uint32(rest))
	data := rest[4:]
	if n < 0 || int(n) != len(data) {
		return nil, protocolErrorf("malformed SASLInitialResponse: data length %d, have %d bytes", n, len(data))
	}
	if err := s.readClientFirst(string(data)); err != nil {
		return nil, err
	}

	if s.serverNonce == "" {
		var b [serverNonceBytes]byte
		randRead(b[:])
		s.serverNonce = base64.StdEncoding.EncodeToString(b[:])
	}
	s.nonce += s.serverNonce
	s.serverFirst = "r=" + s.nonce +
		",s=" + base64.StdEncoding.EncodeToString(s.cred.salt) +
		",i=" + strconv.Itoa(s.cred.iterations)
	return &pgproto3.AuthenticationSASLContinue{Data: []byte(s.serverFirst)}, nil
}

// readClientFirst parses
//
//	gs2-header client-first-message-bare
//	gs2-header = ("n" / "y") "," [authzid] ","
//	client-first-message-bare = [reserved-mext ","] "n=" saslname "," "r=" nonce ["," extensions]
//
// and records the flag, the bare message and the client nonce. Like
// Postgres it ignores the user name (the startup user counts) and rejects
// authzid and mandatory extensions.
func (s *Server) readClientFirst(msg string) error {
	if strings.IndexByte(msg, 0) >= 0 {
		return protocolErrorf("malformed SCRAM message: NUL byte")
	}
	if len(msg) < 2 {
		return protocolErrorf("malformed SCRAM message: too short")
	}
	switch msg[0] {
	case 'n', 'y':
		// 'y' means the client supports channel binding but thinks we do
		// not; we never offer SCRAM-SHA-256-PLUS, so it is right.
	case 'p':
		return protocolErrorf("client requested SCRAM channel binding, which was not offered")
	default:
		return protocolErrorf("malformed SCRAM message: unexpected channel-binding flag %q", msg[0])
	}
	if msg[1] != ',' {
		return protocolErrorf("malformed SCRAM message: comma expected after channel-binding flag")
	}
	authzid, bare, ok := strings.Cut(msg[2:], ",")
	if !ok {
		return protocolErrorf("malformed SCRAM message: incomplete gs2 header")
	}
	if authzid != "" {
		return protocolErrorf("client uses SCRAM authorization identity, which is not supported")
	}

	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return protocolErrorf("client requires an unsupported SCRAM extension")
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") {
		return protocolErrorf("malformed SCRAM message: user name expected")
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || nonce == "" {
		return protocolErrorf("malformed SCRAM message: nonce expected")
	}
	if !printable(nonce) {
		return protocolErrorf("malformed SCRAM message: nonce is not printable")
	}
	for _, a := range attrs[2:] {
		if !isAttr(a) {
			return protocolErrorf("malformed SCRAM message: invalid extension")
		}
	}

	s.cbindFlag = msg[0]
	s.clientFirstBare = bare
	s.nonce = nonce
	return nil
}

// handleSASLResponse reads client-final-message
//
//	"c=" base64(gs2-header) "," "r=" nonce ["," extensions] "," "p=" proof
//
// verifies the proof and returns server-final-message.
func (s *Server) handleSASLResponse(body []byte) (pgproto3.BackendMessage, error) {
	msg := string(body)
	if strings.IndexByte(msg, 0) >= 0 {
		return nil, protocolErrorf("malformed SCRAM message: NUL byte")
	}
	attrs := strings.Split(msg, ",")
	if len(attrs) < 3 {
		return nil, protocolErrorf("malformed SCRAM message: too few attributes")
	}
	cbind, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return nil, protocolErrorf("malformed SCRAM message: channel binding expected")
	}
	// Without channel binding the data is the gs2 header itself, and it must
	// carry the flag of the client-first message.
	if !(cbind == "biws" && s.cbindFlag == 'n') && !(cbind == "eSws" && s.cbindFlag == 'y') {
		return nil, protocolErrorf("SCRAM channel binding check failed")
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok {
		return nil, protocolErrorf("malformed SCRAM message: nonce expected")
	}
	if nonce != s.nonce {
		return nil, protocolErrorf("invalid SCRAM response: nonce does not match")
	}
	last := len(attrs) - 1
	for _, a := range attrs[2:last] {
		if !isAttr(a) || a[0] == 'p' {
			return nil, protocolErrorf("malformed SCRAM message: invalid extension")
		}
	}
	proofText, ok := strings.CutPrefix(attrs[last], "p=")
	if !ok {
		return nil, protocolErrorf("malformed SCRAM message: proof expected last")
	}
	proof, err := base64.StdEncoding.DecodeString(proofText)
	if err != nil || len(proof) != scramKeyLen {
		return nil, protocolErrorf("malformed SCRAM message: invalid proof")
	}

	withoutProof := msg[:len(msg)-len(attrs[last])-1]
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	if !verifyClientProof(s.cred.storedKey, authMessage, proof) || s.cred.decoy {
		return nil, authFailedf("SCRAM proof does not match for user %q", s.cred.user)
	}
	sig := hmacSHA256(s.cred.serverKey, authMessage)
	return &pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(sig))}, nil
}

// verifyClientProof reports whether H(proof XOR HMAC(StoredKey, AuthMessage))
// equals StoredKey, in constant time.
func verifyClientProof(storedKey []byte, authMessage string, proof []byte) bool {
	clientKey := hmacSHA256(storedKey, authMessage) // ClientSignature
	subtle.XORBytes(clientKey, clientKey, proof)
	got := sha256.Sum256(clientKey)
	return hmac.Equal(got[:], storedKey)
}

// printable reports whether s uses only the characters RFC 5802 allows in a
// nonce: %x21-2B / %x2D-7E.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7E || c == ',' {
			return false
		}
	}
	return true
}

// isAttr reports whether a is "<letter>=...".
func isAttr(a string) bool {
	return len(a) >= 2 && a[1] == '=' && ('a' <= a[0] && a[0] <= 'z' || 'A' <= a[0] && a[0] <= 'Z')
}
