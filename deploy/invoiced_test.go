package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Where invoiced's flags and routes are defined, relative to this package.
const (
	invoicedMain    = "../cmd/invoiced/main.go"
	invoicedRoutes  = "../invoiceapp/httpapi/api.go"
	invoicedService = "../invoiceapp/service/service.go"
	invoicedName    = "invoiced"
	invoicedConfig  = "invoiced-config"
)

// invoicedFlags reads cmd/invoiced's flag definitions (f.StringVar(&v, "name", ...) and the
// like) and its environment prefix, and returns each flag's environment variable with the
// flag's type (the pflag method's name without "Var").
func invoicedFlags(t *testing.T) map[string]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), invoicedMain, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", invoicedMain, err)
	}
	prefix := ""
	types := map[string]string{}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if name.Name == "envPrefix" && i < len(n.Values) {
					if lit, ok := n.Values[i].(*ast.BasicLit); ok {
						prefix, _ = strconv.Unquote(lit.Value)
					}
				}
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Var") || len(n.Args) < 2 {
				return true
			}
			lit, ok := n.Args[1].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, _ := strconv.Unquote(lit.Value)
			types[name] = strings.TrimSuffix(sel.Sel.Name, "Var")
		}
		return true
	})
	if prefix == "" || len(types) < 5 {
		t.Fatalf("%s: found env prefix %q and flags %v; has the way flags are defined changed?", invoicedMain, prefix, types)
	}
	env := map[string]string{}
	for name, typ := range types {
		env[prefix+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = typ
	}
	return env
}

// checkFlagValue checks that value parses as a flag of pflag type typ.
func checkFlagValue(typ, value string) error {
	var err error
	switch typ {
	case "String":
	case "Bool":
		_, err = strconv.ParseBool(value)
	case "Int":
		_, err = strconv.Atoi(value)
	case "Int32":
		_, err = strconv.ParseInt(value, 10, 32)
	case "Duration":
		_, err = time.ParseDuration(value)
	default:
		return nil
	}
	return err
}

// TestInvoicedConfig checks invoiced's ConfigMap and env against the flags cmd/invoiced defines:
// each variable names a flag, its value parses as that flag's type, and the DSN comes from a
// Secret.
func TestInvoicedConfig(t *testing.T) {
	m := loadManifests(t)
	flags := invoicedFlags(t)
	cm, ok := m.configMaps[invoicedConfig]
	if !ok {
		t.Fatalf("no ConfigMap %s", invoicedConfig)
	}
	for k, v := range cm.Data {
		typ, ok := flags[k]
		if !ok {
			t.Errorf("ConfigMap %s: %s is no flag's variable", invoicedConfig, k)
			continue
		}
		if err := checkFlagValue(typ, v); err != nil {
			t.Errorf("ConfigMap %s: %s=%q is not a valid %s: %v", invoicedConfig, k, v, typ, err)
		}
	}
	if _, ok := cm.Data["INVOICED_DSN"]; ok {
		t.Error("the DSN holds a password: it belongs in a Secret, not the ConfigMap")
	}
	d := m.deployment(t, invoicedName)
	spec := &d.Spec.Template.Spec
	c := container(t, spec, invoicedName)
	dsnFromSecret := false
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "INVOICED_") {
			if _, ok := flags[e.Name]; !ok {
				t.Errorf("env %s is no flag's variable", e.Name)
			}
		}
		if e.Name == "INVOICED_DSN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			dsnFromSecret = true
		}
	}
	if !dsnFromSecret {
		t.Error("INVOICED_DSN does not come from a Secret")
	}

	_, port, err := net.SplitHostPort(cm.Data["INVOICED_LISTEN"])
	if err != nil {
		t.Fatalf("INVOICED_LISTEN: %v", err)
	}
	want, _ := strconv.Atoi(port)
	if got, ok := containerPort(spec, intstr.FromString("http"), corev1.ProtocolTCP); !ok || int(got) != want {
		t.Errorf("container port http = %d (found %v), want INVOICED_LISTEN's %d", got, ok, want)
	}
	if got := d.Spec.Template.Annotations["prometheus.io/port"]; got != port {
		t.Errorf("prometheus.io/port = %q, want %s", got, port)
	}
}

// TestInvoicedProbes: readiness asks /healthz, which pings the database through shardwire;
// liveness only checks that the process listens, so a database outage does not restart every
// instance.
func TestInvoicedProbes(t *testing.T) {
	m := loadManifests(t)
	d := m.deployment(t, invoicedName)
	spec := &d.Spec.Template.Spec
	c := container(t, spec, invoicedName)
	routes, err := os.ReadFile(invoicedRoutes)
	if err != nil {
		t.Fatal(err)
	}
	service, err := os.ReadFile(invoicedService)
	if err != nil {
		t.Fatal(err)
	}
	httpPort, _ := containerPort(spec, intstr.FromString("http"), corev1.ProtocolTCP)
	p := c.ReadinessProbe
	if p == nil || p.HTTPGet == nil {
		t.Fatal("readiness probe: want an HTTP GET")
	}
	if !strings.Contains(string(routes), `"GET `+p.HTTPGet.Path+`"`) {
		t.Errorf("readiness probe path %s is not a route of %s", p.HTTPGet.Path, invoicedRoutes)
	}
	if got, ok := containerPort(spec, p.HTTPGet.Port, corev1.ProtocolTCP); !ok || got != httpPort {
		t.Errorf("readiness probe port %s, want the http port", p.HTTPGet.Port.String())
	}
	for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil || p.TCPSocket == nil {
			t.Errorf("%s probe: want a TCP check of the http port (not /healthz, which asks the database)", kind)
			continue
		}
		if got, ok := containerPort(spec, p.TCPSocket.Port, corev1.ProtocolTCP); !ok || got != httpPort {
			t.Errorf("%s probe port %s, want the http port", kind, p.TCPSocket.Port.String())
		}
	}
	metricsPath := d.Spec.Template.Annotations["prometheus.io/path"]
	if !strings.Contains(string(service), `"GET `+metricsPath+`"`) {
		t.Errorf("prometheus.io/path %q is not a route of %s", metricsPath, invoicedService)
	}
}

func TestInvoicedAutoscaler(t *testing.T) {
	m := loadManifests(t)
	checkCPUAutoscaler(t, m, invoicedName, 3, 30, 70)
}
