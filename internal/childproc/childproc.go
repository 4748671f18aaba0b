// Package childproc starts child processes that die with their parent: the command's
// Pdeathsig is delivered when the thread that forked the child exits, so the goroutine that
// starts a child keeps its OS thread locked until the child has exited (the Go runtime could
// otherwise retire the thread while the child runs, and the child would get the signal then).
package childproc

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// Process is a started child process.
type Process struct {
	proc *os.Process
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // Wait's result; valid after done is closed
}

// Start starts cmd, whose SysProcAttr should set Pdeathsig, on a goroutine locked to its OS
// thread until the child exits, and reaps the child when it exits.
func Start(cmd *exec.Cmd) (*Process, error) {
	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread exits with this goroutine, after the child.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.proc = cmd.Process
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for a zero exit status); valid once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid is the process id.
func (p *Process) Pid() int { return p.proc.Pid }

// Signal sends sig unless the process has already exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}
