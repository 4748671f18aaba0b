package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"

	"go.uber.org/zap"
)

// Dashboard paths: the page itself at the root of the admin listener, its assets below
// PathDashboardAssets. The page fetches the API and /metrics with relative URLs, so it also
// works behind a reverse proxy that serves the admin listener under a path prefix.
const (
	PathDashboard       = "/"
	PathDashboardAssets = "/dashboard/"
)

// dashboardIndex is the page's file in the embedded assets.
const dashboardIndex = "index.html"

// dashboardCSP keeps the page to its own origin: scripts, styles and requests go nowhere
// else, and nothing may frame it.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboardFiles are the page's assets, compiled into the binary.
//
//go:embed dashboard/index.html dashboard/app.js dashboard/style.css
var dashboardFiles embed.FS

// dashboardTypes are the content types of the assets, by extension; an asset of another
// extension is not served.
var dashboardTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// dashboardAsset is one embedded file, read once when the server is built.
type dashboardAsset struct {
	body        []byte
	contentType string
	etag        string // a strong validator: the content's hash
}

// dashboard serves the live dashboard page and its assets from the embedded files. It is
// immutable once built and safe for concurrent use.
type dashboard struct {
	assets map[string]dashboardAsset // by file name, "app.js"
}

// newDashboard reads the embedded assets.
func newDashboard() (*dashboard, error) {
	root, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		return nil, fmt.Errorf("dashboard assets: %w", err)
	}
	entries, err := fs.ReadDir(root, ".")
	if err != nil {
		return nil, fmt.Errorf("dashboard assets: %w", err)
	}
	d := &dashboard{assets: make(map[string]dashboardAsset, len(entries))}
	for _, e := range entries {
		ct, ok := dashboardTypes[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		body, err := fs.ReadFile(root, e.Name())
		if err != nil {
			return nil, fmt.Errorf("dashboard asset %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		d.assets[e.Name()] = dashboardAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	if _, ok := d.assets[dashboardIndex]; !ok {
		return nil, fmt.Errorf("dashboard assets: no %s", dashboardIndex)
	}
	return d, nil
}

// routeDashboard adds the dashboard's routes to mux: the page (GET /, exactly) and its assets
// (GET /dashboard/{asset}). Embedded assets that cannot be read (a broken build) leave the
// routes out and are logged; the rest of the admin listener works on.
func routeDashboard(mux *http.ServeMux, log *zap.Logger) {
	d, err := newDashboard()
	if err != nil {
		log.Error("dashboard not served", zap.Error(err))
		return
	}
	d.route(mux)
}

// route adds the page and its assets to mux.
func (d *dashboard) route(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathDashboard+"{$}", func(w http.ResponseWriter, r *http.Request) {
		d.serve(w, r, dashboardIndex)
	})
	mux.HandleFunc("GET "+PathDashboardAssets+"{asset}", func(w http.ResponseWriter, r *http.Request) {
		d.serve(w, r, r.PathValue("asset"))
	})
}

// serve writes the named asset, or 404 when there is none of that name. Browsers revalidate
// every time (no-cache) and get 304 while the binary, and so the asset, is the same.
func (d *dashboard) serve(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := d.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
