package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// Authentication and authorization of every request (docs/security.md).
// handle resolves the caller's principal, finds the request's rule in
// routeRules (one table: route → the resources and operations it needs),
// checks each, audits admin actions and denials, then routes.

const principalKey = "weir.principal"

// need is one (resource type, operation, name) a route requires. The name
// is a template: {x} is a path segment of the route, <body.f> a string
// field of the JSON body, <body.f[]> each element of a string array,
// <query.q> a query argument; "*" asks for every resource of the type
// (list endpoints: an admin or a wildcard ACL).
type need struct {
	rt       auth.ResourceType
	op       auth.Operation
	name     string
	optional bool // skip when the name resolves empty (an optional parameter)
}

// routeRule: method ("" any) and path pattern ({x} matches one segment).
// No needs: any authenticated principal. admin: admins only.
type routeRule struct {
	method string
	path   string
	needs  []need
	audit  bool // an admin action: recorded in __audit with its result
	admin  bool
	public bool // no credentials needed
}

func n(rt auth.ResourceType, op auth.Operation, name string) need {
	return need{rt: rt, op: op, name: name}
}
func opt(rt auth.ResourceType, op auth.Operation, name string) need {
	return need{rt: rt, op: op, name: name, optional: true}
}

const (
	topic   = auth.Topic
	group   = auth.Group
	subs    = auth.Subscription
	module  = auth.Module
	pipe    = auth.Pipeline
	cluster = auth.Cluster
)

