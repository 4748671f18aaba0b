package devcluster

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/shardwire/shardwire/internal/childproc"
)

// logTailBytes is how much of a child's log an error about its exit quotes.
const logTailBytes = 2048

// process is one started child process.
type process struct {
	*childproc.Process
	// logFrom is the size of the log file when this process started: its own output begins
	// there.
	logFrom int64
	// quiet: the exit is expected (Kill, Stop) or handled by whoever is waiting for the
	// start, so it is not reported. Guarded by the owning Node's mu.
	quiet bool
}

// startProcess starts cmd so that it dies with this process (Pdeathsig SIGKILL).
func startProcess(cmd *exec.Cmd, logFrom int64) (*process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p, err := childproc.Start(cmd)
	if err != nil {
		return nil, err
	}
	return &process{Process: p, logFrom: logFrom}, nil
}

// signal sends sig unless the process has already exited.
func (p *process) signal(sig syscall.Signal) error {
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.Pid(), err)
	}
	return nil
}

// logTail returns the last lines (at most logTailBytes) that a process wrote to path from
// offset from on, trimmed; "" when there are none or the file cannot be read.
func logTail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	start := max(from, st.Size()-logTailBytes)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, logTailBytes))
	if err != nil {
		return ""
	}
	s := string(b)
	if start > from {
		// Drop the partial first line.
		if _, rest, ok := strings.Cut(s, "\n"); ok {
			s = rest
		}
	}
	return strings.TrimSpace(s)
}
