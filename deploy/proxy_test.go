package deploy

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shardwire/shardwire/admin"
	"github.com/shardwire/shardwire/config"
)

// Names of the proxy's objects in kubernetes/shardwire.
const (
	proxyName          = "shardwire"
	proxyConfigMap     = "shardwire-config"
	proxyGossipService = "shardwire-gossip"
	renderContainer    = "render-config"
	templateKey        = "shardwire.yaml"
	renderScriptKey    = "render-config.sh"
	templateEnv        = "SHARDWIRE_CONFIG_TEMPLATE"
	renderedEnv        = "SHARDWIRE_CONFIG"
)

// Fake downward-API values the render test gives the init container.
const (
	fakePodName = "shardwire-7d9f8c6b5-x2k4q"
	fakePodIP   = "10.12.3.4"
)

// placeholder matches a dollar-brace placeholder of the configuration template.
var placeholder = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// rendered is the outcome of one run of render-config.sh.
type rendered struct {
	cfg    config.Config
	stderr string
	err    error
}

// renderProxyConfig runs the ConfigMap's render-config.sh with sh and awk on this machine, as the
// init container would: with its env, the pod fields faked, each Secret key's value from
// secretValue (nil: the value the Secret under kubernetes/ defines), and the template and output
// moved to a temporary directory. The output, when there is one, is parsed with config.Parse.
func renderProxyConfig(t *testing.T, m *manifests, secretValue func(secret, key string) string) rendered {
	t.Helper()
	for _, tool := range []string{"sh", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("render-config.sh needs %s on PATH: %v", tool, err)
		}
	}
	cm, ok := m.configMaps[proxyConfigMap]
	if !ok {
		t.Fatalf("no ConfigMap %s", proxyConfigMap)
	}
	dir := t.TempDir()
	template := filepath.Join(dir, templateKey)
	script := filepath.Join(dir, renderScriptKey)
	out := filepath.Join(dir, "out", "shardwire.yaml")
	if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	for file, key := range map[string]string{template: templateKey, script: renderScriptKey} {
		if err := os.WriteFile(file, []byte(cm.Data[key]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := m.deployment(t, proxyName)
	renderer := container(t, &d.Spec.Template.Spec, renderContainer)
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range renderer.Env {
		v := e.Value
		switch {
		case e.Name == templateEnv:
			v = template
		case e.Name == renderedEnv:
			v = out
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = fakePodName
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			v = fakePodIP
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if secretValue != nil {
				v = secretValue(ref.Name, ref.Key)
			} else if s, ok := m.secrets[ref.Name]; ok {
				v = s.StringData[ref.Key]
			}
		default:
			t.Fatalf("init container env %s: a source the test does not fake", e.Name)
		}
		env = append(env, e.Name+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", script)
	cmd.Env = env
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if _, statErr := os.Stat(out); statErr == nil {
			t.Errorf("render-config.sh failed (%v) but left %s behind", err, out)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "out", "*")); len(left) > 0 {
			t.Errorf("render-config.sh failed (%v) but left %v behind", err, left)
		}
		return rendered{stderr: stderr.String(), err: err}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("render-config.sh succeeded without writing %s: %v", out, err)
	}
	if fi, err := os.Stat(out); err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the rendered configuration holds credentials but has mode %v", fi.Mode().Perm())
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("the rendered configuration does not parse: %v\n%s", err, data)
	}
	return rendered{cfg: cfg, stderr: stderr.String()}
}

// trickySecrets returns secret values with every character the renderer must escape or pass
// through unchanged, and a valid 32-byte gossip key with a trailing line break (as
// `--from-file` of `openssl rand -base64 32 >key` stores it).
func trickySecrets(t *testing.T) (func(secret, key string) string, map[string]string) {
	t.Helper()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	values := map[string]string{
		"shardwire-credentials/app-password":         `pa"ss\wo'rd & $HOME ${X} /|#: {x}`,
		"shardwire-credentials/change-feed-password": "feed-secret",
		"shardwire-credentials/redis-password":       `r\\"`,
		"shardwire-credentials/catalog-dsn":          "postgres://shardwire:s%40cret@catalog-0.catalog.databases.svc.cluster.local:5432/shardwire_catalog?sslmode=verify-full",
		"shardwire-gossip-key/secret-key":            key + "\n",
	}
	return func(secret, k string) string {
		v, ok := values[secret+"/"+k]
		if !ok {
			t.Fatalf("the render test has no value for Secret %s key %s", secret, k)
		}
		return v
	}, values
}

func TestProxyConfigRenders(t *testing.T) {
	m := loadManifests(t)
	secrets, values := trickySecrets(t)
	r := renderProxyConfig(t, m, secrets)
	if r.err != nil {
		t.Fatalf("render-config.sh: %v\n%s", r.err, r.stderr)
	}
	cfg := r.cfg
	app, ok := cfg.User("app")
	if !ok {
		t.Fatal("no user app in the configuration")
	}
	if want := values["shardwire-credentials/app-password"]; app.Password != want {
		t.Errorf("app's password came out as %q, want %q", app.Password, want)
	}
	if want := values["shardwire-credentials/redis-password"]; cfg.Cache.Redis.Password != want {
		t.Errorf("the Redis password came out as %q, want %q", cfg.Cache.Redis.Password, want)
	}
	if want := values["shardwire-credentials/change-feed-password"]; cfg.Cache.ChangeFeedPassword != want {
		t.Errorf("the change feed password came out as %q, want %q", cfg.Cache.ChangeFeedPassword, want)
	}
	if want := values["shardwire-credentials/catalog-dsn"]; cfg.Catalog.DSN != want {
		t.Errorf("the catalog DSN came out as %q, want %q", cfg.Catalog.DSN, want)
	}
	key, err := cfg.Cluster.Key()
	if err != nil || len(key) != 32 {
		t.Errorf("the gossip key: %d bytes, %v; want the 32 bytes of the Secret", len(key), err)
	}
	if cfg.NodeName != fakePodName {
		t.Errorf("node_name = %q, want the pod's name %q (memberlist names must be unique)", cfg.NodeName, fakePodName)
	}
	if _, gossipPort := hostPort(t, "cluster.bind", cfg.Cluster.Bind); cfg.Cluster.Advertise != net.JoinHostPort(fakePodIP, strconv.Itoa(gossipPort)) {
		t.Errorf("cluster.advertise = %q, want the pod IP %s on the gossip port %d", cfg.Cluster.Advertise, fakePodIP, gossipPort)
	}
	if !cfg.Cache.Enabled() || len(cfg.Cache.Redis.Addrs) == 0 {
		t.Error("the cache is off or has no Redis: the deployment runs several nodes, whose cache needs Redis")
	}
	if len(cfg.Groups) < 2 {
		t.Errorf("%d groups: the example should shard over several", len(cfg.Groups))
	}
}

// TestProxyConfigTemplate checks the template's placeholders against the init container's env:
// each is set there, each env value is used, and each sits in a double-quoted YAML string, which
// is what the renderer escapes for.
func TestProxyConfigTemplate(t *testing.T) {
	m := loadManifests(t)
	cm := m.configMaps[proxyConfigMap]
	if cm == nil {
		t.Fatalf("no ConfigMap %s", proxyConfigMap)
	}
	used := map[string]bool{}
	for i, line := range strings.Split(cm.Data[templateKey], "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, match := range placeholder.FindAllStringSubmatch(line, -1) {
			used[match[1]] = true
		}
		if !strings.Contains(line, "${") {
			continue
		}
		_, value, _ := strings.Cut(line, ": ")
		if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' || strings.Count(value, `"`) != 2 {
			t.Errorf("template line %d %q: a placeholder must make up a double-quoted value", i+1, line)
		}
	}
	d := m.deployment(t, proxyName)
	renderer := container(t, &d.Spec.Template.Spec, renderContainer)
	for _, e := range renderer.Env {
		if e.Name == templateEnv || e.Name == renderedEnv {
			continue
		}
		if !used[e.Name] {
			t.Errorf("the init container sets %s, which the template does not use", e.Name)
		}
		delete(used, e.Name)
	}
	for name := range used {
		t.Errorf("the template uses %s, which the init container does not set", name)
	}
}

