package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/shardwire/shardwire/internal/childproc"
)

// serverUserName is the OS user Postgres runs as when the caller is root:
// postgres refuses to run as root.
const serverUserName = "postgres"

// runAs is the OS identity that runs initdb, postgres and pg_basebackup.
type runAs struct {
	switchUser bool // run children as uid/gid instead of the current user
	uid, gid   int
	home       string
}

// lookupRunAs returns the current user, or the postgres OS user when the
// caller is root.
func lookupRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Geteuid(), gid: os.Getegid(), home: os.Getenv("HOME")}, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return runAs{}, fmt.Errorf("running as root, so Postgres must run as the %q OS user: %w", serverUserName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return runAs{}, fmt.Errorf("user %s: uid %q: %w", serverUserName, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return runAs{}, fmt.Errorf("user %s: gid %q: %w", serverUserName, u.Gid, err)
	}
	return runAs{switchUser: true, uid: uid, gid: gid, home: u.HomeDir}, nil
}

// command returns a command that runs as r, in dir, with a clean libpq and
// locale environment, and that receives sig when the caller dies.
func (r runAs) command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = r.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGQUIT,
		// Own process group: a terminal's Ctrl-C goes to the caller, which
		// decides how to stop its servers.
		Setpgid: true,
	}
	if r.switchUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), Groups: []uint32{}}
	}
	return cmd
}

// env is the caller's environment without PG* and locale variables (a
// developer's PGSSLMODE or PGPASSWORD must not leak into pg_basebackup), with
// LC_ALL=C so that server messages are in English.
func (r runAs) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "PGPASSFILE="+os.DevNull)
	if r.home != "" {
		env = append(env, "HOME="+r.home)
	}
	return env
}

// chown gives path to r when children run as another user.
func (r runAs) chown(path string) error {
	if !r.switchUser {
		return nil
	}
	return os.Lchown(path, r.uid, r.gid)
}

// mkdirOwned creates dir (mode perm, not subject to umask) owned by r.
func (r runAs) mkdirOwned(dir string, perm os.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil {
		return err
	}
	if err := os.Chmod(dir, perm); err != nil {
		return err
	}
	return r.chown(dir)
}

// checkTraversable reports an error when r cannot reach dir because an
// ancestor lacks search permission for it (t.TempDir and os.MkdirTemp create
// 0700 directories owned by root).
func (r runAs) checkTraversable(dir string) error {
	if !r.switchUser {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			mode := fi.Mode().Perm()
			var can bool
			switch {
			case int(st.Uid) == r.uid:
				can = mode&0o100 != 0
			case int(st.Gid) == r.gid:
				can = mode&0o010 != 0
			default:
				can = mode&0o001 != 0
			}
			if !can {
				return fmt.Errorf("directory %s (mode %v) is not traversable by the %q OS user that runs Postgres; use a directory with o+x ancestors", p, mode, serverUserName)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// run runs cmd to completion and returns its combined output; when ctx ends
// first, the process is killed.
func run(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	p, err := childproc.Start(cmd)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
		return out.Bytes(), ctx.Err()
	}
	return out.Bytes(), p.Err()
}
