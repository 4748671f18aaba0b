package auth

import "errors"

var (
	// ErrAuthenticationFailed means the client did not prove knowledge of the
	// password: the password is wrong, the user is unknown (decoy credential),
	// or the user has no secret usable with the method. The proxy answers
	// SQLSTATE 28P01 `password authentication failed for user "X"` and
	// closes the connection. The error does not say which case it was, and
	// neither must the client-facing message.
	ErrAuthenticationFailed = errors.New("auth: password authentication failed")

	// ErrProtocolViolation means a client message was malformed or not the
	// one the exchange expects (wrong type, unknown SASL mechanism, channel
	// binding requested, nonce mismatch). The proxy answers SQLSTATE 08P01
	// and closes the connection.
	ErrProtocolViolation = errors.New("auth: protocol violation")

	// ErrInvalidSecret means a configured password, SCRAM verifier or md5
	// hash could not be parsed. It is a configuration error, returned only
	// by the Credential constructors.
	ErrInvalidSecret = errors.New("auth: invalid secret")
)
