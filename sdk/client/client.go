package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Weir node's /v1 API (any node serves every call). It
// is safe for concurrent use by many goroutines; create one per cluster
// address and share it.
type Client struct {
	base       string // scheme://host:port, no trailing slash
	hc         *http.Client
	token      string
	propagate  Propagator
	retries    int
	backoffMin time.Duration
	backoffMax time.Duration
	binary     bool
	maxBody    int64
	header     http.Header // WithHeader
}

// Option configures a Client (New).
type Option func(*Client)

// Propagator writes the trace context of ctx into the headers of an
// outgoing request (W3C traceparent/tracestate). With OpenTelemetry:
//
//	client.WithPropagator(func(ctx context.Context, h http.Header) {
//		otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
//	})
//
// The broker continues the trace in its produce span and stores the
// traceparent in the produced records (docs/observability.md).
type Propagator func(ctx context.Context, h http.Header)

// WithToken sends token (an API token or a JWT) as a bearer token on every
// request and on WebSocket handshakes. Default: none (auth off, or mTLS).
func WithToken(token string) Option { return func(c *Client) { c.token = strings.TrimSpace(token) } }

// WithTLSConfig sets the TLS configuration of https:// and wss:// calls
// (a private CA in RootCAs, a client certificate for mTLS in
// Certificates). Default: Go's (system roots, no client certificate).
// Ignored when WithHTTPClient is given.
func WithTLSConfig(tc *tls.Config) Option {
	return func(c *Client) {
		c.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
	}
}

// WithHTTPClient uses hc for every HTTP call (its Transport's TLS
// configuration also serves WebSocket dials when it is an
// *http.Transport). Default: a client with no overall timeout (calls end
// with their context; long-polls last up to their wait) and 64 idle
// connections per host.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithHeader sends a header on every request and WebSocket handshake
// (repeat it for several). Default: none.
func WithHeader(name, value string) Option {
	return func(c *Client) {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Add(name, value)
	}
}

// WithPropagator injects the caller's trace context into every request
// (see Propagator). Default: none.
func WithPropagator(p Propagator) Option { return func(c *Client) { c.propagate = p } }

// WithRetries sets how many times a retryable failure is retried (see
// Retry behaviour in the package doc). Default 5; 0 turns retries off.
func WithRetries(n int) Option { return func(c *Client) { c.retries = max(n, 0) } }

// WithBackoff sets the exponential backoff between retries: the first
// wait is min, doubling up to max, each with up to 20% jitter; a
// Retry-After header of the answer wins when it is longer. Default 100 ms
// and 5 s.
func WithBackoff(min, max time.Duration) Option {
	return func(c *Client) { c.backoffMin, c.backoffMax = min, max }
}

// WithJSON makes produce and fetch use JSON bodies (keys and values in
// base64) instead of the binary framing application/vnd.weir.records,
// e.g. through a proxy that only passes JSON. Default: binary.
func WithJSON() Option { return func(c *Client) { c.binary = false } }

// WithMaxResponseBytes bounds how much of an answer is read. Default
// 64 MiB (a fetch answers at most 16 MiB of records).
func WithMaxResponseBytes(n int64) Option { return func(c *Client) { c.maxBody = n } }

// New returns a client of the node at addr: "http://host:port",
// "https://host:port" or "host:port" (http). It does not connect.
func New(addr string, opts ...Option) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("client: bad address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: address %q must be http(s)://host:port", addr)
	}
	c := &Client{base: strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), retries: 5,
		backoffMin: 100 * time.Millisecond, backoffMax: 5 * time.Second, binary: true, maxBody: 64 << 20}
	WithTLSConfig(nil)(c)
	for _, o := range opts {
		o(c)
	}
	if c.backoffMin <= 0 || c.backoffMax < c.backoffMin {
		return nil, fmt.Errorf("client: backoff %s..%s: min must be > 0 and ≤ max", c.backoffMin, c.backoffMax)
	}
	return c, nil
}

// Addr returns the node's base URL.
func (c *Client) Addr() string { return c.base }

// request is one API call.
type request struct {
	method     string
	path       string // with the query
	body       []byte
	ct         string // content type of body
	accept     string
	idempotent bool // retried on 503 and transport errors
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r, retrying what may be retried (see the package doc), and
// returns a 2xx answer or an error (an *Error for an API error answer).
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, r)
		if err == nil && resp.status < 300 {
			return resp, nil
		}
		var retryAfter time.Duration
		if err == nil {
			apiErr := decodeError(resp)
			err = apiErr
			if !retryable(apiErr, r.idempotent) {
				return nil, err
			}
			retryAfter = apiErr.RetryAfter
		} else if !r.idempotent || ctx.Err() != nil {
			return nil, err
		}
		if attempt >= c.retries {
			return nil, err
		}
		if werr := sleep(ctx, c.backoff(attempt, retryAfter)); werr != nil {
			return nil, err
		}
	}
}

// retryable: a 429 did nothing (the broker refuses before any work), so
// any call may be sent again; a 503 (unavailable, not_leader) may have
// happened after the work began, so only idempotent calls are. An answer
// with per-partition results committed part of the request: never resent
// whole (the caller resends ProduceError.Failed).
func retryable(e *Error, idempotent bool) bool {
	if len(e.partitions) > 0 {
		return false
	}
	switch e.Status {
	case http.StatusTooManyRequests:
		return true
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := c.backoffMin << min(attempt, 30)
	if d > c.backoffMax || d <= 0 {
		d = c.backoffMax
	}
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	return max(d, retryAfter)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) once(ctx context.Context, r request) (*response, error) {
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, rd)
	if err != nil {
		return nil, err
	}
	if r.ct != "" {
		req.Header.Set("Content-Type", r.ct)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	c.setHeaders(ctx, req.Header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > c.maxBody {
		return nil, fmt.Errorf("client: answer of %s %s is larger than %d bytes", r.method, r.path, c.maxBody)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// setHeaders adds the bearer token and the trace context.
func (c *Client) setHeaders(ctx context.Context, h http.Header) {
	for k, v := range c.header {
		h[k] = v
	}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	if c.propagate != nil {
		c.propagate(ctx, h)
	}
}

// call sends a JSON body (nil: none) and decodes a JSON answer into out
// (nil: ignored).
func (c *Client) call(ctx context.Context, method, path string, in, out any, idempotent bool) error {
	r := request{method: method, path: path, idempotent: idempotent}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r.body, r.ct = b, "application/json"
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	return decodeInto(resp, out)
}

func decodeInto(resp *response, out any) error {
	if out == nil || len(resp.body) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], resp.body...)
		return nil
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return fmt.Errorf("client: decode answer: %w", err)
	}
	return nil
}

// Do sends any /v1 request: in is sent as JSON (nil: no body; []byte: as
// is, application/octet-stream), and a JSON answer is decoded into out
// (nil: ignored; *json.RawMessage: kept as is). It is retried like a
// typed call when idempotent is true. An error answer is an *Error.
// For routes this package has no method for yet.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, idempotent bool) error {
	if b, ok := in.([]byte); ok {
		resp, err := c.do(ctx, request{method: method, path: path, body: b, ct: "application/octet-stream", idempotent: idempotent})
		if err != nil {
			return err
		}
		return decodeInto(resp, out)
	}
	return c.call(ctx, method, path, in, out, idempotent)
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }

// query builds "?a=b&c=d" from pairs, skipping empty values.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// ms converts a duration to whole milliseconds (at least 1 when positive).
func ms(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}
