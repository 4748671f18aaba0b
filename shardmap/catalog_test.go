package shardmap

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// testSchema is a schema name that only survives proper identifier quoting.
const testSchema = `Shard"Map Cat`

// openCatalog opens a catalog for a test and closes it at the end.
func openCatalog(ctx context.Context, t *testing.T, dsn, schema string) *Catalog {
	t.Helper()
	c, err := OpenCatalog(ctx, dsn, schema, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("OpenCatalog: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// configMap returns the bootstrap map of a one-group configuration pointing at addr.
func configMap(t *testing.T, addr string) *Map {
	t.Helper()
	cfg := configWith(1)
	cfg.Groups[0].Writer = addr
	cfg.Sharding.Tables = append(cfg.Sharding.Tables, config.ShardedTable{Name: "pgbench_accounts", Column: "aid"})
	m, err := FromConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// withEpoch returns a copy of m as the catalog stores it at epoch.
func withEpoch(m *Map, epoch int64) *Map {
	c := *m
	c.Epoch = epoch
	c.Tables = nil
	return &c
}

// moved returns a copy of m with shard s reassigned to a new group, so that epochs differ.
func moved(m *Map, name string) *Map {
	c := *m
	c.Groups = append(append([]Group(nil), m.Groups...), Group{Name: name, Writer: name + ":5432"})
	c.Owner[3] = len(c.Groups) - 1
	return &c
}

func TestCatalogBootstrap(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := pgtest.New(t, pgtest.Options{}).Groups[0].Writer

	cat := openCatalog(ctx, t, w.AppDSN(), testSchema)
	if _, err := cat.Epoch(ctx); err == nil {
		t.Error("Epoch before Bootstrap: no error")
	}
	boot := configMap(t, w.Addr())
	boot.Tables = map[string]string{"x": "y"} // not the catalog's business
	got, err := cat.Bootstrap(ctx, boot, "p0")
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if want := withEpoch(boot, 1); !reflect.DeepEqual(got, want) {
		t.Fatalf("Bootstrap returned\n%+v\nwant\n%+v", got, want)
	}
	if boot.Epoch != 0 || boot.Tables == nil {
		t.Error("Bootstrap modified the map it was given")
	}

	// A second node with another map: the catalog's map wins, nothing is added.
	other := openCatalog(ctx, t, w.AppDSN(), testSchema)
	again, err := other.Bootstrap(ctx, moved(boot, "elsewhere"), "p1")
	if err != nil {
		t.Fatalf("second Bootstrap: %v", err)
	}
	if !reflect.DeepEqual(again, got) {
		t.Errorf("second Bootstrap returned %+v, want the catalog's %+v", again, got)
	}
	if n, err := other.Epoch(ctx); err != nil || n != 1 {
		t.Errorf("Epoch = %d, %v; want 1", n, err)
	}
	loaded, err := other.Load(ctx)
	if err != nil || !reflect.DeepEqual(loaded, got) {
		t.Errorf("Load = %+v, %v; want %+v", loaded, err, got)
	}
	if m, err := other.LoadEpoch(ctx, 1); err != nil || !reflect.DeepEqual(m, got) {
		t.Errorf("LoadEpoch(1) = %+v, %v", m, err)
	}
	if _, err := other.LoadEpoch(ctx, 2); !errors.Is(err, ErrNoMap) {
		t.Errorf("LoadEpoch(2) = %v, want ErrNoMap", err)
	}
	hist, err := cat.History(ctx, 0)
	if err != nil || len(hist) != 1 || hist[0].Epoch != 1 || hist[0].CreatedBy != "p0" ||
		hist[0].Reason != "bootstrap" || time.Since(hist[0].CreatedAt) > time.Minute {
		t.Errorf("History = %+v, %v", hist, err)
	}

	// The tables live in the schema of that exact (quoted) name, at the current version.
	db, err := pgx.Connect(ctx, w.AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var version int
	var mapJSON string
	q := fmt.Sprintf(`SELECT (SELECT max(version) FROM %[1]s.schema_version), (SELECT map::text FROM %[1]s.map_epochs)`,
		pgx.Identifier{testSchema}.Sanitize())
	if err := db.QueryRow(ctx, q).Scan(&version, &mapJSON); err != nil {
		t.Fatalf("reading the catalog tables directly: %v", err)
	}
	if version != SchemaVersion || SchemaVersion != len(cat.migrations()) {
		t.Errorf("schema version %d, SchemaVersion %d, %d migrations", version, SchemaVersion, len(cat.migrations()))
	}
	if _, err := decodeMap([]byte(mapJSON), 1); err != nil {
		t.Errorf("stored map: %v", err)
	}

	// An invalid map is refused before anything is touched.
	if _, err := cat.Bootstrap(ctx, &Map{}, "p2"); err == nil {
		t.Error("Bootstrap of an invalid map: no error")
	}
	// After Close every call fails with ErrClosed.
	cat.Close()
	if _, err := cat.Epoch(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Epoch after Close = %v, want ErrClosed", err)
	}
}

func TestCatalogConcurrentBootstrap(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := pgtest.New(t, pgtest.Options{}).Groups[0].Writer

	const nodes = 6
	cats := make([]*Catalog, nodes)
	candidates := make([]*Map, nodes)
	for i := range nodes {
		cats[i] = openCatalog(ctx, t, w.AppDSN(), "shardwire")
		candidates[i] = configMap(t, fmt.Sprintf("10.1.0.%d:5432", i+1))
	}
	results := make([]*Map, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			results[i], errs[i] = cats[i].Bootstrap(ctx, candidates[i], fmt.Sprintf("p%d", i))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Bootstrap: %v", i, err)
		}
	}
	winner := -1
	for i, c := range candidates {
		if reflect.DeepEqual(results[0], withEpoch(c, 1)) {
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("Bootstrap returned %+v, none of the candidates", results[0])
	}
	for i, r := range results {
		if !reflect.DeepEqual(r, results[0]) {
			t.Errorf("node %d got %+v, node 0 got %+v", i, r, results[0])
		}
	}
	hist, err := cats[0].History(ctx, 0)
	if err != nil || len(hist) != 1 || hist[0].CreatedBy != fmt.Sprintf("p%d", winner) {
		t.Errorf("History = %+v, %v; want one epoch by p%d", hist, err, winner)
	}
}

func TestCatalogPublish(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	cat := openCatalog(ctx, t, w.AppDSN(), testSchema)
	boot, err := cat.Bootstrap(ctx, configMap(t, w.Addr()), "p0")
	if err != nil {
		t.Fatal(err)
	}

	// Every published epoch is notified on EpochChannel.
	listener, err := pgx.Connect(ctx, w.AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+EpochChannel); err != nil {
		t.Fatal(err)
	}

	next := moved(boot, "g-new")
	next.Tables = map[string]string{"a": "b"}
	pub, err := cat.Publish(ctx, 1, next, "shardctl", "add g-new")
	if err != nil {
		t.Fatalf("Publish from epoch 1: %v", err)
	}
	if want := withEpoch(next, 2); !reflect.DeepEqual(pub, want) {
		t.Errorf("Publish returned %+v, want %+v", pub, want)
	}
	if loaded, err := cat.Load(ctx); err != nil || !reflect.DeepEqual(loaded, pub) {
		t.Errorf("Load after Publish = %+v, %v; want %+v", loaded, err, pub)
	}
	note, err := listener.WaitForNotification(ctx)
	if err != nil || note.Channel != EpochChannel || note.Payload != "2" {
		t.Errorf("notification %+v, %v; want %s with payload 2", note, err, EpochChannel)
	}

	// A stale publisher loses and stores nothing; the connection stays usable.
	_, err = cat.Publish(ctx, 1, moved(boot, "stale"), "p1", "stale")
	var conflict *EpochConflictError
	if !errors.Is(err, ErrEpochConflict) || !errors.As(err, &conflict) || conflict.Current != 2 || conflict.Expected != 1 {
		t.Fatalf("stale Publish = %v, want an epoch conflict naming epoch 2", err)
	}
	if n, err := cat.Epoch(ctx); err != nil || n != 2 {
		t.Errorf("Epoch after a lost Publish = %d, %v; want 2", n, err)
	}
	// Publishing from the future is as much a conflict as from the past.
	if _, err := cat.Publish(ctx, 5, next, "p1", "future"); !errors.Is(err, ErrEpochConflict) {
		t.Errorf("Publish from epoch 5 = %v, want a conflict", err)
	}
	// An invalid map is refused.
	if _, err := cat.Publish(ctx, 2, &Map{}, "p1", "broken"); err == nil || errors.Is(err, ErrEpochConflict) {
		t.Errorf("Publish of an invalid map = %v", err)
	}

	// Racing publishers from the same epoch, on separate connections: exactly one wins.
	const racers, rounds = 4, 5
	cats := make([]*Catalog, racers)
	for i := range cats {
		cats[i] = openCatalog(ctx, t, w.AppDSN(), testSchema)
	}
	prev := int64(2)
	for round := range rounds {
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, c := range cats {
			wg.Go(func() {
				<-start
				_, errs[i] = c.Publish(ctx, prev, moved(boot, fmt.Sprintf("r%d-%d", round, i)),
					fmt.Sprintf("racer%d", i), fmt.Sprintf("round %d", round))
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			var conflict *EpochConflictError
			switch {
			case err == nil:
				winners++
			case errors.As(err, &conflict) && conflict.Current == prev+1:
			default:
				t.Errorf("round %d racer %d: %v", round, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1 (%v)", round, winners, errs)
		}
		prev++
	}

	// History keeps every epoch, newest first.
	hist, err := cat.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != int(prev) {
		t.Fatalf("History has %d epochs, want %d: %+v", len(hist), prev, hist)
	}
	for i, h := range hist {
		if h.Epoch != prev-int64(i) || h.CreatedBy == "" || h.Reason == "" {
			t.Errorf("History[%d] = %+v", i, h)
		}
	}
	if hist[len(hist)-1].Reason != "bootstrap" || hist[len(hist)-2].Reason != "add g-new" {
		t.Errorf("oldest epochs: %+v", hist[len(hist)-2:])
	}
	if recent, err := cat.History(ctx, 2); err != nil || len(recent) != 2 || recent[0].Epoch != prev {
		t.Errorf("History(2) = %+v, %v", recent, err)
	}
	for e := int64(1); e <= prev; e++ {
		if m, err := cat.LoadEpoch(ctx, e); err != nil || m.Epoch != e {
			t.Errorf("LoadEpoch(%d) = %v, %v", e, m, err)
		}
	}
}

func TestOpenCatalogErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := OpenCatalog(ctx, "postgres://%zz", "", nil); err == nil {
		t.Error("OpenCatalog with a malformed DSN: no error")
	}
	// Nothing listens on port 1.
	if _, err := OpenCatalog(ctx, "postgres://app:app@127.0.0.1:1/app?sslmode=disable&connect_timeout=2", "", nil); err == nil {
		t.Error("OpenCatalog of an unreachable server: no error")
	}
}

// A catalog server that restarts between two calls costs no failed call: reads and
// transactions whose BEGIN hit the dead connection run again on a new one. While it is down,
// calls fail rather than hang.
func TestCatalogReconnect(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := pgtest.New(t, pgtest.Options{}).Groups[0].Writer
	reader := openCatalog(ctx, t, w.AppDSN(), "shardwire")
	writer := openCatalog(ctx, t, w.AppDSN(), "shardwire")
	boot, err := reader.Bootstrap(ctx, configMap(t, w.Addr()), "p0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Epoch(ctx); err != nil { // writer's connection is now in use and idle
		t.Fatal(err)
	}

	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Load(ctx); err == nil {
		t.Error("Load with the catalog server down: no error")
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := reader.Epoch(ctx); err != nil || n != 1 {
		t.Errorf("first Epoch after the restart = %d, %v", n, err)
	}
	if _, err := writer.Publish(ctx, 1, moved(boot, "g-new"), "p0", "after restart"); err != nil {
		t.Errorf("first Publish after the restart, on a connection from before it: %v", err)
	}

	// Again, with the server stopped and started while both connections sit idle.
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := reader.Load(ctx); err != nil || m.Epoch != 2 {
		t.Errorf("first Load after the restart = %v, %v", m, err)
	}
	if h, err := writer.History(ctx, 0); err != nil || len(h) != 2 {
		t.Errorf("first History after the restart = %v, %v", h, err)
	}
}
