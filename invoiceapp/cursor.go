package invoiceapp

import (
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// A cursor is the position after the last invoice of a page in the listing order (issue_date,
// id) descending: version byte, issue date as days since 1970-01-01 (int32), invoice id. It is
// base64url-encoded without padding and opaque to clients.

// cursorVersion is the first byte of every cursor; a future layout changes it.
const cursorVersion = 1

// cursorLen is the decoded length of a cursor.
const cursorLen = 1 + 4 + 16

// cursor is a decoded position in a listing.
type cursor struct {
	IssueDate Date
	ID        uuid.UUID
}

// encode returns c's opaque form.
func (c cursor) encode() string {
	var b [cursorLen]byte
	b[0] = cursorVersion
	days := c.IssueDate.Unix() / int64(24*time.Hour/time.Second)
	binary.BigEndian.PutUint32(b[1:5], uint32(int32(days)))
	copy(b[5:], c.ID[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// decodeCursor parses an opaque cursor; the error is a KindInvalid *Error about "cursor".
func decodeCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return cursor{}, invalid(CodeInvalidCursor, "cursor", "is not a cursor this service returned")
	}
	days := int64(int32(binary.BigEndian.Uint32(b[1:5])))
	var c cursor
	c.IssueDate = Date{time.Unix(days*int64(24*time.Hour/time.Second), 0).UTC()}
	copy(c.ID[:], b[5:])
	return c, nil
}