// TestProxyConfigRefusesBlankSecrets: with the empty values of secrets.example.yaml the renderer
// fails, names what is missing, and leaves no configuration behind.
func TestProxyConfigRefusesBlankSecrets(t *testing.T) {
	m := loadManifests(t)
	r := renderProxyConfig(t, m, nil)
	if r.err == nil {
		t.Fatal("render-config.sh succeeded with the blank example Secrets")
	}
	if !strings.Contains(r.stderr, "is empty or not set") {
		t.Errorf("the error does not say what is missing: %q", r.stderr)
	}
	secrets, _ := trickySecrets(t)
	r = renderProxyConfig(t, m, func(secret, key string) string {
		if key == "secret-key" {
			return "line one\nline two"
		}
		return secrets(secret, key)
	})
	if r.err == nil || !strings.Contains(r.stderr, "GOSSIP_KEY holds a line break") {
		t.Errorf("a value with an inner line break: err %v, stderr %q", r.err, r.stderr)
	}
}

// hostPort splits a host:port of the configuration.
func hostPort(t *testing.T, what, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	return host, port
}

// TestProxyDeployment checks the proxy's pod against its own configuration and against the admin
// listener's routes: ports, the config file's path, and probes that hit /readyz and /healthz on
// the admin port.
func TestProxyDeployment(t *testing.T) {
	m := loadManifests(t)
	secrets, _ := trickySecrets(t)
	r := renderProxyConfig(t, m, secrets)
	if r.err != nil {
		t.Fatalf("render-config.sh: %v\n%s", r.err, r.stderr)
	}
	cfg := r.cfg
	d := m.deployment(t, proxyName)
	spec := &d.Spec.Template.Spec
	c := container(t, spec, "shardwire")
	renderer := container(t, spec, renderContainer)

	if d.Spec.Replicas != nil {
		t.Errorf("spec.replicas = %d: the HorizontalPodAutoscaler owns the replica count", *d.Spec.Replicas)
	}
	adminHost, adminPort := hostPort(t, "admin_listen", cfg.AdminListen)
	listenHost, listenPort := hostPort(t, "listen", cfg.Listen)
	bindHost, gossipPort := hostPort(t, "cluster.bind", cfg.Cluster.Bind)
	for what, host := range map[string]string{"admin_listen": adminHost, "listen": listenHost, "cluster.bind": bindHost} {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			t.Errorf("%s host %q: in a pod it must listen on every address (0.0.0.0) for probes and peers to reach it", what, host)
		}
	}
	for name, want := range map[string]int{"postgres": listenPort, "admin": adminPort} {
		if got, ok := containerPort(spec, intstr.FromString(name), corev1.ProtocolTCP); !ok || int(got) != want {
			t.Errorf("container port %s = %d (found %v), want %d from the configuration", name, got, ok, want)
		}
	}
	for name, proto := range map[string]corev1.Protocol{"gossip-tcp": corev1.ProtocolTCP, "gossip-udp": corev1.ProtocolUDP} {
		if got, ok := containerPort(spec, intstr.FromString(name), proto); !ok || int(got) != gossipPort {
			t.Errorf("container port %s/%s = %d (found %v), want cluster.bind's %d", name, proto, got, ok, gossipPort)
		}
	}
	if got := d.Spec.Template.Annotations["prometheus.io/port"]; got != strconv.Itoa(adminPort) {
		t.Errorf("prometheus.io/port = %q, want the admin port %d", got, adminPort)
	}

	// The config file: rendered by the init container into the volume the proxy reads.
	var renderedPath string
	for _, e := range renderer.Env {
		if e.Name == renderedEnv {
			renderedPath = e.Value
		}
	}
	args := append(slices.Clone(c.Command), c.Args...)
	i := slices.Index(args, "--config")
	if !slices.Contains(args, "serve") || i < 0 || i+1 >= len(args) {
		t.Fatalf("the proxy runs %q, want shardwire serve --config FILE", args)
	}
	if args[i+1] != renderedPath {
		t.Errorf("the proxy reads %s, the init container writes %s", args[i+1], renderedPath)
	}
	mountOf := func(c *corev1.Container, file string) *corev1.VolumeMount {
		for i := range c.VolumeMounts {
			if path.Dir(file) == c.VolumeMounts[i].MountPath {
				return &c.VolumeMounts[i]
			}
		}
		return nil
	}
	initMount, proxyMount := mountOf(renderer, renderedPath), mountOf(c, renderedPath)
	switch {
	case initMount == nil || proxyMount == nil:
		t.Errorf("%s is not on a volume both containers mount", renderedPath)
	case initMount.Name != proxyMount.Name || initMount.ReadOnly || !proxyMount.ReadOnly:
		t.Errorf("the config volume: init mounts %s (read-only %v), proxy %s (read-only %v)", initMount.Name, initMount.ReadOnly, proxyMount.Name, proxyMount.ReadOnly)
	default:
		for _, v := range spec.Volumes {
			if v.Name == proxyMount.Name && (v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory) {
				t.Errorf("volume %s holds the rendered credentials: it must be an in-memory emptyDir", v.Name)
			}
		}
	}

	// Probes: on the admin port, at the admin listener's readiness and liveness routes.
	probes := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}
	wantPath := map[string]string{"readiness": "/readyz", "liveness": "/healthz", "startup": "/healthz"}
	for kind, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET on the admin listener", kind)
			continue
		}
		if p.HTTPGet.Path != wantPath[kind] {
			t.Errorf("%s probe path %s, want %s", kind, p.HTTPGet.Path, wantPath[kind])
		}
		if got, ok := containerPort(spec, p.HTTPGet.Port, corev1.ProtocolTCP); !ok || int(got) != adminPort {
			t.Errorf("%s probe port %s is %d (found %v), want the admin port %d", kind, p.HTTPGet.Port.String(), got, ok, adminPort)
		}
		timeout := max(p.TimeoutSeconds, 1) // Kubernetes' default is 1s
		if kind == "readiness" && time.Duration(timeout)*time.Second <= admin.ReadyTimeout {
			t.Errorf("readiness probe timeout %ds does not exceed admin.ReadyTimeout %v: a slow check would read as a failure", timeout, admin.ReadyTimeout)
		}
	}
	checkAdminRoutes(t, wantPath)
}

