package gateway

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// Authentication and authorization of every request (docs/security.md).
// handle matches the request in the route table (routes.go), resolves the
// caller's principal, and lets the row decode, authorize and run the
// request (route.go); admin actions are audited with their result.

const principalKey = "weir.principal"

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

// handle serves a request: match, authenticate, then the row's decode,
// authorize and execute; admin actions are audited with their result.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	method := string(ctx.Method())
	c := &call{s: s, ctx: ctx, sec: s.security(), p: auth.AnonymousAdmin}
	r, vars, err := routes.match(method, splitPath(path))
	if r != nil && r.access == accessPublic {
		c.r, c.vars = r, vars
		r.serve(c)
		return
	}
	if c.sec != nil {
		p, aerr := s.authenticate(ctx, c.sec, path)
		if aerr != nil {
			c.sec.Audit(auth.Event{Principal: "", Action: method + " " + path, Result: "unauthenticated", Status: 401,
				Source: ctx.RemoteAddr().String(), Reason: aerr.Error()})
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="weir"`)
			writeError(ctx, aerr)
			return
		}
		c.p = p
		ctx.SetUserValue(principalKey, p)
	}
	if err != nil {
		writeError(ctx, err) // 404, 405: only to authenticated callers
		return
	}
	c.r, c.vars = r, vars
	if !c.admitted() {
		return
	}
	r.serve(c)
	if c.sec != nil && r.audit {
		res := "ok"
		if ctx.Response.StatusCode() >= 400 {
			res = "error"
		}
		resource, op := "", ""
		if c.first != nil {
			resource, op = string(c.first.rt)+":"+c.first.name, string(c.first.op)
		}
		c.sec.Audit(auth.Event{Principal: c.p.Name, Via: c.p.Via, Action: method + " " + path, Resource: resource, Operation: op,
			Result: res, Status: ctx.Response.StatusCode(), Source: ctx.RemoteAddr().String()})
	}
}

// admitted applies the row's access class (admins only, nodes only); a
// refusal is answered and audited.
func (c *call) admitted() bool {
	if c.sec == nil {
		return true
	}
	switch c.r.access {
	case accessAdmin:
		if !c.p.Admin {
			c.s.deny(c.ctx, c.sec, c.p, c.action(), "cluster:"+auth.ClusterName, "admin", fmt.Sprintf("principal %q is not an admin", c.p.Name))
			return false
		}
	case accessNode:
		if !c.p.Node {
			c.s.deny(c.ctx, c.sec, c.p, c.action(), "internal", "", "only other nodes (with the cluster secret) may call internal endpoints")
			return false
		}
	}
	return true
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

// creator is the principal recorded on what a request creates (a
// pipeline): empty when security is off.
func (s *Server) creator(ctx *fasthttp.RequestCtx) string {
	if s.security() == nil {
		return ""
	}
	return principalOf(ctx).Name
}
