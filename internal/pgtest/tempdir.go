package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	// tempPrefix names the temporary base directories Start creates.
	tempPrefix = "shardwire-pgtest-"
	// ownerFile in a temporary base directory holds the creator's pid, so
	// that directories of crashed callers can be swept.
	ownerFile = "owner.pid"
	// shmDir is a tmpfs on most Linux systems. Creating files there is much
	// cheaper than on disk, which dominates cloning a data directory (about
	// 1,300 files).
	shmDir = "/dev/shm"
	// minShmFree is the free space shmDir needs before Start uses it;
	// containers often mount a 64 MB /dev/shm, too small for a cluster.
	minShmFree = 2 << 30
)

// tempBase returns where Start creates a cluster's temporary directory:
// shmDir when it is a writable tmpfs with room, else os.TempDir().
func tempBase() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(shmDir, &st); err == nil &&
		st.Type == 0x01021994 && // TMPFS_MAGIC
		st.Bavail*uint64(st.Bsize) >= minShmFree &&
		syscall.Access(shmDir, 0o2 /* W_OK */) == nil {
		return shmDir
	}
	return os.TempDir()
}

// makeTempDir creates a 0755 temporary base directory recording our pid,
// after removing those left by callers that died without Stop.
func makeTempDir() (string, error) {
	base := tempBase()
	sweepTempDirs(base)
	dir, err := os.MkdirTemp(base, tempPrefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", errors.Join(err, os.RemoveAll(dir))
	}
	return dir, nil
}

// sweepTempDirs removes base's temporary directories whose creator is no
// longer running (its servers died with it, from Pdeathsig). Errors are
// ignored: sweeping is best effort.
func sweepTempDirs(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// describe is for log lines.
func describe(dir string, temp bool) string {
	if temp {
		return fmt.Sprintf("%s (temporary)", dir)
	}
	return dir
}
