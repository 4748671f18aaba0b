package proxy

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/internal/pgtest"
)

// TestPsqlSession runs testdata/psql_session.sql with psql direct and through the proxy and
// requires byte-identical output (stdout and stderr interleaved as psql writes them) and
// identical \copy output files (acceptance point 2 of issue 2).
func TestPsqlSession(t *testing.T) {
	psql := psqlPath(t)
	script, err := filepath.Abs(filepath.Join("testdata", "psql_session.sql"))
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = 2 })

	direct, directFile := runPsql(t, psql, script, p.cluster.Groups[0].Writer.Addr())
	proxied, proxiedFile := runPsql(t, psql, script, p.addr)
	if testing.Verbose() {
		t.Logf("direct output:\n%s", direct)
	}
	if d := transcriptDiff(strings.Split(direct, "\n"), strings.Split(proxied, "\n")); d != "" {
		t.Errorf("psql output through the proxy differs from direct (-direct +proxy):\n%s", d)
	}
	if !bytes.Equal(directFile, proxiedFile) {
		t.Errorf("\\copy output file differs:\ndirect:\n%q\nproxy:\n%q", directFile, proxiedFile)
	}
	// Sanity: the session really ran (a broken script would compare equal too).
	for _, want := range []string{"psql_line_sku", "still running", "division by zero", "psql-session", "from stdin"} {
		if !strings.Contains(direct, want) {
			t.Errorf("direct psql output lacks %q", want)
		}
	}
}

// runPsql runs the script against addr in a fresh working directory and returns psql's
// combined output and the file its \copy wrote.
func runPsql(t *testing.T, psql, script, addr string) (string, []byte) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", script,
		"-h", host, "-p", port, "-U", pgtest.User, pgtest.Database)
	cmd.Dir = dir
	cmd.Env = psqlEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("psql against %s: %v\n%s", addr, err, out.Bytes())
	}
	file, err := os.ReadFile(filepath.Join(dir, "psql_copy.out"))
	if err != nil {
		t.Errorf("psql against %s: %v", addr, err)
	}
	return out.String(), file
}

// psqlEnv is the environment without libpq variables that could change the session, plus the
// password and a fixed locale and time zone so both runs format alike.
func psqlEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG") && !strings.HasPrefix(kv, "TZ=") {
			env = append(env, kv)
		}
	}
	return append(env, "PGPASSWORD="+pgtest.Password, "PGCONNECT_TIMEOUT=10", "LANG=C.UTF-8", "PGTZ=UTC", "PAGER=cat", "PSQL_PAGER=cat")
}

// psqlPath finds psql next to the server binaries pgtest uses, else on PATH.
func psqlPath(t *testing.T) string {
	t.Helper()
	if dir, err := pgtest.BinDir(); err == nil {
		if p := filepath.Join(dir, "psql"); fileIsExecutable(p) {
			return p
		}
	}
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql not found next to the Postgres server binaries or on PATH: %v", err)
	}
	return p
}

func fileIsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
