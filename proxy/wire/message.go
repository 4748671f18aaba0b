package wire

import "encoding/binary"

// Frontend (client to server) message types the proxy looks at.
const (
	Bind      byte = 'B'
	Close     byte = 'C'
	CopyData  byte = 'd'
	CopyDone  byte = 'c'
	CopyFail  byte = 'f'
	Describe  byte = 'D'
	Execute   byte = 'E'
	Flush     byte = 'H'
	FuncCall  byte = 'F'
	Parse     byte = 'P'
	Password  byte = 'p'
	Query     byte = 'Q'
	Sync      byte = 'S'
	Terminate byte = 'X'
)

// Backend (server to client) message types the proxy looks at.
const (
	BindComplete        byte = '2'
	CloseComplete       byte = '3'
	CommandComplete     byte = 'C'
	CopyBothResponse    byte = 'W'
	CopyInResponse      byte = 'G'
	CopyOutResponse     byte = 'H'
	DataRow             byte = 'D'
	EmptyQueryResponse  byte = 'I'
	ErrorResponse       byte = 'E'
	NoData              byte = 'n'
	NoticeResponse      byte = 'N'
	NotificationResp    byte = 'A'
	ParameterDesc       byte = 't'
	ParameterStatus     byte = 'S'
	ParseComplete       byte = '1'
	PortalSuspended     byte = 's'
	ReadyForQuery       byte = 'Z'
	RowDescription      byte = 'T'
	FunctionCallResp    byte = 'V'
	BackendKeyData      byte = 'K'
	AuthenticationReply byte = 'R'
)

// AppendHeader appends a message header for a body of bodyLen bytes.
func AppendHeader(dst []byte, typ byte, bodyLen int) []byte {
	dst = append(dst, typ)
	return binary.BigEndian.AppendUint32(dst, uint32(bodyLen+4))
}

// CString returns the NUL-terminated string at the start of b and the rest after the NUL.
// ok is false when b holds no NUL.
func CString(b []byte) (s []byte, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}
