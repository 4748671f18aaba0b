package admin

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func dashboardHandler(t *testing.T) http.Handler {
	t.Helper()
	return New(Config{}, zap.NewNop(), prometheus.NewRegistry(), nil).Handler()
}

func request(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestDashboardServesPageAndAssets(t *testing.T) {
	h := dashboardHandler(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="dashboard/app.js"`},
		{"/dashboard/index.html", "text/html; charset=utf-8", "<title>shardwire</title>"},
		{"/dashboard/app.js", "text/javascript; charset=utf-8", "function parsePrometheus("},
		{"/dashboard/style.css", "text/css; charset=utf-8", ".shard-grid"},
	} {
		rec := request(h, http.MethodGet, tc.path, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", tc.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tc.path, got)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
			!strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q does not keep the page to its origin", tc.path, csp)
		}
	}
}

func TestDashboardUnknownPaths(t *testing.T) {
	h := dashboardHandler(t)
	for _, p := range []string{"/dashboard/nope.js", "/dashboard/", "/dashboard/app.js/x",
		"/index.html", "/nope", "/dashboard/dashboard/app.js"} {
		if rec := request(h, http.MethodGet, p, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
	if rec := request(h, http.MethodPost, "/", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", rec.Code)
	}
}

func TestDashboardRevalidation(t *testing.T) {
	h := dashboardHandler(t)
	first := request(h, http.MethodGet, "/dashboard/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("app.js: ETag %q, Cache-Control %q; want a validator and no-cache", etag, first.Header().Get("Cache-Control"))
	}
	again := request(h, http.MethodGet, "/dashboard/app.js", http.Header{"If-None-Match": {etag}})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("app.js with If-None-Match %s = %d with %d bytes, want 304 and no body", etag, again.Code, again.Body.Len())
	}
	if other := request(h, http.MethodGet, "/dashboard/style.css", nil).Header().Get("ETag"); other == etag {
		t.Errorf("style.css and app.js share the ETag %s", etag)
	}
	head := request(h, http.MethodHead, "/", nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD / = %d, %d bytes, %q; want 200, no body, text/html", head.Code, head.Body.Len(), head.Header().Get("Content-Type"))
	}
}

// TestDashboardServesEveryEmbeddedFile guards against an asset that is embedded but not
// served (an extension without a content type), or referenced by the page but missing.
func TestDashboardServesEveryEmbeddedFile(t *testing.T) {
	h := dashboardHandler(t)
	names, err := fs.Glob(dashboardFiles, "dashboard/*")
	if err != nil || len(names) < 3 {
		t.Fatalf("embedded assets = %v, %v", names, err)
	}
	for _, name := range names {
		if rec := request(h, http.MethodGet, "/"+name, nil); rec.Code != http.StatusOK {
			t.Errorf("embedded %s: GET /%s = %d, want 200", name, name, rec.Code)
		}
	}
	index := request(h, http.MethodGet, "/", nil).Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 2 {
		t.Fatalf("the page references %v, want its script and stylesheet", refs)
	}
	for _, ref := range refs {
		u := ref[1]
		if strings.HasPrefix(u, "data:") {
			continue
		}
		if strings.Contains(u, ":") || strings.HasPrefix(u, "/") {
			t.Errorf("the page references %q: want a path relative to the page", u)
			continue
		}
		if rec := request(h, http.MethodGet, "/"+u, nil); rec.Code != http.StatusOK {
			t.Errorf("the page references %q, which answers %d", u, rec.Code)
		}
	}
}

// svgNamespace is the XML namespace name of SVG elements: an identifier that
// createElementNS needs, never fetched.
const svgNamespace = "http://www.w3.org/2000/svg"

// TestDashboardHasNoExternalURLs checks that the assets load nothing from another host:
// no absolute or protocol-relative URL, no CSS import or url() other than data:.
func TestDashboardHasNoExternalURLs(t *testing.T) {
	external := regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp):|["'(=\s]//[a-z0-9\[]`)
	cssFetch := regexp.MustCompile(`(?i)@import|url\(\s*['"]?([^'")]*)`)
	err := fs.WalkDir(dashboardFiles, "dashboard", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(dashboardFiles, p)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(body), svgNamespace, "")
		for i, line := range strings.Split(text, "\n") {
			if m := external.FindString(line); m != "" {
				t.Errorf("%s:%d names %q: assets must come from this node", p, i+1, m)
			}
			if path.Ext(p) != ".css" {
				continue
			}
			for _, m := range cssFetch.FindAllStringSubmatch(line, -1) {
				if m[0] == "@import" || !strings.HasPrefix(m[1], "data:") {
					t.Errorf("%s:%d loads %q", p, i+1, m[0])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDashboardWithAndWithoutAPI(t *testing.T) {
	// The page is served either way; it finds out about the API itself.
	for _, api := range []API{nil, fakeDashboardAPI{}} {
		h := New(Config{API: api}, zap.NewNop(), prometheus.NewRegistry(), nil).Handler()
		if rec := request(h, http.MethodGet, "/", nil); rec.Code != http.StatusOK {
			t.Errorf("API %T: GET / = %d, want 200", api, rec.Code)
		}
		want := http.StatusNotFound
		if api != nil {
			want = http.StatusOK
		}
		if rec := request(h, http.MethodGet, PathCluster, nil); rec.Code != want {
			t.Errorf("API %T: GET %s = %d, want %d", api, PathCluster, rec.Code, want)
		}
	}
}

// fakeDashboardAPI answers Cluster; the page only reads.
type fakeDashboardAPI struct{ API }

func (fakeDashboardAPI) Cluster(context.Context) (ClusterStatus, error) {
	return ClusterStatus{Node: "n1"}, nil
}
