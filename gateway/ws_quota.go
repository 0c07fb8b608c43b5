package gateway

import (
	"context"

	"github.com/weir-broker/weir/core/quota"
)

// WebSocket quotas (docs/quotas.md), with the HTTP rows' quota.Limiter
// (quota.go): every client frame is one request; a produce frame also
// charges its decoded records' bytes, both before it runs (a refusal is
// an error frame with code rate_limited and retry_after_ms, and writes
// nothing). Deliveries to subscriptions are pushes, slowed rather than
// refused: before each records or messages frame a subscription waits
// while the principal's fetch bucket is in debt, and the frame's bytes
// are charged once it is queued. The connection cap per principal
// (ws_security.go) stays as it is.

// wsOrigin names a connection's requests in the audit record of a
// throttling.
type wsOrigin struct {
	c      *wsConn
	action string
}

func (o *wsOrigin) QuotaOrigin() (action, source string) { return o.action, o.c.remote }

// admitFrame charges a client frame (cost) to the connection's principal,
// waiting up to the limiter's bound; ctx ends the wait.
func (c *wsConn) admitFrame(ctx context.Context, cost quota.Cost) error {
	l := c.hub.s.cfg.Quotas
	if !l.Applies(c.principal) {
		return nil
	}
	return l.Admit(ctx, c.principal, &c.frames, cost)
}

// awaitDelivery waits while the principal's fetch bucket is in debt
// (unbounded: the subscription is slowed down); ctx ends it.
func (c *wsConn) awaitDelivery(ctx context.Context) error {
	l := c.hub.s.cfg.Quotas
	if !l.Applies(c.principal) {
		return nil
	}
	return l.Await(ctx, c.principal, &c.deliveries, quota.Cost{Fetch: true})
}

// chargeDelivery charges n bytes delivered to the principal's fetch quota.
func (c *wsConn) chargeDelivery(n int) {
	c.hub.s.cfg.Quotas.Charge(c.principal, quota.Fetch, int64(n))
}
