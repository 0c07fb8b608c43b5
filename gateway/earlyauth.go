package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// Answers from the headers, before the body (issue 12, findings 5 and 8).
//
// fasthttp calls headerGate.received (Server.HeaderReceived) after a
// request's headers and before its body. Two requests get their answer
// there, with the body left unread and the connection closed lingeringly
// (conn.go):
//
//   - a Content-Length past Config.MaxBodyBytes: 413 too_large, also when
//     the client sent "Expect: 100-continue" (it never gets a 100 and does
//     not send the body);
//   - with auth on, a request with a body to a non-public route whose
//     header credentials fail (headerAuth): 401 unauthenticated, with
//     WWW-Authenticate, audited once. Unauthenticated bodies are not read.
//
// fasthttp has no way to fail a request from HeaderReceived, so a refused
// request gets a per-request body limit of one byte: reading a larger body
// fails at once with ErrBodyTooLarge (from Content-Length, or the first
// chunk size) and headerGate.parseError answers 401 instead of 413. The
// verdict is kept by the request header's address until then. A refused
// request whose body is one byte or less is read and goes to the handler,
// which refuses it (and audits) as before.

const (
	// maxPendingRejects bounds the verdicts waiting for fasthttp's error
	// handler; past it a refused request goes the normal way (read, then
	// 401 from handle).
	maxPendingRejects = 1 << 12
	refusedBodyLimit  = 1 // bytes: the per-request body limit of a refusal
)

// headerGate holds the state of the header hooks of one Server (made in New).
type headerGate struct {
	s *Server
	// clientCerts: some TLS client presented a certificate, so the
	// listener asks for them; a request without header credentials may
	// then be authenticated by its certificate, which HeaderReceived cannot
	// see, and goes the normal way.
	clientCerts atomic.Bool

	pending atomic.Int32 // len(rejects), read without the lock
	mu      sync.Mutex
	rejects map[*fasthttp.RequestHeader]rejection
}

// rejection is a request refused from its headers: what its audit event
// needs once fasthttp has reset the request.
type rejection struct {
	action string // "POST /v1/topics/t/records"
	err    error  // core.ErrUnauthenticated
}

func newHeaderGate(s *Server) *headerGate {
	return &headerGate{s: s, rejects: map[*fasthttp.RequestHeader]rejection{}}
}

// received is fasthttp's HeaderReceived.
func (g *headerGate) received(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if g.pending.Load() != 0 {
		g.take(h) // a verdict left by an earlier request on this ctx
	}
	cl := h.ContentLength() // -1 chunked, -2 none (no body for a request)
	if cl == 0 || cl == -2 {
		return fasthttp.RequestConfig{}
	}
	if cl > g.s.cfg.MaxBodyBytes {
		// No "100 Continue": fasthttp then refuses from Content-Length
		// before reading the body (ErrBodyTooLarge → 413, parseError).
		h.Del(fasthttp.HeaderExpect)
	}
	sec := g.s.security()
	if sec == nil {
		return fasthttp.RequestConfig{}
	}
	err := g.s.headerAuth(h, sec, g.clientCerts.Load())
	if err == nil || g.pending.Load() >= maxPendingRejects {
		return fasthttp.RequestConfig{}
	}
	g.mu.Lock()
	g.rejects[h] = rejection{action: string(h.Method()) + " " + string(pathOf(h.RequestURI())), err: err}
	g.pending.Store(int32(len(g.rejects)))
	g.mu.Unlock()
	h.Del(fasthttp.HeaderExpect)
	return fasthttp.RequestConfig{MaxRequestBodySize: refusedBodyLimit}
}

// take removes and returns the verdict of h.
func (g *headerGate) take(h *fasthttp.RequestHeader) (rejection, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.rejects[h]
	if ok {
		delete(g.rejects, h)
		g.pending.Store(int32(len(g.rejects)))
	}
	return r, ok
}

