// Package wire frames Postgres protocol messages on a byte stream without decoding them.
//
// A Reader returns each message as a Frame: the type byte, the length and the body, contiguous,
// so the proxy can forward it as bytes and decode only the few messages it acts on. Frames that
// fit the read buffer are returned in place (no copy); larger ones are copied into a scratch
// buffer that is dropped again once it grows past a bound.
package wire
