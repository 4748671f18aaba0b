package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The rules and their promtool unit tests, relative to this package.
const (
	rulesFile     = "prometheus/shardwire-rules.yaml"
	rulesTestFile = "prometheus/shardwire-rules.test.yaml"
)

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

// rule is a recording or an alerting rule.
type rule struct {
	Record      string            `json:"record"`
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// ruleTestFile is the part of a promtool test file this package reads.
type ruleTestFile struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			EvalTime  string           `json:"eval_time"`
			Alertname string           `json:"alertname"`
			ExpAlerts []map[string]any `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// readRules decodes the rule file strictly.
func readRules(t *testing.T) ruleFile {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(data, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

// promtool returns promtool's path, failing the test when it is not installed.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (%v): run scripts/deps.sh as root, or apt-get install prometheus", err)
	}
	return p
}

// runPromtool runs promtool with args in dir and fails the test with its output when it fails.
func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	out := runPromtool(t, filepath.Dir(rulesFile), "check", "rules", filepath.Base(rulesFile))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules did not report success:\n%s", out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	out := runPromtool(t, filepath.Dir(rulesTestFile), "test", "rules", filepath.Base(rulesTestFile))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules did not report success:\n%s", out)
	}
}

// TestPlatformAlerts checks that the platform's alerts exist with their thresholds, durations and
// severities, and that the unit tests make every alert fire at least once.
func TestPlatformAlerts(t *testing.T) {
	rf := readRules(t)
	alerts := map[string]rule{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts[r.Alert] = r
			}
		}
	}
	for _, want := range []struct {
		alert, exprHas, forDuration, severity string
	}{
		{"ShardwireHighErrorRate", "> 0.01", "5m", "critical"},
		{"ShardwireHighLatency", "> 0.5", "5m", "warning"},
		{"ShardwireCacheHitRateLow", "< 0.8", "10m", "warning"},
		{"ShardwireServerConnectionsSaturated", "> 0.9", "2m", "critical"},
		{"ShardwireReplicaLagHigh", "> 1", "", "warning"},
	} {
		r, ok := alerts[want.alert]
		switch {
		case !ok:
			t.Errorf("alert %s is missing", want.alert)
		case !strings.Contains(r.Expr, want.exprHas):
			t.Errorf("alert %s: expr %q lacks %q", want.alert, r.Expr, want.exprHas)
		case want.forDuration != "" && r.For != want.forDuration:
			t.Errorf("alert %s: for %q, want %q", want.alert, r.For, want.forDuration)
		case r.Labels["severity"] != want.severity:
			t.Errorf("alert %s: severity %q, want %q", want.alert, r.Labels["severity"], want.severity)
		}
	}
	for name, r := range alerts {
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s: needs a summary and a description", name)
		}
		switch r.Labels["severity"] {
		case "critical", "warning":
		default:
			t.Errorf("alert %s: severity %q, want critical or warning", name, r.Labels["severity"])
		}
	}

	data, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf ruleTestFile
	if err := yaml.Unmarshal(data, &tf); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	fired := map[string]bool{}
	for _, tc := range tf.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fired[at.Alertname] = true
			}
		}
	}
	for name := range alerts {
		if !fired[name] {
			t.Errorf("alert %s never fires in %s", name, rulesTestFile)
		}
	}
}

// TestRulesUseExportedMetrics checks that every metric a rule reads is exported by the code or
// recorded by an earlier rule.
func TestRulesUseExportedMetrics(t *testing.T) {
	rf := readRules(t)
	known := exportedMetrics(t)
	checked := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("rule %s: reads no shardwire metric: %s", name, r.Expr)
			}
			for _, n := range names {
				checked++
				if !known[n] {
					t.Errorf("rule %s reads %s, which neither the code exports nor an earlier rule records", name, n)
				}
			}
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	if checked == 0 {
		t.Fatal("no metric checked")
	}
}
