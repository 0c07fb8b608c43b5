package gateway

import (
	"embed"
	"strings"

	"github.com/valyala/fasthttp"
)

// dashboardFiles are the dashboard's static files, served at / and /ui/.
// They need no build step: plain HTML, CSS and JavaScript.
//
//go:embed dashboard
var dashboardFiles embed.FS

var dashboardTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// serveDashboard serves GET / (the dashboard page) and GET /ui/<file>.
func (s *Server) serveDashboard(ctx *fasthttp.RequestCtx, path string) {
	if m := string(ctx.Method()); m != "GET" && m != "HEAD" {
		writeError(ctx, errMethodNotAllowed)
		return
	}
	name := "index.html"
	if path != "/" {
		name = strings.TrimPrefix(path, "/ui/")
	}
	if name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		writeError(ctx, errNotFound)
		return
	}
	b, err := dashboardFiles.ReadFile("dashboard/" + name)
	if err != nil {
		writeError(ctx, errNotFound)
		return
	}
	ct := "application/octet-stream"
	if i := strings.LastIndexByte(name, '.'); i >= 0 && dashboardTypes[name[i:]] != "" {
		ct = dashboardTypes[name[i:]]
	}
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentType(ct)
	ctx.SetBody(b)
}