// handler is fasthttp's Handler: it drops the verdict of a refused
// request whose tiny body was read (handle refuses it again), then serves.
func (g *headerGate) handler(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if g.pending.Load() != 0 {
			g.take(&ctx.Request.Header)
		}
		next(ctx)
	}
}

// parseError is fasthttp's ErrorHandler: the 401 of a request refused from
// its headers, else Server.handleParseError.
func (g *headerGate) parseError(ctx *fasthttp.RequestCtx, err error) {
	if g.pending.Load() != 0 {
		if r, ok := g.take(&ctx.Request.Header); ok && errors.Is(err, fasthttp.ErrBodyTooLarge) {
			if sec := g.s.security(); sec != nil {
				sec.Audit(auth.Event{Action: r.action, Result: "unauthenticated", Status: 401,
					Source: ctx.RemoteAddr().String(), Reason: r.err.Error()})
			}
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="weir"`)
			writeError(ctx, r.err)
			ctx.SetConnectionClose()
			lingerOnClose(ctx)
			return
		}
	}
	g.s.handleParseError(ctx, err)
}

// connState is fasthttp's ConnState: it notes that clients present
// certificates. StateActive comes after the TLS handshake (the first byte
// was read) and before the first request's headers.
func (g *headerGate) connState(c net.Conn, st fasthttp.ConnState) {
	if st != fasthttp.StateActive || g.clientCerts.Load() {
		return
	}
	if tc, ok := c.(*lingerTLSConn); ok && len(tc.ConnectionState().PeerCertificates) > 0 {
		g.clientCerts.Store(true)
	}
}

// headerAuth checks the credentials in a request's headers, before its
// body is read; nil admits the request to the normal path (handle, which
// authenticates and authorizes again). It refuses only what handle would
// refuse with 401: same credentials, same order (security.go
// authenticate). A public route is admitted (publicRoute). Without a
// header credential: refused, unless clientCerts (the connection may carry
// a client certificate, which is not visible here).
func (s *Server) headerAuth(h *fasthttp.RequestHeader, sec *auth.Service, clientCerts bool) error {
	method, uri := h.Method(), h.RequestURI()
	path := pathOf(uri)
	if s.publicRoute(method, path) {
		return nil
	}
	if v := h.Peek(NodeSecretHeader); len(v) > 0 {
		if sec.NodeSecretOK(bstr(v)) {
			return nil
		}
		return fmt.Errorf("%w: wrong cluster secret", core.ErrUnauthenticated)
	}
	if v := h.Peek(fasthttp.HeaderAuthorization); len(v) > 0 {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(bstr(v)), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", core.ErrUnauthenticated)
		}
		_, err := sec.Authenticate(strings.TrimSpace(tok))
		return err
	}
	if isWSPath(string(path)) {
		if i := bytes.IndexByte(uri, '?'); i >= 0 {
			args := fasthttp.AcquireArgs()
			defer fasthttp.ReleaseArgs(args)
			args.ParseBytes(uri[i+1:])
			if args.Has("token") {
				_, err := sec.Authenticate(string(args.Peek("token")))
				return err
			}
		}
	}
	if clientCerts {
		return nil
	}
	_, err := sec.Authenticate("")
	return err
}

// publicRoute reports whether a request needs no credentials: its row in
// the route table (routes.go) is public. The path is normalized the way
// fasthttp's ctx.Path() is ("/ui/../v1/x" is not public).
func (s *Server) publicRoute(method, path []byte) bool {
	u := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(u)
	u.SetPathBytes(path)
	r, _, err := routes.match(string(method), splitPath(string(u.Path())))
	return err == nil && r.access == accessPublic
}

// pathOf is the path part of a request URI (origin form, or absolute form
// "http://host/path").
func pathOf(uri []byte) []byte {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if len(uri) > 0 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			rest := uri[i+3:]
			if j := bytes.IndexByte(rest, '/'); j >= 0 {
				return rest[j:]
			}
			return []byte("/")
		}
	}
	return uri
}

// bstr views b as a string without copying; the string must not outlive
// b (the auth calls above keep nothing of it).
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