// routeRules is the route → operation table (docs/security.md repeats it).
// A request no rule matches is for admins only (default deny).
var routeRules = []routeRule{
	{method: "GET", path: "/healthz", public: true},
	{method: "GET", path: "/readyz", public: true},
	{method: "GET", path: "/", public: true},
	{method: "GET", path: "/ui/*", public: true},
	{method: "GET", path: "/sdk/*", public: true},
	{method: "GET", path: "/demo", public: true},

	{method: "GET", path: "/v1/whoami"},
	{method: "GET", path: "/v1/ws"}, // each frame is checked (ws_conn.go)

	{method: "GET", path: "/v1/topics", needs: []need{n(topic, auth.Describe, "*")}},
	{method: "POST", path: "/v1/topics", needs: []need{n(topic, auth.Create, "<body.name>")}, audit: true},
	{method: "GET", path: "/v1/topics/{t}", needs: []need{n(topic, auth.Describe, "{t}")}},
	{method: "DELETE", path: "/v1/topics/{t}", needs: []need{n(topic, auth.Delete, "{t}")}, audit: true},
	{method: "POST", path: "/v1/topics/{t}/records", needs: []need{n(topic, auth.Write, "{t}")}},
	{method: "GET", path: "/v1/topics/{t}/partitions/{p}/records", needs: []need{n(topic, auth.Read, "{t}")}},
	{method: "GET", path: "/v1/topics/{t}/ws", needs: []need{n(topic, auth.Read, "{t}"), opt(group, auth.Read, "<query.group>")}},
	{method: "POST", path: "/v1/topics/{t}/subscriptions", needs: []need{n(subs, auth.Create, "{t}/<body.name>"), n(topic, auth.Read, "{t}")}, audit: true},
	{method: "GET", path: "/v1/topics/{t}/subscriptions", needs: []need{n(topic, auth.Describe, "{t}")}},
	{method: "GET", path: "/v1/topics/{t}/subscriptions/{s}", needs: []need{n(subs, auth.Describe, "{t}/{s}")}},
	{method: "DELETE", path: "/v1/topics/{t}/subscriptions/{s}", needs: []need{n(subs, auth.Delete, "{t}/{s}")}, audit: true},
	{method: "POST", path: "/v1/topics/{t}/subscriptions/{s}/{action}", needs: []need{n(subs, auth.Read, "{t}/{s}"), n(topic, auth.Read, "{t}")}},
	{method: "POST", path: "/v1/topics/{t}/redrive", needs: []need{n(topic, auth.Read, "{t}"), n(topic, auth.Write, "<body.to>")}, audit: true},

	{method: "GET", path: "/v1/groups", needs: []need{n(group, auth.Describe, "*")}},
	{method: "GET", path: "/v1/groups/{g}", needs: []need{n(group, auth.Describe, "{g}")}},
	{method: "GET", path: "/v1/groups/{g}/offsets", needs: []need{n(group, auth.Describe, "{g}")}},
	{method: "POST", path: "/v1/groups/{g}/offsets", needs: []need{n(group, auth.Read, "{g}"), opt(topic, auth.Read, "<body.offsets[].topic>")}},
	{method: "POST", path: "/v1/groups/{g}/members", needs: []need{n(group, auth.Read, "{g}"), opt(topic, auth.Read, "<body.topic>"), opt(topic, auth.Read, "<body.topics[]>")}},
	{method: "", path: "/v1/groups/{g}/members/{m}", needs: []need{n(group, auth.Read, "{g}")}},
	{method: "", path: "/v1/groups/{g}/members/{m}/{op}", needs: []need{n(group, auth.Read, "{g}")}},

	{method: "GET", path: "/v1/cluster", needs: []need{n(cluster, auth.Describe, auth.ClusterName)}},
	{method: "POST", path: "/v1/cluster/join", needs: []need{n(cluster, auth.Alter, auth.ClusterName)}, audit: true},
	{method: "POST", path: "/v1/cluster/rebalance", needs: []need{n(cluster, auth.Alter, auth.ClusterName)}, audit: true},
	{method: "", path: "/v1/cluster/nodes/{id}", needs: []need{n(cluster, auth.Alter, auth.ClusterName)}, audit: true},
	{method: "", path: "/v1/cluster/nodes/{id}/remove", needs: []need{n(cluster, auth.Alter, auth.ClusterName)}, audit: true},
	{method: "GET", path: "/v1/stats", needs: []need{n(cluster, auth.Describe, auth.ClusterName)}},
	{method: "GET", path: "/metrics", needs: []need{n(cluster, auth.Describe, auth.ClusterName)}},

	{method: "GET", path: "/v1/modules", needs: []need{n(module, auth.Describe, "*")}},
	{method: "PUT", path: "/v1/modules/{m}", needs: []need{n(module, auth.Create, "{m}")}, audit: true},
	{method: "GET", path: "/v1/modules/{m}", needs: []need{n(module, auth.Describe, "{m}")}},
	{method: "DELETE", path: "/v1/modules/{m}", needs: []need{n(module, auth.Delete, "{m}")}, audit: true},
	{method: "GET", path: "/v1/pipelines", needs: []need{n(pipe, auth.Describe, "*")}},
	{method: "POST", path: "/v1/pipelines", needs: []need{n(pipe, auth.Create, "<body.name>"), n(module, auth.Read, "<body.module>"),
		n(topic, auth.Read, "<body.inputs[]>"), n(topic, auth.Write, "<body.outputs[]>"), opt(topic, auth.Write, "<body.on_error.dead_letter_topic>")}, audit: true},
	{method: "GET", path: "/v1/pipelines/{p}", needs: []need{n(pipe, auth.Describe, "{p}")}},
	{method: "DELETE", path: "/v1/pipelines/{p}", needs: []need{n(pipe, auth.Delete, "{p}")}, audit: true},
	{method: "POST", path: "/v1/pipelines/{p}/{action}", needs: []need{n(pipe, auth.Alter, "{p}")}, audit: true},

	{method: "GET", path: "/v1/principals", admin: true},
	{method: "POST", path: "/v1/principals", admin: true, audit: true},
	{method: "DELETE", path: "/v1/principals/{name}", admin: true, audit: true},
	{method: "POST", path: "/v1/principals/{name}/tokens", admin: true, audit: true},
	{method: "DELETE", path: "/v1/principals/{name}/tokens/{id}", admin: true, audit: true},
	{method: "GET", path: "/v1/acls", admin: true},
	{method: "POST", path: "/v1/acls", admin: true, audit: true},
	{method: "DELETE", path: "/v1/acls/{id}", admin: true, audit: true},
}

