// Package auth authenticates the proxy's clients the way a Postgres server
// does, against credentials from the proxy's configuration.
//
// It is protocol logic only: it reads client message bodies that the caller
// has already framed and returns the backend messages to send, and it never
// touches a socket. A [Credential] is built once per user at config load and
// is immutable; a [Server] runs one authentication exchange for one client.
//
// Two methods are supported: SCRAM-SHA-256 (RFC 5802 and RFC 7677, without
// channel binding, as Postgres offers it on a non-TLS connection) and md5.
// Unknown users get a decoy credential ([NewDecoyCredential]) so that the
// exchange looks the same whether or not the user exists and fails only at
// the proof step.
//
// Errors are classified by two sentinels, tested with errors.Is:
// [ErrAuthenticationFailed] (wrong password or unknown user, SQLSTATE 28P01)
// and [ErrProtocolViolation] (a malformed or unexpected client message,
// SQLSTATE 08P01). Translating them to an ErrorResponse is the caller's job;
// the wrapped detail text is for logs, not for the client.
package auth
