package auth

// Method is a password authentication method.
type Method int

const (
	// SCRAMSHA256 is SASL SCRAM-SHA-256 without channel binding.
	SCRAMSHA256 Method = iota + 1
	// MD5 is Postgres's md5 challenge-response.
	MD5
)

// String returns the method's name as written in pg_hba.conf.
func (m Method) String() string {
	switch m {
	case SCRAMSHA256:
		return "scram-sha-256"
	case MD5:
		return "md5"
	default:
		return "unknown"
	}
}
