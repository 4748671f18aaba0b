package twopc

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// GIDPrefix starts the global identifier (the PREPARE TRANSACTION name) of every prepared
// transaction shardwire makes; Recovery looks only at transactions named so.
const GIDPrefix = "shardwire:"

// MaxGIDLen is the longest global identifier Postgres accepts, in bytes.
const MaxGIDLen = 199

// NewGID returns a new global identifier for a transaction coordinated by node:
// GIDPrefix, the node's name, the time in milliseconds (base 36) and 64 random bits, for
// example "shardwire:p0:m2k1x9qz:9f3a0c5e7b21d4f8". It is unique across nodes and time and
// at most MaxGIDLen bytes long: a long node name is cut short. Any characters are allowed
// in node; the SQL helpers quote the identifier.
func NewGID(node string) string {
	var random [8]byte
	_, _ = rand.Read(random[:]) // never fails (crypto/rand panics rather than return an error)
	suffix := ":" + strconv.FormatInt(time.Now().UnixMilli(), 36) + ":" + hex.EncodeToString(random[:])
	room := MaxGIDLen - len(GIDPrefix) - len(suffix)
	if len(node) > room {
		node = node[:room]
		for !utf8.ValidString(node) {
			node = node[:len(node)-1]
		}
	}
	return GIDPrefix + node + suffix
}

// IsGID reports whether gid names a shardwire prepared transaction.
func IsGID(gid string) bool { return strings.HasPrefix(gid, GIDPrefix) }

// PrepareSQL returns the statement that prepares the current transaction as gid.
func PrepareSQL(gid string) string { return "PREPARE TRANSACTION " + quoteLiteral(gid) }

// CommitPreparedSQL returns the statement that commits the prepared transaction gid. It
// must run outside a transaction block, in the database the transaction was prepared in,
// as its owner (or a superuser). Postgres answers SQLSTATE 42704 when no transaction of
// that name is prepared (any more).
func CommitPreparedSQL(gid string) string { return "COMMIT PREPARED " + quoteLiteral(gid) }

// RollbackPreparedSQL returns the statement that rolls back the prepared transaction gid,
// with the same requirements as CommitPreparedSQL.
func RollbackPreparedSQL(gid string) string { return "ROLLBACK PREPARED " + quoteLiteral(gid) }

// quoteLiteral returns s as an SQL string literal that means s whatever the server's
// standard_conforming_strings: quotes are doubled, and a string holding a backslash is
// written as an escape string (E'...') with its backslashes doubled.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}
