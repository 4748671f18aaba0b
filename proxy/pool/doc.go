// Package pool keeps backend (server) connections per (endpoint, database, user).
//
// Connections are opened with pgx/v5/pgconn, which negotiates TLS and authentication, and then
// hijacked: from then on the proxy drives them as raw protocol frames. A Pool hands out idle
// connections most-recently-used first, opens new ones up to its size, lets waiting clients use
// a reserve after a delay, and bounds every wait. A checked-out Conn belongs to one client
// session until it is released or discarded.
package pool
