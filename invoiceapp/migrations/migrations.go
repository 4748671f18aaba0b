package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

//go:embed *.sql
var files embed.FS

// DB is what Apply needs of a connection pool; *pgxpool.Pool implements it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Migration is one embedded schema change.
type Migration struct {
	Version    int
	Name       string
	Statements []string
	// Checksum is the SHA-256 of the file, hex; a recorded migration whose file changed since
	// is an error.
	Checksum string
}

// fileName is the shape of a migration file's name.
var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrations: file %s is not named NNNN_name.sql", e.Name())
		}
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(b)
		mig := Migration{Version: v, Name: m[2], Statements: Split(string(b)), Checksum: hex.EncodeToString(sum[:])}
		if len(mig.Statements) == 0 {
			return nil, fmt.Errorf("migrations: %s holds no statement", e.Name())
		}
		if n := len(out); n > 0 && out[n-1].Version == v {
			return nil, fmt.Errorf("migrations: two files have version %d", v)
		}
		out = append(out, mig)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// Split cuts a migration file into statements: each ends with a semicolon at the end of a
// line; "--" comment lines and blank lines are dropped.
func Split(src string) []string {
	var (
		out []string
		cur strings.Builder
	)
	for line := range strings.Lines(src) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			out = append(out, strings.TrimSpace(stmt))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}

// bootstrap creates the bookkeeping tables; both are unsharded (default group).
var bootstrap = []string{
	`CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`,
	`CREATE TABLE IF NOT EXISTS schema_migrations_lock (
    id int PRIMARY KEY CHECK (id = 1),
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
)`,
}

// Apply applies the embedded migrations not yet recorded in schema_migrations, in order,
// holding the migration lease, and returns the versions it applied. Recorded migrations are
// checked against their files' checksums. log may be nil.
func Apply(ctx context.Context, db DB, log *zap.Logger) ([]int, error) {
	if log == nil {
		log = zap.NewNop()
	}
	all, err := All()
	if err != nil {
		return nil, err
	}
	for _, sql := range bootstrap {
		if err := ExecRetry(ctx, db, sql); err != nil {
			return nil, fmt.Errorf("migrations: bootstrap: %w", err)
		}
	}
	l, err := acquire(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	defer func() {
		if err := l.release(context.WithoutCancel(ctx)); err != nil {
			log.Warn("could not release the migration lease; it expires by itself", zap.Error(err))
		}
	}()
	applied, err := recorded(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var done []int
	for _, m := range all {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return done, fmt.Errorf("migrations: %04d_%s changed since it was applied (checksum %s, recorded %s)", m.Version, m.Name, m.Checksum, sum)
			}
			continue
		}
		if err := l.renew(ctx); err != nil {
			return done, fmt.Errorf("migrations: %w", err)
		}
		start := time.Now()
		for i, sql := range m.Statements {
			if err := ExecRetry(ctx, db, sql); err != nil {
				return done, fmt.Errorf("migrations: %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if _, err := db.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
			m.Version, m.Name, m.Checksum); err != nil {
			return done, fmt.Errorf("migrations: record %04d_%s: %w", m.Version, m.Name, err)
		}
		log.Info("applied migration", zap.Int("version", m.Version), zap.String("name", m.Name),
			zap.Int("statements", len(m.Statements)), zap.Duration("took", time.Since(start)))
		done = append(done, m.Version)
	}
	return done, nil
}

// recorded returns the applied migrations' checksums by version.
func recorded(ctx context.Context, db DB) (map[int]string, error) {
	rows, err := db.Query(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := make(map[int]string)
	for rows.Next() {
		var (
			v   int
			sum string
		)
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out[v] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// execAttempts bounds the retries of a statement that lost a race with a concurrent creator.
const execAttempts = 5

// ExecRetry runs an idempotent DDL statement (CREATE ... IF NOT EXISTS), retrying when a concurrent creator of the same
// object made it fail (IF NOT EXISTS is checked before the catalog insert, so racing creators
// can still collide) or a deadlock across groups aborted it.
func ExecRetry(ctx context.Context, db DB, sql string) error {
	var err error
	for attempt := 1; attempt <= execAttempts; attempt++ {
		if _, err = db.Exec(ctx, sql); err == nil || !raceError(err) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
	return err
}

// raceError reports whether err is what concurrent creators of one object see.
func raceError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "23505", "42P07", "42710", "40P01", "40001":
		return true
	}
	return false
}
