package kafka

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/quota"
)

// Quotas (docs/quotas.md, docs/kafka.md), with the gateway's quota.Limiter:
// every request is one request, a Produce also its decoded records' bytes
// (reserved before anything is written), a Fetch waits while the fetch
// bucket is in debt and is charged the record bytes it returns. As Kafka
// brokers do since KIP-219, a throttled request is answered first with
// throttle_time_ms and the connection is then muted that long (the client
// also waits). A Produce or Fetch that could not be admitted within the
// limiter's bound is not executed: a Produce answers THROTTLING_QUOTA_EXCEEDED
// on every partition, a Fetch an empty response, both with throttle_time_ms
// set to when a retry can be admitted. Other requests are never refused:
// they wait as long as the quota needs.

// QuotaOrigin implements quota.Origin for the audit record of a throttling.
func (c *conn) QuotaOrigin() (action, source string) {
	return "kafka " + kmsg.NameForKey(c.api), c.addr
}

// reserve charges cost to the connection's principal within maxWait; the
// delay it must take is added to the connection's throttle.
func (c *conn) reserve(cost quota.Cost, maxWait time.Duration) error {
	l := c.s.cfg.Quotas
	if !l.Applies(c.principal) {
		return nil
	}
	w, err := l.Reserve(c.principal, c, cost, maxWait)
	c.throttle += w
	c.muteFor += w
	var rl *core.RateLimitError
	if errors.As(err, &rl) {
		// Refused, nothing used: the client is told when to retry; the
		// connection is not muted.
		c.throttle = max(c.throttle, rl.RetryAfter)
	}
	return err
}

// admitRequest charges one request for the APIs that do not charge
// themselves (Produce and Fetch do, with their bytes; the handshake and
// SASL are free).
func (c *conn) admitRequest(key int16) {
	switch key {
	case 0, 1, apiVersionsKey, 17, 36:
		return
	}
	c.reserve(quota.Cost{Requests: 1}, quota.NoBound) // never refused
}

// throttled sets the response's throttle_time_ms (when it has one) to d.
func throttled(resp kmsg.Response, d time.Duration) {
	if d <= 0 {
		return
	}
	if t, ok := resp.(kmsg.SetThrottleResponse); ok {
		ms := max(d.Milliseconds(), 1)
		t.SetThrottle(int32(min(ms, math.MaxInt32)))
	}
}

// mute waits out the connection's throttle before its next request is
// read (the server's side of KIP-219); it reports false when the server
// is closing.
func (c *conn) mute() bool {
	d := c.muteFor
	c.throttle, c.muteFor = 0, 0
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.s.ctx.Done():
		return false
	}
}

// fetchQuota serves a Fetch within the principal's fetch quota. Refused
// (the fetch bucket is deeper in debt than the bound lets it wait out):
// an empty response whose throttle_time_ms says when to retry. Else the
// record bytes returned are charged (after the fact, as Kafka does).
func (c *conn) fetchQuota(ctx context.Context, r *kmsg.FetchRequest) *kmsg.FetchResponse {
	if err := c.reserve(quota.Cost{Requests: 1, Fetch: true}, c.s.cfg.Quotas.MaxWait()); err != nil {
		return r.ResponseKind().(*kmsg.FetchResponse)
	}
	resp := c.fetch(ctx, r)
	var n int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			n += int64(len(p.RecordBatches))
		}
	}
	c.s.cfg.Quotas.Charge(c.principal, quota.Fetch, n)
	return resp
}