// checkAdminRoutes asks a real admin server for each probe's path: readiness follows the node's
// ready check, liveness does not (a node whose catalog is away must not be restarted for it).
func checkAdminRoutes(t *testing.T, paths map[string]string) {
	t.Helper()
	get := func(ready func(context.Context) error, path string) int {
		h := admin.New(admin.Config{}, nil, prometheus.NewRegistry(), ready).Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	notReady := func(context.Context) error { return errors.New("lease expired") }
	for kind, p := range paths {
		if code := get(nil, p); code != http.StatusOK {
			t.Errorf("%s probe: GET %s on a ready node = %d, want 200", kind, p, code)
		}
		code := get(notReady, p)
		switch kind {
		case "readiness":
			if code != http.StatusServiceUnavailable {
				t.Errorf("readiness probe: GET %s on a node that is not ready = %d, want 503", p, code)
			}
		default:
			if code != http.StatusOK {
				t.Errorf("%s probe: GET %s on a node that is not ready = %d, want 200", kind, p, code)
			}
		}
	}
}

// TestProxyServices checks the client Service and the headless gossip Service against the
// configuration: cluster.join_dns is the gossip Service's name and lists pods before they are
// ready, and clients reach the listen port.
func TestProxyServices(t *testing.T) {
	m := loadManifests(t)
	secrets, _ := trickySecrets(t)
	r := renderProxyConfig(t, m, secrets)
	if r.err != nil {
		t.Fatalf("render-config.sh: %v\n%s", r.err, r.stderr)
	}
	cfg := r.cfg
	_, gossipPort := hostPort(t, "cluster.bind", cfg.Cluster.Bind)
	spec := &m.deployment(t, proxyName).Spec.Template.Spec

	g, ok := m.services[proxyGossipService]
	if !ok {
		t.Fatalf("no Service %s", proxyGossipService)
	}
	if g.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s: clusterIP %q, want None (headless: its name resolves to the pods)", g.Name, g.Spec.ClusterIP)
	}
	if !g.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: publishNotReadyAddresses must be true, or starting nodes cannot find each other", g.Name)
	}
	if want := g.Name + "." + g.Namespace + ".svc.cluster.local"; cfg.Cluster.JoinDNS != want {
		t.Errorf("cluster.join_dns = %q, want the gossip Service %q", cfg.Cluster.JoinDNS, want)
	}
	if cfg.Cluster.JoinDNSPort != 0 && cfg.Cluster.JoinDNSPort != gossipPort {
		t.Errorf("cluster.join_dns_port = %d, want the gossip port %d", cfg.Cluster.JoinDNSPort, gossipPort)
	}
	protocols := map[corev1.Protocol]bool{}
	for _, p := range g.Spec.Ports {
		got, ok := containerPort(spec, p.TargetPort, p.Protocol)
		if ok && int(got) == gossipPort && int(p.Port) == gossipPort {
			protocols[p.Protocol] = true
		}
	}
	if !protocols[corev1.ProtocolTCP] || !protocols[corev1.ProtocolUDP] {
		t.Errorf("Service %s: gossip port %d over %v, want TCP and UDP", g.Name, gossipPort, protocols)
	}

	client, ok := m.services[proxyName]
	if !ok {
		t.Fatalf("no client Service %s", proxyName)
	}
	_, listenPort := hostPort(t, "listen", cfg.Listen)
	found := false
	for _, p := range client.Spec.Ports {
		if got, ok := containerPort(spec, p.TargetPort, p.Protocol); ok && int(got) == listenPort && p.Port == 6432 {
			found = true
		}
	}
	if !found {
		t.Errorf("Service %s: no port 6432 to the proxy's listen port %d", client.Name, listenPort)
	}
	if client.Spec.ClusterIP == corev1.ClusterIPNone || client.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s must balance over ready nodes only", client.Name)
	}
}

