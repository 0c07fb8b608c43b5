package gateway

import (
	"net/http"

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

func (s *Server) whoami(c *call, _ *listReq) {
	p := principalOf(c.ctx)
	writeValue(c.ctx, 200, map[string]any{"principal": p.Name, "admin": p.Admin, "via": p.Via, "auth": s.security() != nil})
}

// secOn returns the security service, or answers 404 when security is off.
func (s *Server) secOn(c *call) (*auth.Service, bool) {
	sec := s.security()
	if sec == nil {
		writeError(c.ctx, errAuthOff)
	}
	return sec, sec != nil
}

type createPrincipalReq struct {
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
}

func (s *Server) createPrincipal(c *call, r *createPrincipalReq) {
	if sec, ok := s.secOn(c); ok {
		s.issueToken(c, sec, r.Name, r.Admin)
	}
}

func (s *Server) listPrincipals(c *call, _ *listReq) {
	if sec, ok := s.secOn(c); ok {
		writeValue(c.ctx, 200, map[string]any{"principals": sec.Principals()})
	}
}

type principalReq struct {
	Name string `path:"name" json:"-"`
	ID   string `path:"id" json:"-"`
}

func (s *Server) deletePrincipal(c *call, r *principalReq) {
	sec, ok := s.secOn(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := sec.DeletePrincipal(rctx, r.Name); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

func (s *Server) addToken(c *call, r *principalReq) {
	if sec, ok := s.secOn(c); ok {
		s.issueToken(c, sec, r.Name, false)
	}
}

func (s *Server) revokeToken(c *call, r *principalReq) {
	sec, ok := s.secOn(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := sec.RevokeToken(rctx, r.Name, r.ID); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

type listACLsReq struct {
	Principal string `query:"principal" json:"-"`
}

func (s *Server) listACLs(c *call, r *listACLsReq) {
	if sec, ok := s.secOn(c); ok {
		writeValue(c.ctx, 200, map[string]any{"acls": nonNil(sec.ACLs(r.Principal))})
	}
}

type addACLReq struct{ auth.ACL }

func (s *Server) addACL(c *call, r *addACLReq) {
	sec, ok := s.secOn(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	out, err := sec.AddACL(rctx, r.ACL, c.p.Name)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 201, out)
}

type aclReq struct {
	ID string `path:"id" json:"-"`
}

func (s *Server) removeACL(c *call, r *aclReq) {
	sec, ok := s.secOn(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if _, err := sec.RemoveACL(rctx, r.ID); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

func nonNil(a []auth.ACL) []auth.ACL {
	if a == nil {
		return []auth.ACL{}
	}
	return a
}

func (s *Server) issueToken(c *call, sec *auth.Service, name string, admin bool) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	tok, info, p, err := sec.CreateToken(rctx, name, admin, c.p.Name)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 201, map[string]any{"principal": p.Name, "admin": p.Admin, "token": tok, "token_id": info.ID,
		"note": "the token is shown only once; it is stored hashed"})
}
