package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifestDir holds every Kubernetes manifest, relative to this package.
const manifestDir = "kubernetes"

// namespace is where every namespaced object lives.
const namespace = "shardwire"

// newObject returns an empty value of the API type for apiVersion and kind; false for a kind
// the manifests are not expected to hold.
func newObject(apiVersion, kind string) (metav1.Object, bool) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	}
	return nil, false
}

// document is one YAML document of a manifest file, decoded.
type document struct {
	source string // file:index, for messages
	kind   string
	obj    metav1.Object
}

// decodeDocument decodes one YAML document strictly into the API type its apiVersion and kind
// name: unknown and duplicate fields are errors, and so is any field whose name matches only
// case-insensitively (checked by re-encoding the typed value and comparing). A document with
// nothing but comments yields nil.
func decodeDocument(doc []byte) (metav1.Object, string, error) {
	var generic any
	if err := yaml.Unmarshal(doc, &generic); err != nil {
		return nil, "", fmt.Errorf("parse YAML: %w", err)
	}
	if generic == nil {
		return nil, "", nil
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, "", fmt.Errorf("read apiVersion and kind: %w", err)
	}
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return nil, "", fmt.Errorf("apiVersion %q kind %q is not a type these manifests may use", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, "", fmt.Errorf("%s: %w", tm.Kind, err)
	}
	encoded, err := json.Marshal(obj)
	if err != nil {
		return nil, "", fmt.Errorf("%s: re-encode: %w", tm.Kind, err)
	}
	var roundTrip any
	if err := json.Unmarshal(encoded, &roundTrip); err != nil {
		return nil, "", fmt.Errorf("%s: re-decode: %w", tm.Kind, err)
	}
	if err := covers(generic, roundTrip, ""); err != nil {
		return nil, "", fmt.Errorf("%s: a field does not survive decoding into the API type: %w", tm.Kind, err)
	}
	return obj, tm.Kind, nil
}

