package peer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/gateway/apierr"
)

// Prefix is the path node-to-node calls are served under; the gateway
// mounts Handler there with node-only access.
const Prefix = "/v1/internal/"

// HopsHeader counts the nodes a forwarded request has crossed. A fetch
// carrying it is served from the receiving node's own replica (tests use it
// to read one replica).
const HopsHeader = "Weir-Hops"

// deadlineHeader carries the caller's remaining time in milliseconds.
const deadlineHeader = "Weir-Deadline-Ms"

// ForwarderConfig tunes the node-to-node client. Zero values take the
// defaults named.
type ForwarderConfig struct {
	DialTimeout     time.Duration // default 1 s
	MaxConnsPerNode int           // default 1024
	// TLS, when set, makes node-to-node calls HTTPS with this client
	// configuration (the nodes serve HTTPS; docs/security.md).
	TLS *tls.Config
	// Secret is sent in auth.NodeSecretHeader on every call: the receiving
	// node requires it on internal endpoints when security is on.
	Secret string
}

// Forwarder is the HTTP client of node-to-node calls; it implements
// core.Forwarder (and the gateway's NodeProxy). Safe for concurrent use.
type Forwarder struct {
	c      *fasthttp.Client
	scheme string // "http://" or "https://"
	secret string
}

var _ core.Forwarder = (*Forwarder)(nil)

// NewForwarder returns a node-to-node client.
func NewForwarder(cfg ForwarderConfig) *Forwarder {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.MaxConnsPerNode <= 0 {
		cfg.MaxConnsPerNode = 1024
	}
	dt := cfg.DialTimeout
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
	}
	return &Forwarder{scheme: scheme, secret: cfg.Secret, c: &fasthttp.Client{
		TLSConfig:                cfg.TLS,
		Name:                     "weir-node",
		NoDefaultUserAgentHeader: true,
		MaxConnsPerHost:          cfg.MaxConnsPerNode,
		MaxIdleConnDuration:      30 * time.Second,
		ReadTimeout:              2 * time.Minute,
		WriteTimeout:             30 * time.Second,
		MaxResponseBodySize:      256 << 20,
		Dial:                     func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, dt) },
	}}
}

// do sends req and waits for resp until ctx ends. On an early return the
// exchange finishes in the background and releases its buffers.
func (f *Forwarder) do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) (release bool, err error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	req.Header.Set(deadlineHeader, strconv.FormatInt(max(1, time.Until(deadline).Milliseconds()), 10))
	if f.secret != "" {
		req.Header.Set(auth.NodeSecretHeader, f.secret)
	}
	done := make(chan error, 1)
	go func() { done <- f.c.DoDeadline(req, resp, deadline) }()
	select {
	case err := <-done:
		return true, classifyTransport(err)
	case <-ctx.Done():
		go func() {
			<-done
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}()
		return false, ctx.Err()
	}
}

// classifyTransport marks errors that prove the request never reached the
// node (nothing applied there) as not_leader, so the caller may try another.
func classifyTransport(err error) error {
	if err == nil {
		return nil
	}
	var op *net.OpError
	if errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, syscall.ECONNREFUSED) ||
		(errors.As(err, &op) && op.Op == "dial") || errors.Is(err, fasthttp.ErrNoFreeConns) {
		return fmt.Errorf("%w: %w: %v", core.ErrNotLeader, core.ErrUnavailable, err)
	}
	return err
}

// call runs one node-to-node request and decodes its error answer
// (apierr.Decode: the same sentinel or typed error the other node
// answered with); ok answers are left in resp for the caller.
func (f *Forwarder) call(ctx context.Context, method, url string, hops int, body []byte, ctype string, ok func(resp *fasthttp.Response) error) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	if hops > 0 {
		req.Header.Set(HopsHeader, strconv.Itoa(hops))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		// The receiving node's spans join the trace.
		req.Header.Set(core.TraceparentHeader, core.FormatTraceparent(sc))
	}
	if body != nil {
		req.Header.SetContentType(ctype)
		req.SetBodyRaw(body)
	}
	release, err := f.do(ctx, req, resp)
	if release {
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
	}
	if err != nil {
		return err
	}
	if resp.StatusCode() >= 300 {
		return apierr.Decode(resp.StatusCode(), resp.Body())
	}
	if ok != nil {
		return ok(resp)
	}
	return nil
}

func (f *Forwarder) partitionURL(to core.Route, op string) string {
	// Topic names are [A-Za-z0-9._-]: nothing to escape.
	return f.scheme + to.Addr + Prefix + op + "?topic=" + to.Topic + "&partition=" + strconv.Itoa(to.Partition)
}

