package gateway

import (
	"context"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core/auth"
)

// Security endpoints (docs/security.md); admins only (security.go):
//
//	GET    /v1/whoami                          the caller's principal
//	POST   /v1/principals                      {"name","admin"} → a new token (the principal is created if missing)
//	GET    /v1/principals                      principals with their token ids
//	DELETE /v1/principals/{name}               with its tokens and ACLs
//	POST   /v1/principals/{name}/tokens        another token
//	DELETE /v1/principals/{name}/tokens/{id}   revoke a token
//	POST   /v1/acls                            {"principal","resource_type","pattern","pattern_type","operations"}
//	GET    /v1/acls[?principal=]
//	DELETE /v1/acls/{id}

var errAuthOff = &StatusError{Status: http.StatusNotFound, Code: "not_found",
	Msg: "security is off on this node (start it with --auth)"}

func (s *Server) routeSecurity(ctx *fasthttp.RequestCtx, method string, seg []string) {
	if seg[0] == "whoami" && len(seg) == 1 {
		p := principalOf(ctx)
		writeValue(ctx, 200, map[string]any{"principal": p.Name, "admin": p.Admin, "via": p.Via, "auth": s.security() != nil})
		return
	}
	sec := s.security()
	if sec == nil {
		writeError(ctx, errAuthOff)
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	by := principalOf(ctx).Name
	switch {
	case seg[0] == "principals" && len(seg) == 1 && method == "POST":
		var req struct {
			Name  string `json:"name"`
			Admin bool   `json:"admin"`
		}
		if err := decodeJSON(ctx.PostBody(), &req); err != nil {
			writeError(ctx, err)
			return
		}
		s.issueToken(ctx, sec, rctx, req.Name, req.Admin, by)
	case seg[0] == "principals" && len(seg) == 1 && method == "GET":
		writeValue(ctx, 200, map[string]any{"principals": sec.Principals()})
	case seg[0] == "principals" && len(seg) == 2 && method == "DELETE":
		if err := sec.DeletePrincipal(rctx, seg[1]); err != nil {
			writeError(ctx, err)
			return
		}
		ctx.SetStatusCode(204)
	case seg[0] == "principals" && len(seg) == 3 && seg[2] == "tokens" && method == "POST":
		s.issueToken(ctx, sec, rctx, seg[1], false, by)
	case seg[0] == "principals" && len(seg) == 4 && seg[2] == "tokens" && method == "DELETE":
		if err := sec.RevokeToken(rctx, seg[1], seg[3]); err != nil {
			writeError(ctx, err)
			return
		}
		ctx.SetStatusCode(204)
	case seg[0] == "acls" && len(seg) == 1 && method == "POST":
		var a auth.ACL
		if err := decodeJSON(ctx.PostBody(), &a); err != nil {
			writeError(ctx, err)
			return
		}
		out, err := sec.AddACL(rctx, a, by)
		if err != nil {
			writeError(ctx, err)
			return
		}
		writeValue(ctx, 201, out)
	case seg[0] == "acls" && len(seg) == 1 && method == "GET":
		writeValue(ctx, 200, map[string]any{"acls": nonNil(sec.ACLs(string(ctx.QueryArgs().Peek("principal"))))})
	case seg[0] == "acls" && len(seg) == 2 && method == "DELETE":
		if _, err := sec.RemoveACL(rctx, seg[1]); err != nil {
			writeError(ctx, err)
			return
		}
		ctx.SetStatusCode(204)
	case len(seg) <= 4:
		writeError(ctx, errMethodNotAllowed)
	default:
		writeError(ctx, errNotFound)
	}
}

func nonNil(a []auth.ACL) []auth.ACL {
	if a == nil {
		return []auth.ACL{}
	}
	return a
}

func (s *Server) issueToken(ctx *fasthttp.RequestCtx, sec *auth.Service, rctx context.Context, name string, admin bool, by string) {
	tok, info, p, err := sec.CreateToken(rctx, name, admin, by)
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeValue(ctx, 201, map[string]any{"principal": p.Name, "admin": p.Admin, "token": tok, "token_id": info.ID,
		"note": "the token is shown only once; it is stored hashed"})
}
