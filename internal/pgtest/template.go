package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// templateLayout versions what the template directory contains (roles,
// databases, pg_hba.conf, the include of serverConfFile). Bump it whenever
// createTemplate changes, so that stale cached templates are not reused.
const templateLayout = 1

// lockPollInterval is how often a process waiting for another one to build
// the template retries the lock.
const lockPollInterval = 20 * time.Millisecond

// TemplateDir returns the cached template data directory for the Postgres
// version in binDir; it may not exist yet.
func TemplateDir(ctx context.Context, binDir string) (string, error) {
	version, err := serverVersion(ctx, binDir)
	if err != nil {
		return "", err
	}
	cache := filepath.Join(os.TempDir(), fmt.Sprintf("shardwire-pgtest-%d", os.Geteuid()))
	return filepath.Join(cache, fmt.Sprintf("template-pg%s-v%d", version, templateLayout)), nil
}

// ensureTemplate returns the template directory, building it first when no
// other process has. It holds an exclusive flock on a sibling lock file while
// checking and building, so parallel test binaries build it once.
func ensureTemplate(ctx context.Context, binDir string, as runAs, logf func(string, ...any)) (string, error) {
	dir, err := TemplateDir(ctx, binDir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // fast path: built by an earlier run
	}
	cache := filepath.Dir(dir)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("template cache: %w", err)
	}
	if err := as.checkTraversable(cache); err != nil {
		return "", fmt.Errorf("template cache: %w", err)
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", fmt.Errorf("template lock: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // built by another process while we waited
	}
	start := time.Now()
	if err := createTemplate(ctx, binDir, as, dir); err != nil {
		return "", fmt.Errorf("create template %s: %w", dir, err)
	}
	logf("pgtest: built template %s in %v", dir, time.Since(start).Round(time.Millisecond))
	return dir, nil
}

// lockFile takes an exclusive flock on path, polling until ctx ends.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPollInterval):
		}
	}
}

// createTemplate runs initdb into a scratch directory, adds the app role and
// database, writes pg_hba.conf and renames the result to dir.
func createTemplate(ctx context.Context, binDir string, as runAs, dir string) error {
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := as.mkdirOwned(tmp, 0o700); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()

	initdb := as.command("/", filepath.Join(binDir, "initdb"),
		"-D", tmp, "-U", SuperUser, "--auth=trust", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions")
	if out, err := run(ctx, initdb); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, tail(out))
	}

	// Single-user mode creates the role and database without a server, a
	// port or a readiness wait.
	sql := fmt.Sprintf("SET password_encryption = 'scram-sha-256';\n"+
		"CREATE ROLE %s LOGIN PASSWORD '%s';\n"+
		"CREATE DATABASE %s OWNER %s;\n", User, Password, Database, User)
	single := as.command("/", filepath.Join(binDir, "postgres"),
		"--single", "-D", tmp, "-c", "fsync=off", "-c", "full_page_writes=off", "postgres")
	single.Stdin = strings.NewReader(sql)
	out, err := run(ctx, single)
	if err != nil || strings.Contains(string(out), "ERROR:") || strings.Contains(string(out), "FATAL:") {
		return fmt.Errorf("create role and database (err %v):\n%s", err, tail(out))
	}

	if err := writeOwned(as, filepath.Join(tmp, "pg_hba.conf"), []byte(hbaConf)); err != nil {
		return err
	}
	conf, err := os.OpenFile(filepath.Join(tmp, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(conf, "\n# Added by shardwire pgtest; per-server settings.\ninclude_if_exists = '%s'\n", serverConfFile)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	ok = true
	return nil
}

// hbaConf admits loopback connections only: the superuser and replication
// without a password, everyone else with SCRAM.
const hbaConf = `# shardwire pgtest: loopback only.
# TYPE  DATABASE     USER      ADDRESS        METHOD
host    all          postgres  127.0.0.1/32   trust
host    replication  all       127.0.0.1/32   trust
host    all          all       127.0.0.1/32   scram-sha-256
`

// writeOwned writes a 0600 file owned by as.
func writeOwned(as runAs, path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return as.chown(path)
}

// copyTree copies the directory tree src to dst (which must not exist),
// keeping modes and giving every entry to as.
func copyTree(src, dst string, as runAs) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets and the like are not part of a data directory
		}
		return as.chown(target)
	})
}

// copyFile copies a regular file; io.Copy between files uses copy_file_range.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// tail returns the last lines of out, for error messages.
func tail(out []byte) string {
	const maxLines, maxBytes = 25, 4096
	s := strings.TrimRight(string(out), "\n")
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	lines := strings.Split(s, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}