// RouteRule is a row of the route → operation table, for documentation.
type RouteRule struct {
	Method, Path string
	Needs        []string // "topic:write:{t}"
	Admin, Audit bool
	Public       bool
}

// RouteRules returns the table (docs/security.md is generated from it by a test).
func RouteRules() []RouteRule {
	out := make([]RouteRule, len(routeRules))
	for i, r := range routeRules {
		out[i] = RouteRule{Method: r.method, Path: r.path, Admin: r.admin, Audit: r.audit, Public: r.public}
		for _, nd := range r.needs {
			out[i].Needs = append(out[i].Needs, string(nd.rt)+":"+string(nd.op)+":"+nd.name)
		}
	}
	return out
}

// matchRule finds the rule of a request and the path's variables.
func matchRule(method string, seg []string) (*routeRule, map[string]string) {
	for i := range routeRules {
		r := &routeRules[i]
		if r.method != "" && r.method != method && !(r.method == "GET" && method == "HEAD") {
			continue
		}
		pseg := strings.Split(strings.Trim(r.path, "/"), "/")
		if r.path == "/" {
			pseg = []string{""}
		}
		if len(pseg) > 0 && pseg[len(pseg)-1] == "*" {
			if len(seg) >= len(pseg) && equalSegs(pseg[:len(pseg)-1], seg[:len(pseg)-1]) {
				return r, nil
			}
			continue
		}
		if len(pseg) != len(seg) {
			continue
		}
		vars := map[string]string{}
		ok := true
		for j, p := range pseg {
			if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
				if seg[j] == "" {
					ok = false
					break
				}
				vars[p[1:len(p)-1]] = seg[j]
			} else if p != seg[j] {
				ok = false
				break
			}
		}
		if ok {
			return r, vars
		}
	}
	return nil, nil
}

