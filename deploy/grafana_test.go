package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dashboardFile is the Grafana dashboard, relative to this package.
const dashboardFile = "grafana/shardwire.json"

// dashboard is the part of a Grafana dashboard this package checks.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

// panel is one dashboard panel.
type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

// datasource names a panel's or a query's data source.
type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// readDashboard decodes the dashboard.
func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVariable matches the Grafana variables the dashboard's queries use.
var grafanaVariable = regexp.MustCompile(`\$(__rate_interval|__interval|__range|namespace)\b`)

// asPromQL replaces the dashboard's Grafana variables with values Prometheus accepts.
func asPromQL(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		if v == "$namespace" {
			return ".*"
		}
		return "5m"
	})
}

func TestGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Error("no datasource variable: the dashboard would be tied to one Prometheus")
	}
	known := exportedMetrics(t)
	for _, r := range readRules(t).Groups {
		for _, rr := range r.Rules {
			if rr.Record != "" {
				known[rr.Record] = true
			}
		}
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			names := metricNames(q.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q query %s reads no shardwire metric: %s", p.Title, q.RefID, q.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !known[n] {
					t.Errorf("panel %q query %s reads %s, which neither the code exports nor a rule records", p.Title, q.RefID, n)
				}
			}
			if rest := grafanaVariable.ReplaceAllString(q.Expr, ""); strings.Contains(rest, "$") {
				t.Errorf("panel %q query %s uses a variable the dashboard does not define: %s", p.Title, q.RefID, q.Expr)
			}
			exprs = append(exprs, asPromQL(q.Expr))
		}
	}
	// What operators look at: throughput, errors, latency, pools, client wait, replicas, the
	// cache by layer, gossip, the shard map, moves and two-phase commits.
	for _, want := range []string{
		"shardwire_query_duration_seconds_count", "shardwire_errors_total", "shardwire_query_duration_seconds_bucket",
		"shardwire_pool_servers", "shardwire_pool_size", "shardwire_client_wait_seconds_bucket",
		"shardwire_replica_lag_seconds", "shardwire_cache_hits_total", "shardwire_cache_misses_total",
		"shardwire_cache_evictions_total", "shardwire_cluster_members", "shardwire_shardmap_epoch",
		"shardwire_shardmap_shards", "shardwire_move_buffered_statements", "shardwire_multigroup_commits_total",
		"shardwire_twopc_commit_seconds_bucket",
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	checkPromQL(t, exprs)
}

// checkPromQL has promtool parse each expression, as recording rules of a throwaway rule file.
func checkPromQL(t *testing.T, exprs []string) {
	t.Helper()
	type recording struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []recording
	for i, e := range exprs {
		rules = append(rules, recording{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: e})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := runPromtool(t, dir, "check", "rules", "dashboard.yaml")
	if want := fmt.Sprintf("%d rules found", len(exprs)); !strings.Contains(out, want) {
		t.Errorf("promtool checked the dashboard's queries but did not report %q:\n%s", want, out)
	}
	if slices.Contains(exprs, "") {
		t.Error("a query is empty")
	}
}
