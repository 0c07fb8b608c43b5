package gateway

import (
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/quota"
)

// Quotas (docs/quotas.md). Every row of the route table that a principal
// calls (neither public nor node-only) charges one request to the
// caller's quota once its request is decoded and authorized, before it
// runs: a refusal (429 rate_limited with Retry-After) has done nothing.
// A row may meter more, from the same decoded value:
//
//   - meter(quota.Produce): the request type reports the bytes of its
//     decoded records (producedBytes), charged with the request;
//   - meter(quota.Fetch): the request waits while the caller's fetch
//     bucket is in debt, and the bytes of its answer are charged after it
//     ran (what a read returns is known only then).
//
// The WebSocket frames (ws_quota.go) and the Kafka listener use the same
// quota.Limiter.

// meter makes a row charge kind besides its request (see above).
func meter(k quota.Kind) routeOpt { return func(r *route) { r.meter = k } }

// producer is a request type of a meter(quota.Produce) row.
type producer interface {
	// producedBytes is the size of the decoded records the request
	// writes (core.Record.Size: what weir_topic_bytes_in counts).
	producedBytes() int64
}

// QuotaOrigin implements quota.Origin: the audit record of a throttled
// request names its method, path and client address.
func (c *call) QuotaOrigin() (action, source string) {
	return c.action(), c.ctx.RemoteAddr().String()
}

// metered reports whether the row charges the caller's quota at all.
func (r *route) metered() bool { return r.access != accessPublic && r.access != accessNode }

// admitQuota charges the decoded request req (a pointer to the row's
// request type) to the caller's quota, waiting up to the limiter's bound;
// false: refused, and answered.
func (c *call) admitQuota(req any) bool {
	l := c.s.cfg.Quotas
	if !c.r.metered() || !l.Applies(c.p) {
		return true
	}
	cost := quota.Cost{Requests: 1}
	switch c.r.meter {
	case quota.Produce:
		cost.Produce = req.(producer).producedBytes()
	case quota.Fetch:
		cost.Fetch = true
	}
	if err := l.Admit(c.s.baseCtx, c.p, c, cost); err != nil {
		writeError(c.ctx, err)
		return false
	}
	return true
}

// settleQuota charges the answer of a meter(quota.Fetch) row (its body's
// bytes, on success) to the caller's fetch quota.
func (c *call) settleQuota() {
	if c.r.meter == quota.Fetch && c.ctx.Response.StatusCode() == 200 {
		c.s.cfg.Quotas.Charge(c.p, quota.Fetch, int64(len(c.ctx.Response.Body())))
	}
}

// The /v1/quotas endpoints (admins only).

type quotaReq struct {
	Principal string `path:"principal" json:"-"`
}

// setQuotaReq is PUT /v1/quotas/{principal}: absent limits are 0
// (unlimited); "principal" in the body, when given, must be the path's
// (so that a listed quota can be sent back as it is).
type setQuotaReq struct {
	Name               string `path:"principal" json:"-"`
	Principal          string `json:"principal"`
	ProduceBytesPerSec int64  `json:"produce_bytes_per_sec"`
	FetchBytesPerSec   int64  `json:"fetch_bytes_per_sec"`
	RequestsPerSec     int64  `json:"requests_per_sec"`
}

// quotas returns the limiter, or answers 404 when the node has none.
func (s *Server) quotas(c *call) (*quota.Limiter, bool) {
	if s.cfg.Quotas == nil {
		writeError(c.ctx, &StatusError{Status: 404, Code: "not_found", Msg: "quotas are not configured on this node"})
	}
	return s.cfg.Quotas, s.cfg.Quotas != nil
}

func (s *Server) setQuota(c *call, r *setQuotaReq) {
	l, ok := s.quotas(c)
	if !ok {
		return
	}
	if r.Principal != "" && r.Principal != r.Name {
		writeError(c.ctx, core.Invalidf("the body's principal %q is not the path's %q", r.Principal, r.Name))
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	q, err := l.Set(rctx, quota.Quota{Principal: r.Name, ProduceBytesPerSec: r.ProduceBytesPerSec,
		FetchBytesPerSec: r.FetchBytesPerSec, RequestsPerSec: r.RequestsPerSec})
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 200, q)
}

func (s *Server) listQuotas(c *call, _ *listReq) {
	if l, ok := s.quotas(c); ok {
		writeValue(c.ctx, 200, map[string]any{"quotas": l.List()})
	}
}

func (s *Server) getQuota(c *call, r *quotaReq) {
	l, ok := s.quotas(c)
	if !ok {
		return
	}
	q, err := l.Get(r.Principal)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 200, q)
}

func (s *Server) removeQuota(c *call, r *quotaReq) {
	l, ok := s.quotas(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := l.Remove(rctx, r.Principal); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}