// checkCPUAutoscaler checks an HPA: it scales the named Deployment between min and max on CPU at
// utilization percent, and every container of the Deployment requests CPU (the utilization's
// base).
func checkCPUAutoscaler(t *testing.T, m *manifests, name string, minReplicas, maxReplicas, utilization int32) {
	t.Helper()
	h, ok := m.hpas[name]
	if !ok {
		t.Fatalf("no HorizontalPodAutoscaler %s", name)
	}
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != name {
		t.Errorf("HPA %s scales %s %s %s, want apps/v1 Deployment %s", name, ref.APIVersion, ref.Kind, ref.Name, name)
	}
	d := m.deployment(t, ref.Name)
	if h.Spec.MinReplicas == nil {
		t.Errorf("HPA %s: no minReplicas, want %d", name, minReplicas)
	} else if *h.Spec.MinReplicas != minReplicas || h.Spec.MaxReplicas != maxReplicas {
		t.Errorf("HPA %s: replicas %d..%d, want %d..%d", name, *h.Spec.MinReplicas, h.Spec.MaxReplicas, minReplicas, maxReplicas)
	}
	if len(h.Spec.Metrics) != 1 {
		t.Fatalf("HPA %s: %d metrics, want CPU alone", name, len(h.Spec.Metrics))
	}
	metric := h.Spec.Metrics[0]
	if metric.Type != autoscalingv2.ResourceMetricSourceType || metric.Resource == nil || metric.Resource.Name != corev1.ResourceCPU ||
		metric.Resource.Target.Type != autoscalingv2.UtilizationMetricType || metric.Resource.Target.AverageUtilization == nil ||
		*metric.Resource.Target.AverageUtilization != utilization {
		t.Errorf("HPA %s: metric %+v, want CPU at %d%% average utilization", name, metric, utilization)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("Deployment %s container %s requests no CPU: the HPA's utilization has no base", d.Name, c.Name)
		}
	}
}

func TestProxyAutoscaler(t *testing.T) {
	m := loadManifests(t)
	checkCPUAutoscaler(t, m, proxyName, 10, 100, 70)
}
