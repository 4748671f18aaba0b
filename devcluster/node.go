package devcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy"
)

// stopGrace is how long Stop waits after SIGTERM before it kills a child node.
const stopGrace = 10 * time.Second

// Node is one proxy node of a dev cluster, run either in this process or as a child process
// (Options.Exec). Its methods are safe for concurrent use.
type Node struct {
	// Name is the node's name: p0, p1, ...
	Name   string
	Addr   string // client address, host:port
	Admin  string // admin HTTP address, host:port
	Gossip string // gossip address (TCP and UDP), host:port
	// Config is the node's configuration, as a child node reads it from its file.
	Config config.Config
	// Proxy is the in-process node's proxy server; nil for a child process.
	Proxy *proxy.Server
	// Registry holds the in-process node's metrics (each node has its own); nil for a child
	// process, whose metrics are at http://Admin/metrics.
	Registry *prometheus.Registry

	// Child processes only.
	exec       string // the shardwire binary
	configPath string // DIR/proxies/<name>.yaml
	logPath    string // DIR/proxies/<name>.log
	report     func(error)

	// served is closed when an in-process node's Serve has returned.
	served chan struct{}

	op   sync.Mutex // serialises Kill, Stop and Restart
	mu   sync.Mutex // guards proc and its quiet flag
	proc *process
}

// childNode reports whether the node runs as a child process.
func (n *Node) childNode() bool { return n.exec != "" }

// DSN returns the URL clients use to connect to the node as User.
func (n *Node) DSN() string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", User, Password, n.Addr, Database)
}

// PID returns the child process's id while it runs, else 0; always 0 for an in-process node.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.Exited() {
		return 0
	}
	return n.proc.Pid()
}

// Running reports whether the node's child process runs. An in-process node runs until the
// cluster stops.
func (n *Node) Running() bool {
	if !n.childNode() {
		if n.served == nil {
			return false
		}
		select {
		case <-n.served:
			return false
		default:
			return true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.Exited()
}

// Kill sends SIGKILL to the node's child process and waits until it has exited. It is a no-op
// when the process is not running, and an error for an in-process node.
func (n *Node) Kill() error {
	_, _, err := n.end("kill", syscall.SIGKILL, 0)
	return err
}

// Stop sends SIGTERM to the node's child process and waits up to 10 s for it to exit, then
// kills it. It returns an error when the process had to be killed or exited with a failure
// status. It is a no-op when the process is not running, and an error for an in-process node.
func (n *Node) Stop() error {
	p, killed, err := n.end("stop", syscall.SIGTERM, stopGrace)
	switch {
	case err != nil || p == nil:
		return err
	case killed:
		return fmt.Errorf("devcluster: %s (pid %d) did not stop within %v of SIGTERM and was killed", n.Name, p.Pid(), stopGrace)
	case p.Err() != nil:
		return fmt.Errorf("devcluster: %s (pid %d) stopped with %v; its log %s ends:\n%s",
			n.Name, p.Pid(), p.Err(), n.logPath, logTail(n.logPath, p.logFrom))
	}
	return nil
}

// end sends sig to the node's running child process (an expected exit, not reported) and
// waits for it to exit; after grace (0: no limit) it kills it, and says so. p is nil when no
// process was running.
func (n *Node) end(verb string, sig syscall.Signal, grace time.Duration) (p *process, killed bool, err error) {
	if err := n.needChild(verb); err != nil {
		return nil, false, err
	}
	n.op.Lock()
	defer n.op.Unlock()
	if p = n.quietProcess(); p == nil {
		return nil, false, nil
	}
	if err := p.signal(sig); err != nil {
		return p, false, fmt.Errorf("devcluster: %s %s: %w", verb, n.Name, err)
	}
	if grace <= 0 {
		<-p.Done()
		return p, false, nil
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.Done():
		return p, false, nil
	case <-timer.C:
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return p, false, fmt.Errorf("devcluster: %s %s: %w", verb, n.Name, err)
	}
	<-p.Done()
	return p, true, nil
}

// Restart starts the node's child process again, with the same configuration file and
// therefore the same ports, and waits until it serves a query. The node must not be running.
// When Restart fails the process may still run; Kill, Stop or Cluster.Stop end it.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.needChild("restart"); err != nil {
		return err
	}
	n.op.Lock()
	defer n.op.Unlock()
	if n.Running() {
		return fmt.Errorf("devcluster: restart %s: it is still running (pid %d); Kill or Stop it first", n.Name, n.PID())
	}
	if err := n.start(); err != nil {
		return err
	}
	err := retry(ctx, nil, func(ctx context.Context) error {
		if err := n.exitedError(); err != nil {
			return permanent(err)
		}
		return queryOnce(ctx, n.DSN())
	})
	if err != nil {
		return fmt.Errorf("devcluster: restart %s: %w", n.Name, err)
	}
	return n.watch()
}

func (n *Node) needChild(verb string) error {
	if n.childNode() {
		return nil
	}
	return fmt.Errorf("devcluster: cannot %s %s, it runs in-process (set Options.Exec): %w", verb, n.Name, errors.ErrUnsupported)
}

// start starts the child process with the node's configuration file, its output appended to
// the node's log file. Until watch is called, its exit is not reported.
func (n *Node) start() error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("devcluster: %s log: %w", n.Name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	st, err := logf.Stat()
	if err != nil {
		return fmt.Errorf("devcluster: %s log: %w", n.Name, err)
	}
	if _, err := fmt.Fprintf(logf, "--- devcluster: starting %s at %s\n", n.Name, time.Now().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("devcluster: %s log: %w", n.Name, err)
	}
	cmd := exec.Command(n.exec, "serve", "--config", n.configPath, "--log-level", "info")
	cmd.Stdout = logf
	cmd.Stderr = logf
	p, err := startProcess(cmd, st.Size())
	if err != nil {
		return fmt.Errorf("devcluster: start %s: %w", n.Name, err)
	}
	p.quiet = true
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	go n.monitor(p)
	return nil
}

// monitor waits for p to exit and reports the exit unless it was expected.
func (n *Node) monitor(p *process) {
	<-p.Done()
	n.mu.Lock()
	quiet := p.quiet
	n.mu.Unlock()
	if !quiet {
		n.report(n.exitError(p))
	}
}

// watch makes the exit of the running process reportable (on Cluster.Errors). It fails when
// the process has already exited.
func (n *Node) watch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc.Exited() {
		return n.exitError(n.proc)
	}
	n.proc.quiet = false
	return nil
}

// quietProcess returns the running process, its exit no longer to be reported, or nil when
// none runs.
func (n *Node) quietProcess() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.Exited() {
		return nil
	}
	n.proc.quiet = true
	return n.proc
}

// exitedError returns the exit error of the node's process when it has exited, else nil.
func (n *Node) exitedError() error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil || !p.Exited() {
		return nil
	}
	return n.exitError(p)
}

// exitError describes the exit of p, with the end of what it logged.
func (n *Node) exitError(p *process) error {
	how := "exited with status 0"
	if p.Err() != nil {
		how = p.Err().Error()
	}
	return fmt.Errorf("proxy %s (pid %d) exited on its own (%s); its log %s ends:\n%s",
		n.Name, p.Pid(), how, n.logPath, logTail(n.logPath, p.logFrom))
}
