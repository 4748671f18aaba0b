package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

const (
	// scramIterations and scramSaltLen are what Postgres uses by default
	// (scram_iterations = 4096, SCRAM_DEFAULT_SALT_LEN = 16).
	scramIterations = 4096
	scramSaltLen    = 16
	scramKeyLen     = sha256.Size

	scramPrefix = "SCRAM-SHA-256$"
	md5Prefix   = "md5"
	md5HashLen  = len(md5Prefix) + 2*md5.Size
)

// Credential is what the proxy knows about one user's password: SCRAM keys,
// an md5 hash, or both. It is built once at config load, never changes, and
// is safe for concurrent use by any number of Servers.
type Credential struct {
	user string

	// SCRAM-SHA-256; storedKey is nil when the credential has no SCRAM keys.
	iterations int
	salt       []byte
	storedKey  []byte
	serverKey  []byte

	// md5Hash is "md5" + hex(md5(password + user)), or "" when unknown.
	md5Hash string

	// decoy credentials stand in for unknown users and never verify.
	decoy bool
}

// NewPlainCredential derives both SCRAM-SHA-256 keys (random 16-byte salt,
// 4096 iterations, SASLprep'd password) and the md5 hash from a plain
// password. An empty password is an ErrInvalidSecret, as Postgres never
// accepts one.
func NewPlainCredential(user, password string) (*Credential, error) {
	if password == "" {
		return nil, fmt.Errorf("%w: empty password for user %q", ErrInvalidSecret, user)
	}
	salt := make([]byte, scramSaltLen)
	randRead(salt)
	c := deriveSCRAM(user, password, salt, scramIterations)
	c.md5Hash = md5Hash(user, password)
	return c, nil
}

// deriveSCRAM makes a SCRAM-only credential from a plain password.
func deriveSCRAM(user, password string, salt []byte, iterations int) *Credential {
	salted := saltedPassword(password, salt, iterations)
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	return &Credential{
		user:       user,
		iterations: iterations,
		salt:       salt,
		storedKey:  storedKey[:],
		serverKey:  hmacSHA256(salted, "Server Key"),
	}
}

// ParseSCRAMVerifier parses a Postgres SCRAM-SHA-256 verifier as stored in
// pg_authid.rolpassword:
// "SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>".
// The credential supports SCRAM-SHA-256 only.
func ParseSCRAMVerifier(user, verifier string) (*Credential, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: SCRAM verifier for user %q: %s", ErrInvalidSecret, user, why)
	}
	rest, ok := strings.CutPrefix(verifier, scramPrefix)
	if !ok {
		return nil, bad("missing " + scramPrefix + " prefix")
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, bad("missing keys")
	}
	iterText, saltText, ok := strings.Cut(params, ":")
	if !ok {
		return nil, bad("missing salt")
	}
	iterations, err := strconv.Atoi(iterText)
	if err != nil || iterations <= 0 {
		return nil, bad("invalid iteration count")
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil || len(salt) == 0 {
		return nil, bad("invalid salt")
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return nil, bad("missing ServerKey")
	}
	storedKey, err := base64.StdEncoding.DecodeString(storedText)
	if err != nil || len(storedKey) != scramKeyLen {
		return nil, bad("invalid StoredKey")
	}
	serverKey, err := base64.StdEncoding.DecodeString(serverText)
	if err != nil || len(serverKey) != scramKeyLen {
		return nil, bad("invalid ServerKey")
	}
	return &Credential{
		user:       user,
		iterations: iterations,
		salt:       salt,
		storedKey:  storedKey,
		serverKey:  serverKey,
	}, nil
}

// ParseMD5Hash parses a Postgres md5 hash, "md5" + hex(md5(password+user)).
// The credential supports md5 only; asked for SCRAM-SHA-256 it always fails
// authentication, as Postgres does.
func ParseMD5Hash(user, hash string) (*Credential, error) {
	hexPart, ok := strings.CutPrefix(hash, md5Prefix)
	if !ok || len(hash) != md5HashLen {
		return nil, fmt.Errorf("%w: md5 hash for user %q: want \"md5\" and 32 hex digits", ErrInvalidSecret, user)
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return nil, fmt.Errorf("%w: md5 hash for user %q: not hex", ErrInvalidSecret, user)
	}
	// The client hashes the lowercase hex text, so keep it lowercase.
	return &Credential{user: user, md5Hash: md5Prefix + strings.ToLower(hexPart)}, nil
}

// ParseSecret builds a credential from a configured secret the way Postgres
// interprets a password given to CREATE ROLE: a SCRAM verifier, an md5 hash,
// or else a plain password.
func ParseSecret(user, secret string) (*Credential, error) {
	switch {
	case strings.HasPrefix(secret, scramPrefix):
		return ParseSCRAMVerifier(user, secret)
	case isMD5Hash(secret):
		return ParseMD5Hash(user, secret)
	default:
		return NewPlainCredential(user, secret)
	}
}

// NewDecoyCredential returns a credential for a user the proxy does not
// know. Exchanges against it look like real ones and always end in
// ErrAuthenticationFailed at the proof step. key must be a secret of at
// least 16 random bytes made once per process: the decoy's salt depends
// only on key and user, so repeated attempts see a stable salt, as with a
// real user, and cannot tell that the user does not exist.
func NewDecoyCredential(user string, key []byte) *Credential {
	derive := func(label string) []byte {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(label))
		mac.Write([]byte{0})
		mac.Write([]byte(user))
		return mac.Sum(nil)
	}
	return &Credential{
		user:       user,
		iterations: scramIterations,
		salt:       derive("salt")[:scramSaltLen],
		storedKey:  derive("StoredKey"),
		serverKey:  derive("ServerKey"),
		md5Hash:    md5Prefix + hex.EncodeToString(derive("md5")[:md5.Size]),
		decoy:      true,
	}
}

// User returns the user name the credential was built for.
func (c *Credential) User() string { return c.user }

// Supports reports whether the credential holds a secret usable with m.
// A decoy credential claims to support both methods.
func (c *Credential) Supports(m Method) bool {
	switch m {
	case SCRAMSHA256:
		return c.storedKey != nil
	case MD5:
		return c.md5Hash != ""
	default:
		return false
	}
}

// withDecoySCRAM returns a copy of an md5-only credential with decoy SCRAM
// keys derived from its hash, so that a SCRAM exchange can run and fail
// with a salt that is stable for the user.
func (c *Credential) withDecoySCRAM() *Credential {
	return NewDecoyCredential(c.user, []byte(c.md5Hash))
}

func isMD5Hash(s string) bool {
	if len(s) != md5HashLen || !strings.HasPrefix(s, md5Prefix) {
		return false
	}
	// Like Postgres, only lowercase hex counts as a hash.
	for _, c := range s[len(md5Prefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func md5Hash(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return md5Prefix + hex.EncodeToString(sum[:])
}

// saltedPassword is SaltedPassword := Hi(Normalize(password), salt, i).
func saltedPassword(password string, salt []byte, iterations int) []byte {
	k, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, scramKeyLen)
	if err != nil {
		// Only possible in FIPS 140-3 mode with a short salt or key.
		panic("auth: pbkdf2: " + err.Error())
	}
	return k
}

func hmacSHA256(key []byte, msg string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}
