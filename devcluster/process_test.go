package devcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLogTail(t *testing.T) {
	long := strings.Repeat("x", 100) + "\n"
	for _, tc := range []struct {
		name    string
		content string
		from    int64
		want    string
	}{
		{name: "whole short log", content: "a\nb\n", want: "a\nb"},
		{name: "only this run", content: "old run\n--- new\nline\n", from: int64(len("old run\n")), want: "--- new\nline"},
		{name: "nothing written", content: "old\n", from: 4, want: ""},
		{name: "long log keeps whole lines of the end", content: strings.Repeat(long, 40) + "last\n",
			want: strings.TrimSpace(strings.Repeat(long, (logTailBytes-len("last\n"))/len(long)) + "last")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p0.log")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := logTail(path, tc.from); got != tc.want {
				t.Errorf("logTail = %q, want %q", got, tc.want)
			}
		})
	}
	if got := logTail(filepath.Join(t.TempDir(), "missing.log"), 0); got != "" {
		t.Errorf("missing file: %q", got)
	}
}

// orphanHelperEnv makes the test binary run orphanHelper instead of the tests.
const orphanHelperEnv = "DEVCLUSTER_ORPHAN_HELPER"

// orphanHelper starts a long sleep with startProcess, prints its pid and waits to be killed.
func orphanHelper() {
	p, err := startProcess(exec.Command("sleep", "600"), 0)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(p.Pid())
	<-p.Done()
	os.Exit(2)
}

// gone reports whether pid no longer runs: no such process, or a zombie nobody reaped yet.
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z")
}

// A child started by startProcess dies with its parent, even one killed with SIGKILL.
func TestStartProcessChildDiesWithParent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), orphanHelperEnv+"=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = helper.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		_ = helper.Process.Kill()
		t.Fatalf("helper said %q", line)
	}
	if gone(pid) {
		t.Fatalf("child %d is not running while its parent lives", pid)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	err = retry(ctx, nil, func(context.Context) error {
		if !gone(pid) {
			return fmt.Errorf("child %d still runs after its parent was killed", pid)
		}
		return nil
	})
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal(err)
	}
}
