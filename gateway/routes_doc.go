package gateway

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core/quota"
)

// RoutesMarkdown renders the route table as the Markdown table that
// docs/api.md ("Routes") and docs/security.md ("Route → operation") carry;
// a test keeps the docs equal to it.
func RoutesMarkdown() string {
	var b strings.Builder
	b.WriteString("| method | path | who may call | audited | what |\n|---|---|---|---|---|\n")
	for _, r := range routes.routes {
		b.WriteString("| " + r.method + " | `" + r.pattern + "` | " + r.accessDoc() + " | ")
		if r.audit {
			b.WriteString("yes")
		}
		b.WriteString(" | " + r.summary + r.meterDoc() + " |\n")
	}
	return b.String()
}

// meterDoc says what a row charges to a quota besides one request
// (quota.go).
func (r *route) meterDoc() string {
	switch r.meter {
	case quota.Produce:
		return " (quota: produce bytes)"
	case quota.Fetch:
		return " (quota: fetch bytes)"
	}
	return ""
}

// accessDoc says who may call a row: its access class, or its needs as
// type:operation:name, the name read from {path}, <query.q> or <body.f>.
func (r *route) accessDoc() string {
	switch r.access {
	case accessPublic:
		return "anyone (no credentials)"
	case accessAdmin:
		return "admins"
	case accessNode:
		return "other nodes (cluster secret)"
	}
	var needs []string
	for _, f := range r.plan.fields {
		s := "`" + string(f.rt) + ":" + string(f.op) + ":" + f.source + "`"
		if f.optional {
			s += " (when given)"
		}
		needs = append(needs, s)
	}
	for _, n := range r.all {
		needs = append(needs, "`"+n.String()+"`")
	}
	if len(needs) == 0 {
		return "any authenticated principal"
	}
	return strings.Join(needs, ", ")
}

// RouteInfo describes a row of the route table for tests and tools.
type RouteInfo struct {
	Method, Pattern string
	// Access is "public", "admin", "node", "authenticated" (no needs) or
	// "needs".
	Access  string
	Example string // a sample JSON body, when the row has one
}

// Routes lists the route table's rows in order.
func Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(routes.routes))
	for _, r := range routes.routes {
		ri := RouteInfo{Method: r.method, Pattern: r.pattern, Example: r.example}
		switch {
		case r.access == accessPublic:
			ri.Access = "public"
		case r.access == accessAdmin:
			ri.Access = "admin"
		case r.access == accessNode:
			ri.Access = "node"
		case len(r.plan.fields) == 0 && len(r.all) == 0:
			ri.Access = "authenticated"
		default:
			ri.Access = "needs"
		}
		out = append(out, ri)
	}
	return out
}

// Need is one authorization a request requires: an operation on a named
// resource ("*": every resource of the type, a wildcard ACL).
type Need struct {
	ResourceType, Operation, Name string
}

// RequestNeeds decodes a request exactly as its row does and returns the
// needs the row authorizes before executing it (the authorization tests
// grant all but one of them). It needs no server: rows whose decoding
// consults the server (the topic WebSocket) are not supported.
func RequestNeeds(method, uri string, body []byte) ([]Need, error) {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBody(body)
	r, vars, err := routes.match(method, splitPath(string(ctx.Path())))
	if err != nil {
		return nil, err
	}
	needs, err := r.needsOf(&call{ctx: ctx, r: r, vars: vars})
	out := make([]Need, len(needs))
	for i, n := range needs {
		out[i] = Need{ResourceType: string(n.rt), Operation: string(n.op), Name: n.name}
	}
	return out, err
}
