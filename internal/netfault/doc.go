// Package netfault cuts network paths on purpose, for tests: a TCP relay that can refuse and
// drop its connections, and a gossip transport whose traffic can be blocked. Both carry
// real traffic over loopback; nothing is mocked.
package netfault