// covers checks that every field and value of in appears in out unchanged: decoding in into an
// API type and encoding it again lost or renamed nothing.
func covers(in, out any, path string) error {
	switch in := in.(type) {
	case map[string]any:
		o, ok := out.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: an object became %T", path, out)
		}
		for k, v := range in {
			ov, ok := o[k]
			if !ok && isZero(v) {
				continue // an explicit zero value that the API type omits when encoding
			}
			if !ok {
				return fmt.Errorf("%s.%s: dropped (misspelt or wrongly cased field?)", path, k)
			}
			if err := covers(v, ov, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		o, ok := out.([]any)
		if !ok || len(o) != len(in) {
			return fmt.Errorf("%s: a list of %d became %v", path, len(in), out)
		}
		for i := range in {
			if err := covers(in[i], o[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if !reflect.DeepEqual(in, out) {
		return fmt.Errorf("%s: %v (%T) became %v (%T)", path, in, in, out, out)
	}
	return nil
}

// isZero reports whether a decoded JSON value is null, false, 0, "" or empty.
func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// splitDocuments returns the YAML documents of data.
func splitDocuments(data []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
}

// manifests are every object defined under kubernetes/, by kind and name.
type manifests struct {
	docs            []document
	namespaces      map[string]*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	services        map[string]*corev1.Service
	deployments     map[string]*appsv1.Deployment
	pdbs            map[string]*policyv1.PodDisruptionBudget
	hpas            map[string]*autoscalingv2.HorizontalPodAutoscaler
	networkPolicies map[string]*networkingv1.NetworkPolicy
}

// loadManifests decodes every document of every .yaml file under kubernetes/, failing the test
// on the first that does not decode strictly or that repeats a kind and name.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{
		namespaces:      map[string]*corev1.Namespace{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		configMaps:      map[string]*corev1.ConfigMap{},
		secrets:         map[string]*corev1.Secret{},
		services:        map[string]*corev1.Service{},
		deployments:     map[string]*appsv1.Deployment{},
		pdbs:            map[string]*policyv1.PodDisruptionBudget{},
		hpas:            map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		networkPolicies: map[string]*networkingv1.NetworkPolicy{},
	}
	var files []string
	err := filepath.WalkDir(manifestDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list manifests: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests under %s", manifestDir)
	}
	seen := map[string]string{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := splitDocuments(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i, doc := range docs {
			source := fmt.Sprintf("%s#%d", file, i)
			obj, kind, err := decodeDocument(doc)
			if err != nil {
				t.Fatalf("%s: %v", source, err)
			}
			if obj == nil {
				continue
			}
			key := kind + "/" + obj.GetName()
			if prev, dup := seen[key]; dup {
				t.Fatalf("%s: %s is defined twice (also in %s)", source, key, prev)
			}
			seen[key] = source
			m.docs = append(m.docs, document{source: source, kind: kind, obj: obj})
			switch o := obj.(type) {
			case *corev1.Namespace:
				m.namespaces[o.Name] = o
			case *corev1.ServiceAccount:
				m.serviceAccounts[o.Name] = o
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.Service:
				m.services[o.Name] = o
			case *appsv1.Deployment:
				m.deployments[o.Name] = o
			case *policyv1.PodDisruptionBudget:
				m.pdbs[o.Name] = o
			case *autoscalingv2.HorizontalPodAutoscaler:
				m.hpas[o.Name] = o
			case *networkingv1.NetworkPolicy:
				m.networkPolicies[o.Name] = o
			}
		}
	}
	return m
}

// deployment returns the named Deployment or fails the test.
func (m *manifests) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, ok := m.deployments[name]
	if !ok {
		t.Fatalf("no Deployment %q in %s", name, manifestDir)
	}
	return d
}

// container returns the named container of a pod spec or fails the test.
func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == name {
			return &spec.InitContainers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

// containerPort resolves a port given by number or name against the containers of spec; ok is
// false when a name matches no container port or the protocol differs.
func containerPort(spec *corev1.PodSpec, port intstr.IntOrString, protocol corev1.Protocol) (int32, bool) {
	if protocol == "" {
		protocol = corev1.ProtocolTCP
	}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if pp != protocol {
				continue
			}
			if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// podsSelected returns the names of the Deployments whose pods sel selects.
func (m *manifests) podsSelected(sel labels.Selector) []string {
	var names []string
	for name, d := range m.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	kinds := map[string]int{}
	for _, d := range m.docs {
		kinds[d.kind]++
		name := d.obj.GetName()
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%s: name %q: %v", d.source, name, errs)
		}
		if d.kind != "Namespace" && d.obj.GetNamespace() != namespace {
			t.Errorf("%s: %s %s is in namespace %q, want %q", d.source, d.kind, name, d.obj.GetNamespace(), namespace)
		}
		for k, v := range d.obj.GetLabels() {
			if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
				t.Errorf("%s: label %s=%s: %v", d.source, k, v, errs)
			}
		}
	}
	if _, ok := m.namespaces[namespace]; !ok {
		t.Errorf("the Namespace %q is not defined", namespace)
	}
	for _, want := range []string{"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if kinds[want] == 0 {
			t.Errorf("no %s defined", want)
		}
	}
	for name, d := range m.deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Errorf("Deployment %s: selector: %v", name, err)
			continue
		}
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: its selector %s does not select its own pods %v", name, sel, d.Spec.Template.Labels)
		}
		if got := m.podsSelected(sel); len(got) != 1 {
			t.Errorf("Deployment %s: its selector %s selects the pods of %v", name, sel, got)
		}
		for _, c := range append(slices.Clone(d.Spec.Template.Spec.InitContainers), d.Spec.Template.Spec.Containers...) {
			for _, p := range c.Ports {
				if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
					t.Errorf("Deployment %s container %s: port name %q: %v", name, c.Name, p.Name, errs)
				}
			}
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("Deployment %s container %s: allowPrivilegeEscalation must be false", name, c.Name)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Errorf("Deployment %s container %s: no memory limit", name, c.Name)
			}
		}
	}
}

// TestStrictDecodingRejectsMistakes proves the decoder used above would catch the mistakes it
// is there for.
func TestStrictDecodingRejectsMistakes(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n    - port: 1\n"
	if _, _, err := decodeDocument([]byte(good)); err != nil {
		t.Fatalf("a valid Service: %v", err)
	}
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  portz:\n    - port: 1\n",
		"wrong case":      "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nSpec:\n  ports:\n    - port: 1\n",
		"duplicate field": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  name: t\n",
		"wrong type":      "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n    - port: [1]\n",
		"unknown kind":    "apiVersion: v1\nkind: Servic\nmetadata:\n  name: s\n",
		"old apiVersion":  "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\n",
	} {
		if _, _, err := decodeDocument([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// TestReferencesResolve checks that every Secret, ConfigMap and ServiceAccount a pod reads is
// defined under kubernetes/, with the keys it reads.
func TestReferencesResolve(t *testing.T) {
	m := loadManifests(t)
	secretKey := func(where, name, key string) {
		s, ok := m.secrets[name]
		if !ok {
			t.Errorf("%s: Secret %q is not defined", where, name)
			return
		}
		if _, ok := s.StringData[key]; !ok {
			if _, ok := s.Data[key]; !ok && key != "" {
				t.Errorf("%s: Secret %s has no key %q", where, name, key)
			}
		}
	}
	configMapKey := func(where, name, key string) {
		c, ok := m.configMaps[name]
		if !ok {
			t.Errorf("%s: ConfigMap %q is not defined", where, name)
			return
		}
		if _, ok := c.Data[key]; !ok && key != "" {
			t.Errorf("%s: ConfigMap %s has no key %q", where, name, key)
		}
	}
	refs := 0
	for name, d := range m.deployments {
		spec := d.Spec.Template.Spec
		if sa := spec.ServiceAccountName; sa != "" {
			if _, ok := m.serviceAccounts[sa]; !ok {
				t.Errorf("Deployment %s: ServiceAccount %q is not defined", name, sa)
			}
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			where := fmt.Sprintf("Deployment %s container %s", name, c.Name)
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					refs++
					secretKey(where+" env "+e.Name, r.Name, r.Key)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					refs++
					configMapKey(where+" env "+e.Name, r.Name, r.Key)
				}
			}
			for _, e := range c.EnvFrom {
				if r := e.SecretRef; r != nil {
					refs++
					secretKey(where+" envFrom", r.Name, "")
				}
				if r := e.ConfigMapRef; r != nil {
					refs++
					configMapKey(where+" envFrom", r.Name, "")
				}
			}
			for _, vm := range c.VolumeMounts {
				if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }) {
					t.Errorf("%s: mounts volume %q, which the pod does not have", where, vm.Name)
				}
			}
		}
		for _, v := range spec.Volumes {
			where := fmt.Sprintf("Deployment %s volume %s", name, v.Name)
			if s := v.Secret; s != nil {
				refs++
				secretKey(where, s.SecretName, "")
				for _, it := range s.Items {
					secretKey(where, s.SecretName, it.Key)
				}
			}
			if c := v.ConfigMap; c != nil {
				refs++
				configMapKey(where, c.Name, "")
				for _, it := range c.Items {
					configMapKey(where, c.Name, it.Key)
				}
			}
		}
	}
	if refs == 0 {
		t.Fatal("no pod reads any Secret or ConfigMap: the test checked nothing")
	}
}