func equalSegs(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// principalOf returns the caller of a request (the anonymous admin when
// security is off).
func principalOf(ctx *fasthttp.RequestCtx) auth.Principal {
	if p, ok := ctx.UserValue(principalKey).(auth.Principal); ok {
		return p
	}
	return auth.AnonymousAdmin
}

// security returns the enabled security service, or nil.
func (s *Server) security() *auth.Service {
	if s.cfg.Auth.Enabled() {
		return s.cfg.Auth
	}
	return nil
}

// handle authenticates and authorizes the request, then routes it
// (server.go route), and audits admin actions with their result.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	sec := s.security()
	if sec == nil {
		s.route(ctx)
		return
	}
	path := string(ctx.Path())
	method := string(ctx.Method())
	seg := strings.Split(strings.Trim(path, "/"), "/")
	rule, vars := matchRule(method, seg)
	if rule != nil && rule.public {
		s.route(ctx)
		return
	}
	p, err := s.authenticate(ctx, sec, path)
	if err != nil {
		sec.Audit(auth.Event{Principal: "", Action: method + " " + path, Result: "unauthenticated", Status: 401,
			Source: ctx.RemoteAddr().String(), Reason: err.Error()})
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="weir"`)
		writeError(ctx, err)
		return
	}
	ctx.SetUserValue(principalKey, p)
	if strings.HasPrefix(path, "/v1/internal/") || path == "/v1/internal" {
		if !p.Node {
			s.deny(ctx, sec, p, method+" "+path, "internal", "", "only other nodes (with the cluster secret) may call internal endpoints")
			return
		}
		s.route(ctx)
		return
	}
	resource, op, err := s.checkRule(ctx, sec, p, rule, vars)
	if err != nil {
		if resource == "" {
			writeError(ctx, err) // a malformed body: the handler would refuse it too
			return
		}
		s.deny(ctx, sec, p, method+" "+path, resource, op, err.Error())
		return
	}
	s.route(ctx)
	if rule != nil && rule.audit {
		res := "ok"
		if ctx.Response.StatusCode() >= 400 {
			res = "error"
		}
		sec.Audit(auth.Event{Principal: p.Name, Via: p.Via, Action: method + " " + path, Resource: resource, Operation: op,
			Result: res, Status: ctx.Response.StatusCode(), Source: ctx.RemoteAddr().String()})
	}
}

// deny answers 403 and audits the denial.
func (s *Server) deny(ctx *fasthttp.RequestCtx, sec *auth.Service, p auth.Principal, action, resource, op, msg string) {
	sec.Audit(auth.Event{Principal: p.Name, Via: p.Via, Action: action, Resource: resource, Operation: op,
		Result: "denied", Status: 403, Source: ctx.RemoteAddr().String(), Reason: msg})
	writeError(ctx, fmt.Errorf("%w: %s", core.ErrForbidden, msg))
}

// authenticate resolves the caller: the cluster secret (another node), a
// bearer token (API token or JWT; on WebSocket paths also ?token=), or a
// verified client certificate.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, sec *auth.Service, path string) (auth.Principal, error) {
	if v := ctx.Request.Header.Peek(NodeSecretHeader); len(v) > 0 {
		if sec.NodeSecretOK(string(v)) {
			return auth.NodeAuth, nil
		}
		return auth.Principal{}, fmt.Errorf("%w: wrong cluster secret", core.ErrUnauthenticated)
	}
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 0 {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(string(h)), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return auth.Principal{}, fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", core.ErrUnauthenticated)
		}
		return sec.Authenticate(strings.TrimSpace(tok))
	}
	if isWSPath(path) && ctx.QueryArgs().Has("token") {
		// Browsers cannot set headers on a WebSocket handshake.
		return sec.Authenticate(string(ctx.QueryArgs().Peek("token")))
	}
	if ctx.IsTLS() {
		if cs := ctx.TLSConnectionState(); cs != nil && len(cs.VerifiedChains) > 0 && len(cs.PeerCertificates) > 0 {
			return sec.AuthenticateCert(cs.PeerCertificates[0].Subject.CommonName)
		}
	}
	return sec.Authenticate("")
}

func isWSPath(path string) bool {
	return path == "/v1/ws" || strings.HasPrefix(path, "/v1/topics/") && strings.HasSuffix(path, "/ws")
}

// checkRule checks a rule's needs; on a denial it returns the resource
// and operation refused. A request no rule covers is for admins only.
func (s *Server) checkRule(ctx *fasthttp.RequestCtx, sec *auth.Service, p auth.Principal, rule *routeRule, vars map[string]string) (string, string, error) {
	if rule == nil || rule.admin {
		if p.Admin {
			return "", "", nil
		}
		if rule == nil {
			return "endpoint:" + string(ctx.Path()), "", fmt.Errorf("principal %q may not call this endpoint (admins only)", p.Name)
		}
		return "cluster:" + auth.ClusterName, "admin", fmt.Errorf("principal %q is not an admin", p.Name)
	}
	var body map[string]any
	for _, nd := range rule.needs {
		if p.Admin {
			break
		}
		if nd.name == "*" {
			if !sec.AllowedAll(p, nd.rt, nd.op) {
				return string(nd.rt) + ":*", string(nd.op), fmt.Errorf("principal %q may not %s every %s (listing needs a wildcard ACL)", p.Name, nd.op, nd.rt)
			}
			continue
		}
		if body == nil && strings.Contains(nd.name, "<body.") {
			body = map[string]any{}
			if b := ctx.PostBody(); len(b) > 0 {
				if err := json.Unmarshal(b, &body); err != nil {
					return "", "", core.Invalidf("the body must be a JSON object: %v", err)
				}
			}
		}
		for _, name := range expandName(nd.name, vars, body, ctx) {
			if name == "" || strings.HasSuffix(name, "/") {
				if nd.optional {
					continue
				}
			}
			if !sec.Allowed(p, nd.rt, name, nd.op) {
				return string(nd.rt) + ":" + name, string(nd.op), fmt.Errorf("principal %q may not %s %s %q", p.Name, nd.op, nd.rt, name)
			}
		}
	}
	res := ""
	if len(rule.needs) > 0 {
		names := expandName(rule.needs[0].name, vars, body, ctx)
		if len(names) > 0 {
			res = string(rule.needs[0].rt) + ":" + names[0]
		}
	}
	op := ""
	if len(rule.needs) > 0 {
		op = string(rule.needs[0].op)
	}
	return res, op, nil
}

// expandName resolves a need's name template; an array field yields one
// name per element.
func expandName(tmpl string, vars map[string]string, body map[string]any, ctx *fasthttp.RequestCtx) []string {
	start := strings.IndexAny(tmpl, "{<")
	if start < 0 {
		return []string{tmpl}
	}
	closeCh := byte('}')
	if tmpl[start] == '<' {
		closeCh = '>'
	}
	end := strings.IndexByte(tmpl[start:], closeCh)
	if end < 0 {
		return []string{tmpl}
	}
	end += start
	key := tmpl[start+1 : end]
	var vals []string
	switch {
	case tmpl[start] == '{':
		vals = []string{vars[key]}
	case strings.HasPrefix(key, "query."):
		vals = []string{string(ctx.QueryArgs().Peek(strings.TrimPrefix(key, "query.")))}
	case strings.HasPrefix(key, "body."):
		vals = bodyValues(body, strings.Split(strings.TrimPrefix(key, "body."), "."))
	}
	if len(vals) == 0 {
		vals = []string{""}
	}
	var out []string
	for _, v := range vals {
		for _, rest := range expandName(tmpl[end+1:], vars, body, ctx) {
			out = append(out, tmpl[:start]+v+rest)
		}
	}
	return out
}

// bodyValues walks a path of fields ("offsets[]", "topic") in a decoded body.
func bodyValues(v any, path []string) []string {
	if len(path) == 0 {
		if s, ok := v.(string); ok {
			return []string{s}
		}
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	f := path[0]
	if name, isArr := strings.CutSuffix(f, "[]"); isArr {
		arr, _ := m[name].([]any)
		var out []string
		for _, e := range arr {
			out = append(out, bodyValues(e, path[1:])...)
		}
		return out
	}
	return bodyValues(m[f], path[1:])
}

// authorize checks one more (resource, operation) for the caller of ctx,
// for parts of a request the route table cannot see. It audits a denial.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, rt auth.ResourceType, name string, op auth.Operation) error {
	sec := s.security()
	if sec == nil {
		return nil
	}
	p := principalOf(ctx)
	if sec.Allowed(p, rt, name, op) {
		return nil
	}
	msg := fmt.Sprintf("principal %q may not %s %s %q", p.Name, op, rt, name)
	sec.Audit(auth.Event{Principal: p.Name, Via: p.Via, Action: string(ctx.Method()) + " " + string(ctx.Path()),
		Resource: string(rt) + ":" + name, Operation: string(op), Result: "denied", Status: http.StatusForbidden,
		Source: ctx.RemoteAddr().String(), Reason: msg})
	return fmt.Errorf("%w: %s", core.ErrForbidden, msg)
}

// creator is the principal recorded on what a request creates (a
// pipeline): empty when security is off.
func (s *Server) creator(ctx *fasthttp.RequestCtx) string {
	if s.security() == nil {
		return ""
	}
	return principalOf(ctx).Name
}
