// Package pgtest starts real PostgreSQL servers from the binaries installed on
// this machine, for tests and for `shardwire dev`.
//
// A Cluster is made of shard groups; each group has one writer and zero or
// more streaming replicas. Every server listens on 127.0.0.1 only, on a free
// port, with these roles:
//
//   - User (app/app, SCRAM-SHA-256) owns Database; use Server.AppDSN.
//   - SuperUser (postgres) is trusted on loopback; use Server.SuperDSN.
//
// initdb runs once per machine and Postgres version into a cached template
// directory under os.TempDir() (see TemplateDir), guarded by a file lock so
// that test binaries running in parallel share it; each server is a copy of
// the template, so a one-server cluster starts in a fraction of a second.
//
// Servers are child processes of the caller and get SIGQUIT when it dies.
// When the caller runs as root, initdb, postgres and pg_basebackup run as the
// "postgres" OS user, which must exist, and every directory handed to them is
// owned by or traversable for that user.
//
// Tests use New, which stops the cluster in t.Cleanup:
//
//	c := pgtest.New(t, pgtest.Options{Replicas: 1})
//	conn, err := pgx.Connect(ctx, c.Groups[0].Writer.AppDSN())
//
// The package also starts a real redis-server (StartRedis, or NewRedis in tests) on a free
// loopback port, without persistence; Kill and Start on the same port let tests lose Redis
// midway. Connect and SQLState are small client helpers for tests.
package pgtest