// TestServicesSelectPods checks that each Service selects the pods of exactly one Deployment and
// that its target ports are ports those pods' containers declare, with the same protocol.
func TestServicesSelectPods(t *testing.T) {
	m := loadManifests(t)
	for name, s := range m.services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s: no selector", name)
			continue
		}
		targets := m.podsSelected(labels.SelectorFromSet(s.Spec.Selector))
		if len(targets) != 1 {
			t.Errorf("Service %s: selects the pods of %v, want one Deployment", name, targets)
			continue
		}
		spec := &m.deployments[targets[0]].Spec.Template.Spec
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if _, ok := containerPort(spec, target, p.Protocol); !ok {
				t.Errorf("Service %s port %s: target %s/%s is not a container port of %s", name, p.Name, target.String(), p.Protocol, targets[0])
			}
		}
	}
}

// TestPodDisruptionBudgets checks that each budget covers exactly the pods of one Deployment.
func TestPodDisruptionBudgets(t *testing.T) {
	m := loadManifests(t)
	for _, name := range []string{"shardwire", "invoiced"} {
		pdb, ok := m.pdbs[name]
		if !ok {
			t.Errorf("no PodDisruptionBudget %s", name)
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("PodDisruptionBudget %s: selector %v: %v", name, pdb.Spec.Selector, err)
			continue
		}
		if got := m.podsSelected(sel); !slices.Equal(got, []string{name}) {
			t.Errorf("PodDisruptionBudget %s selects the pods of %v, want [%s]", name, got, name)
		}
		d := m.deployment(t, name)
		if !reflect.DeepEqual(pdb.Spec.Selector, d.Spec.Selector) {
			t.Errorf("PodDisruptionBudget %s: selector %v differs from the Deployment's %v", name, pdb.Spec.Selector, d.Spec.Selector)
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget %s: set exactly one of minAvailable and maxUnavailable", name)
		}
	}
}

// TestNetworkPolicies checks that the ports a policy opens are ports of the pods it selects.
func TestNetworkPolicies(t *testing.T) {
	m := loadManifests(t)
	for name, np := range m.networkPolicies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatalf("NetworkPolicy %s: %v", name, err)
		}
		targets := m.podsSelected(sel)
		if len(targets) == 0 {
			t.Errorf("NetworkPolicy %s selects no pods", name)
		}
		for _, target := range targets {
			spec := &m.deployments[target].Spec.Template.Spec
			var open []int32
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					proto := corev1.ProtocolTCP
					if p.Protocol != nil {
						proto = *p.Protocol
					}
					if p.Port == nil {
						t.Errorf("NetworkPolicy %s: a rule opens every port", name)
						continue
					}
					n, ok := containerPort(spec, *p.Port, proto)
					if !ok {
						t.Errorf("NetworkPolicy %s: port %s/%s is not a container port of %s", name, p.Port.String(), proto, target)
					}
					open = append(open, n)
				}
			}
			// Every TCP port the pods listen on is reachable by someone.
			for _, c := range spec.Containers {
				for _, p := range c.Ports {
					if !slices.Contains(open, p.ContainerPort) {
						t.Errorf("NetworkPolicy %s: %s's port %s (%d) is closed to everyone", name, target, p.Name, p.ContainerPort)
					}
				}
			}
		}
	}
}
