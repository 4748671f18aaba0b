package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Options configures a Cluster. The zero value is one group with a writer
// and no replicas in a fresh temporary directory.
type Options struct {
	Groups    int                              // shard groups, default 1
	Replicas  int                              // streaming replicas per group, default 0
	Dir       string                           // base directory; "" = a fresh temp dir (in /dev/shm when it has room) removed by Stop
	ExtraConf map[string]string                // extra postgresql.conf settings for every server
	Logf      func(format string, args ...any) // optional progress log; must be safe for concurrent use
}

// Group is one shard group: a writer and its streaming replicas.
type Group struct {
	Name     string // "g0", "g1", ...
	Writer   *Server
	Replicas []*Server
}

// Cluster is a set of running groups started by Start.
type Cluster struct {
	Dir    string // base directory; each server's data dir is Dir/<server name>
	Groups []*Group

	tempDir  bool // Dir was created by Start and is removed by Stop
	stopOnce sync.Once
	stopErr  error
}

// stopTimeout bounds Cluster.Stop.
const stopTimeout = 30 * time.Second

// Start starts a cluster: opts.Groups groups started in parallel, each a
// writer copied from the cached template plus opts.Replicas replicas made
// with pg_basebackup. It returns once every writer accepts connections and
// every replica accepts connections in recovery. On error, whatever was
// started is stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Groups <= 0 {
		opts.Groups = 1
	}
	if opts.Replicas < 0 {
		return nil, fmt.Errorf("pgtest: Replicas = %d, want >= 0", opts.Replicas)
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	as, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	template, err := ensureTemplate(ctx, binDir, as, logf)
	if err != nil {
		return nil, err
	}

	c := &Cluster{Dir: opts.Dir}
	if c.Dir == "" {
		if c.Dir, err = makeTempDir(); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		c.tempDir = true
	} else if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	// Postgres, running as another user when we are root, must traverse Dir.
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return nil, errors.Join(fmt.Errorf("pgtest: %w", err), c.Stop())
	}
	if err := as.checkTraversable(c.Dir); err != nil {
		return nil, errors.Join(fmt.Errorf("pgtest: %w", err), c.Stop())
	}

	newServer := func(name string) *Server {
		return &Server{
			Name:      name,
			Host:      "127.0.0.1",
			DataDir:   filepath.Join(c.Dir, name),
			binDir:    binDir,
			as:        as,
			extraConf: opts.ExtraConf,
		}
	}
	for i := range opts.Groups {
		g := &Group{Name: fmt.Sprintf("g%d", i)}
		g.Writer = newServer(g.Name + "-writer")
		for j := range opts.Replicas {
			g.Replicas = append(g.Replicas, newServer(fmt.Sprintf("%s-replica%d", g.Name, j+1)))
		}
		c.Groups = append(c.Groups, g)
	}

	start := time.Now()
	errs := make([]error, len(c.Groups))
	var wg sync.WaitGroup
	for i, g := range c.Groups {
		wg.Go(func() { errs[i] = g.start(ctx, template, logf) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	logf("pgtest: cluster of %d group(s) x %d replica(s) ready in %s in %v",
		opts.Groups, opts.Replicas, describe(c.Dir, c.tempDir), time.Since(start).Round(time.Millisecond))
	return c, nil
}

// start copies the template to the writer's data dir and starts it, then
// clones and starts the replicas in parallel.
func (g *Group) start(ctx context.Context, template string, logf func(string, ...any)) error {
	w := g.Writer
	if err := copyTree(template, w.DataDir, w.as); err != nil {
		return fmt.Errorf("start %s: copy template: %w", w.Name, err)
	}
	if err := w.start(ctx, true); err != nil {
		return err
	}
	logf("pgtest: %s listening on %s", w.Name, w.Addr())
	errs := make([]error, len(g.Replicas))
	var wg sync.WaitGroup
	for i, r := range g.Replicas {
		wg.Go(func() {
			errs[i] = r.startReplica(ctx, w)
			if errs[i] == nil {
				logf("pgtest: %s listening on %s, replicating %s", r.Name, r.Addr(), w.Name)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startReplica clones primary with pg_basebackup into s.DataDir and starts
// s as a streaming standby of it.
func (s *Server) startReplica(ctx context.Context, primary *Server) error {
	if err := s.as.mkdirOwned(s.DataDir, 0o700); err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	cmd := s.as.command("/", filepath.Join(s.binDir, "pg_basebackup"),
		"-h", primary.Host, "-p", fmt.Sprint(primary.Port), "-U", SuperUser,
		"-D", s.DataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	if out, err := run(ctx, cmd); err != nil {
		return fmt.Errorf("start %s: pg_basebackup from %s: %w\n%s", s.Name, primary.Name, err, tail(out))
	}
	// The backup carries the primary's log; start this one afresh.
	if err := os.Truncate(s.LogPath(), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	return s.start(ctx, true)
}

// Servers returns every server, writers first within each group.
func (c *Cluster) Servers() []*Server {
	var all []*Server
	for _, g := range c.Groups {
		all = append(all, g.Writer)
		all = append(all, g.Replicas...)
	}
	return all
}

// Stop stops every server (replicas first, in parallel) and removes Dir if
// Start created it. It is idempotent; later calls return the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		var replicas, writers []*Server
		for _, g := range c.Groups {
			writers = append(writers, g.Writer)
			replicas = append(replicas, g.Replicas...)
		}
		// Replicas first, so that they do not log a lost primary.
		errs := []error{stopAll(ctx, replicas), stopAll(ctx, writers)}
		if c.tempDir {
			errs = append(errs, os.RemoveAll(c.Dir))
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// stopAll stops servers in parallel.
func stopAll(ctx context.Context, servers []*Server) error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startTimeout bounds New's Start.
const startTimeout = 2 * time.Minute

// New starts a cluster for a test, stops it in t.Cleanup and fails the test
// if it cannot start. Without opts.Logf, progress goes to t.Logf.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: stop: %v", err)
		}
	})
	return c
}
