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

// authorizeFrame checks a client frame against the connection's principal.
func (c *wsConn) authorizeFrame(f *wsFrame) error {
	sec := c.hub.s.security()
	if sec == nil {
		return nil
	}
	type check struct {
		rt   auth.ResourceType
		name string
		op   auth.Operation
	}
	var checks []check
	switch f.Op {
	case "subscribe":
		if f.Subscription != "" {
			checks = append(checks, check{auth.Subscription, f.Topic + "/" + f.Subscription, auth.Read})
		}
		checks = append(checks, check{auth.Topic, f.Topic, auth.Read})
		if f.Group != "" {
			checks = append(checks, check{auth.Group, f.Group, auth.Read})
		}
	case "produce":
		checks = append(checks, check{auth.Topic, f.Topic, auth.Write})
	case "commit":
		if f.Group != "" {
			checks = append(checks, check{auth.Group, f.Group, auth.Read})
		}
	case "ack", "nack", "extend":
		if f.Sub == "" { // a subscription of this connection was checked at subscribe
			checks = append(checks, check{auth.Subscription, f.Topic + "/" + f.Subscription, auth.Read})
		}
	}
	p := c.principal
	for _, ck := range checks {
		if !sec.Allowed(p, ck.rt, ck.name, ck.op) {
			msg := fmt.Sprintf("principal %q may not %s %s %q", p.Name, ck.op, ck.rt, ck.name)
			sec.Audit(auth.Event{Principal: p.Name, Via: p.Via, Action: "ws " + f.Op, Resource: string(ck.rt) + ":" + ck.name,
				Operation: string(ck.op), Result: "denied", Status: 403, Source: c.remote, Reason: msg})
			return fmt.Errorf("%w: %s", core.ErrForbidden, msg)
		}
	}
	return nil
}
