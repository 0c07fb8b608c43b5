package gateway

import (
	"fmt"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// WebSocket security (docs/security.md): the handshake is authenticated
// like any request (a bearer header or ?token=), the connection keeps the
// principal, and every frame that touches a resource is checked here
// against the same ACLs as the HTTP routes. A principal holds at most
// auth.Config.MaxConnsPerPrincipal connections per node.

// principalConns counts WebSocket connections per principal.
type principalConns struct {
	mu sync.Mutex
	n  map[string]int
}

func (pc *principalConns) acquire(name string, limit int) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.n == nil {
		pc.n = map[string]int{}
	}
	if pc.n[name] >= limit {
		return false
	}
	pc.n[name]++
	return true
}

func (pc *principalConns) release(name string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.n[name]--; pc.n[name] <= 0 {
		delete(pc.n, name)
	}
}

// wsAdmit reserves a connection slot for the caller of ctx; release must
// be called when the connection ends. ok is false (and an error written)
// when the principal holds too many.
func (s *Server) wsAdmit(ctx *fasthttp.RequestCtx) (p auth.Principal, release func(), ok bool) {
	p = principalOf(ctx)
	sec := s.security()
	if sec == nil {
		return p, func() {}, true
	}
	limit := sec.Config().MaxConnsPerPrincipal
	if !s.ws.pconns.acquire(p.Name, limit) {
		writeError(ctx, fmt.Errorf("%w: principal %q already holds %d WebSocket connections on this node", core.ErrRateLimited, p.Name, limit))
		return p, nil, false
	}
	return p, func() { s.ws.pconns.release(p.Name) }, true
}

// memberPrincipal is the principal recorded on group members this
// connection joins ("" with security off, as over HTTP).
func (c *wsConn) memberPrincipal() string {
	if c.hub.s.security() == nil {
		return ""
	}
	return c.principal.Name
}

// frameNeeds lists what a client frame requires, from the decoded frame:
// the same resource types and operations as the HTTP routes (routes.go).
func frameNeeds(f *wsFrame) []need {
	var needs []need
	switch f.Op {
	case "subscribe":
		if f.Subscription != "" {
			needs = append(needs, need{subRT, auth.Read, f.Topic + "/" + f.Subscription})
		}
		needs = append(needs, need{topicRT, auth.Read, f.Topic})
		if f.Group != "" {
			needs = append(needs, need{groupRT, auth.Read, f.Group})
		}
	case "produce":
		needs = append(needs, need{topicRT, auth.Write, f.Topic})
	case "commit":
		if f.Group != "" {
			needs = append(needs, need{groupRT, auth.Read, f.Group})
		}
		// As over HTTP: committing a topic's offsets needs read on it.
		if f.Topic != "" {
			needs = append(needs, need{topicRT, auth.Read, f.Topic})
		}
		for _, o := range f.Offsets {
			if o.Topic != "" {
				needs = append(needs, need{topicRT, auth.Read, o.Topic})
			}
		}
	case "ack", "nack", "extend":
		if f.Sub == "" { // a subscription of this connection was checked at subscribe
			needs = append(needs, need{subRT, auth.Read, f.Topic + "/" + f.Subscription})
		}
	}
	return needs
}

// authorizeFrame checks a client frame against the connection's principal.
func (c *wsConn) authorizeFrame(f *wsFrame) error {
	sec := c.hub.s.security()
	if sec == nil {
		return nil
	}
	p := c.principal
	if p.Admin {
		return nil
	}
	for _, nd := range frameNeeds(f) {
		if !sec.Allowed(p, nd.rt, nd.name, nd.op) {
			msg := fmt.Sprintf("principal %q may not %s %s %q", p.Name, nd.op, nd.rt, nd.name)
			sec.Audit(auth.Event{Principal: p.Name, Via: p.Via, Action: "ws " + f.Op, Resource: string(nd.rt) + ":" + nd.name,
				Operation: string(nd.op), Result: "denied", Status: 403, Source: c.remote, Reason: msg})
			return fmt.Errorf("%w: %s", core.ErrForbidden, msg)
		}
	}
	return nil
}