// Append implements core.Forwarder.
func (f *Forwarder) Append(ctx context.Context, to core.Route, b *core.AppendBatch) (core.AppendResult, error) {
	body := encodeAppend(b)
	var res core.AppendResult
	err := f.call(ctx, "POST", f.partitionURL(to, "append"), to.Hops, body, "application/octet-stream", func(resp *fasthttp.Response) error {
		var out struct {
			BaseOffset int64 `json:"base_offset"`
			Duplicate  bool  `json:"duplicate"`
		}
		if err := json.Unmarshal(resp.Body(), &out); err != nil {
			return err
		}
		res = core.AppendResult{BaseOffset: out.BaseOffset, Duplicate: out.Duplicate}
		return nil
	})
	var se *core.SequenceError
	if errors.As(err, &se) {
		se.ProducerID, se.Got = b.ProducerID, b.Sequence
	}
	return res, err
}

// ApplyTxn implements core.Forwarder.
func (f *Forwarder) ApplyTxn(ctx context.Context, to core.Route, txn *core.StateTxn) (core.TxnResult, error) {
	body, err := json.Marshal(txn)
	if err != nil {
		return core.TxnResult{}, err
	}
	var res core.TxnResult
	err = f.call(ctx, "POST", f.partitionURL(to, "txn"), to.Hops, body, "application/json", func(resp *fasthttp.Response) error {
		return json.Unmarshal(resp.Body(), &res)
	})
	return res, err
}

// TrimTo implements core.Forwarder.
func (f *Forwarder) TrimTo(ctx context.Context, to core.Route, offset int64) error {
	return f.call(ctx, "POST", f.partitionURL(to, "trim")+"&offset="+strconv.FormatInt(offset, 10), to.Hops, []byte{}, "application/octet-stream", nil)
}

// Read implements core.Forwarder.
func (f *Forwarder) Read(ctx context.Context, to core.Route, r core.ReadRequest) (core.ReadResult, error) {
	url := f.partitionURL(to, "read") + "&from=" + strconv.FormatInt(r.From, 10) + "&max_records=" + strconv.Itoa(r.MaxRecords) +
		"&max_bytes=" + strconv.Itoa(r.MaxBytes) + "&timestamp=" + strconv.FormatInt(r.Timestamp, 10)
	var res core.ReadResult
	err := f.call(ctx, "GET", url, to.Hops, nil, "", func(resp *fasthttp.Response) error {
		var err error
		res, err = decodeReadResult(resp.Body())
		return err
	})
	return res, err
}

// State implements core.Forwarder.
func (f *Forwarder) State(ctx context.Context, to core.Route, prefix string, exact bool) (map[string][]byte, error) {
	url := f.partitionURL(to, "state") + "&prefix=" + string(fasthttp.AppendQuotedArg(nil, []byte(prefix)))
	if exact {
		url += "&exact=1"
	}
	var out map[string][]byte
	err := f.call(ctx, "GET", url, to.Hops, nil, "", func(resp *fasthttp.Response) error {
		return json.Unmarshal(resp.Body(), &out)
	})
	return out, err
}

// NodeStatus implements core.Forwarder.
func (f *Forwarder) NodeStatus(ctx context.Context, addr string) (core.NodeStatus, error) {
	var st core.NodeStatus
	err := f.call(ctx, "GET", f.scheme+addr+Prefix+"node", 1, nil, "", func(resp *fasthttp.Response) error {
		return json.Unmarshal(resp.Body(), &st)
	})
	return st, err
}

// Ping implements core.Forwarder.
func (f *Forwarder) Ping(ctx context.Context, addr string) error {
	return f.call(ctx, "GET", f.scheme+addr+"/healthz", 0, nil, "", nil)
}

// Hops reads HopsHeader of a request: how many nodes it crossed, 0 for a
// client's request.
func (f *Forwarder) Hops(ctx *fasthttp.RequestCtx) int { return hops(ctx) }

func hops(ctx *fasthttp.RequestCtx) int {
	v := ctx.Request.Header.Peek(HopsHeader)
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 1
	}
	return min(n, 16)
}

// Proxy sends a client's request as is to another node (marked with
// HopsHeader, so that node serves it itself) and copies the answer back.
// It reports false when the node could not be reached (nothing was written
// to ctx then).
func (f *Forwarder) Proxy(ctx *fasthttp.RequestCtx, addr string, hops int, deadline time.Time) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	ctx.Request.CopyTo(req)
	req.SetRequestURI(f.scheme + addr + string(ctx.RequestURI()))
	req.Header.Set(HopsHeader, strconv.Itoa(hops))
	if f.secret != "" {
		req.Header.Set(auth.NodeSecretHeader, f.secret)
	}
	if err := f.c.DoDeadline(req, resp, deadline); err != nil {
		return false
	}
	ctx.SetStatusCode(resp.StatusCode())
	ctx.Response.Header.SetContentTypeBytes(resp.Header.ContentType())
	if ra := resp.Header.Peek("Retry-After"); len(ra) > 0 {
		ctx.Response.Header.SetBytesV("Retry-After", ra)
	}
	ctx.SetBody(resp.Body())
	return true
}
