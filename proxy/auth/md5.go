package auth

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
)

// handlePasswordMessage checks a PasswordMessage body against
// "md5" + hex(md5(hex(md5(password+user)) + salt)).
func (s *Server) handlePasswordMessage(body []byte) error {
	end := bytes.IndexByte(body, 0)
	if end < 0 || end != len(body)-1 {
		return protocolErrorf("malformed PasswordMessage")
	}
	got := body[:end]
	if len(got) == 0 {
		return authFailedf("empty password for user %q", s.cred.user)
	}
	inner := s.cred.md5Hash[len(md5Prefix):]
	sum := md5.Sum(append([]byte(inner), s.md5Salt[:]...))
	want := make([]byte, 0, md5HashLen)
	want = append(want, md5Prefix...)
	want = hex.AppendEncode(want, sum[:])
	if subtle.ConstantTimeCompare(got, want) != 1 || s.cred.decoy {
		return authFailedf("md5 response does not match for user %q", s.cred.user)
	}
	return nil
}

// randRead fills b with random bytes; crypto/rand.Read never fails since
// Go 1.24.
func randRead(b []byte) { rand.Read(b) }
