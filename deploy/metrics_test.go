package deploy

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the module's root, relative to this package.
const repoRoot = ".."

// metricPrefixes are the prefixes of the metrics the code exports (and of the recording rules,
// which use "shardwire:").
var metricPrefixes = regexp.MustCompile(`^(shardwire|invoiced)[_:]`)

// exportedMetrics returns every series name the code can export: the Name of each
// prometheus.{Counter,Gauge,Histogram,Summary}Opts literal and the name of each
// prometheus.NewDesc, with _bucket, _sum and _count for histograms and _sum and _count for
// summaries. Test files and this directory are skipped.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "deploy", "testdata", "vendor", "node_modules", ".git", ".dev":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(src, []byte("prometheus.")) {
			return nil
		}
		file, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				kind := selectorName(n.Type, "prometheus")
				suffixes := map[string][]string{
					"CounterOpts":   {""},
					"GaugeOpts":     {""},
					"HistogramOpts": {"_bucket", "_sum", "_count"},
					"SummaryOpts":   {"", "_sum", "_count"},
				}[kind]
				if suffixes == nil {
					return true
				}
				for _, elt := range n.Elts {
					kv, ok := elt.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if key, ok := kv.Key.(*ast.Ident); !ok || key.Name != "Name" {
						continue
					}
					if name, ok := stringLiteral(kv.Value); ok {
						for _, s := range suffixes {
							names[name+s] = true
						}
					}
				}
			case *ast.CallExpr:
				if selectorName(n.Fun, "prometheus") == "NewDesc" && len(n.Args) > 0 {
					if name, ok := stringLiteral(n.Args[0]); ok {
						names[name] = true
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("read the code's metrics: %v", err)
	}
	// The test must be able to fail: it has to find the metrics the rules are built on.
	for _, must := range []string{"shardwire_errors_total", "shardwire_query_duration_seconds_bucket", "shardwire_pool_size"} {
		if !names[must] {
			t.Fatalf("found %d metric names in the code but not %s: has the way metrics are defined changed?", len(names), must)
		}
	}
	return names
}

// selectorName returns Sel of pkg.Sel, or "".
func selectorName(e ast.Expr, pkg string) string {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if id, ok := sel.X.(*ast.Ident); !ok || id.Name != pkg {
		return ""
	}
	return sel.Sel.Name
}

// stringLiteral returns the value of a string literal.
func stringLiteral(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

var (
	// promqlString matches a PromQL string literal.
	promqlString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	// promqlIdentifier matches a PromQL identifier (metric, label, function or keyword).
	promqlIdentifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// metricNames returns the shardwire and invoiced metric names (and recording rule names) an
// expression refers to, in order of appearance, without repeats. String literals (label values,
// regular expressions) are skipped.
func metricNames(expr string) []string {
	expr = promqlString.ReplaceAllString(expr, `""`)
	var names []string
	for _, id := range promqlIdentifier.FindAllString(expr, -1) {
		if metricPrefixes.MatchString(id) && !slices.Contains(names, id) {
			names = append(names, id)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (le) (rate(shardwire_query_duration_seconds_bucket{job="shardwire_x"}[5m]))`: {"shardwire_query_duration_seconds_bucket"},
		`shardwire:error_ratio:rate5m > 0.01`:                                                {"shardwire:error_ratio:rate5m"},
		`a_total / ignoring (state) shardwire_pool_size{namespace=~"$namespace"}`:            {"shardwire_pool_size"},
		`invoiced_http_requests_in_flight + shardwire_clients_active`:                        {"invoiced_http_requests_in_flight", "shardwire_clients_active"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}
