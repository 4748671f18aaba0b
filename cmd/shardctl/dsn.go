package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// endpointFromDSN returns the host:port of a Postgres server given as a libpq URL or a
// key=value string. Only the address is used: the nodes connect with their own credentials.
// flag names the flag the DSN came from, for the error message.
func endpointFromDSN(flag, dsn string) (string, error) {
	if strings.TrimSpace(dsn) == "" {
		return "", fmt.Errorf("invalid %s DSN: empty", flag)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		// pgconn's message quotes the DSN with its password masked.
		return "", fmt.Errorf("invalid %s DSN: %w", flag, err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		return "", fmt.Errorf("invalid %s DSN: host %q is a Unix socket directory; give a TCP host and port", flag, cfg.Host)
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	// A DSN with sslmode=prefer or allow has a fallback for the same server; other fallbacks
	// are further hosts, and a group's endpoint is one server.
	for _, fb := range cfg.Fallbacks {
		if other := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))); other != addr {
			return "", fmt.Errorf("invalid %s DSN: it lists several servers (%s and %s); give one per flag", flag, addr, other)
		}
	}
	if cfg.Host == "" || cfg.Port == 0 {
		return "", errors.New("invalid " + flag + " DSN: no host and port")
	}
	return addr, nil
}
