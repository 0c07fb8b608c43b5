package gateway

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// Node-to-node calls. A node that does not lead a partition forwards writes
// (and, without a replica, reads) to a node that does, over the same HTTP
// listener clients use, under /v1/internal/. Every forwarded call carries
// HopsHeader; a node forwards a call onwards only while the count is below
// the store's limit, so calls never loop. Clients never see not_leader: the
// forwarding node retries at the new leader within the request's deadline.

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
	// Secret is sent in NodeSecretHeader on every call: the receiving node
	// requires it on internal endpoints when security is on.
	Secret string
}

// NodeSecretHeader carries the cluster secret on node-to-node calls.
const NodeSecretHeader = "Weir-Node-Secret"

// Forwarder is the HTTP client of node-to-node calls; it implements
// core.Forwarder. Safe for concurrent use.
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
		req.Header.Set(NodeSecretHeader, f.secret)
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

// call runs one node-to-node request and decodes its error answer; ok
// answers are left in resp for the caller.
func (f *Forwarder) call(ctx context.Context, method, url string, hops int, body []byte, ctype string, ok func(resp *fasthttp.Response) error) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	if hops > 0 {
		req.Header.Set(HopsHeader, strconv.Itoa(hops))
	}
	injectTraceparent(ctx, req) // telemetry.go
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
		return decodeRemoteError(resp.StatusCode(), resp.Body())
	}
	if ok != nil {
		return ok(resp)
	}
	return nil
}

func (f *Forwarder) partitionURL(to core.Route, op string) string {
	return f.scheme + to.Addr + "/v1/internal/" + op + "?topic=" + urlEscape(to.Topic) + "&partition=" + strconv.Itoa(to.Partition)
}

func urlEscape(s string) string {
	// Topic names are [A-Za-z0-9._-]: nothing to escape.
	return s
}

// Append implements core.Forwarder.
func (f *Forwarder) Append(ctx context.Context, to core.Route, b *core.AppendBatch) (core.AppendResult, error) {
	body := encodeForwardAppend(b)
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
	err := f.call(ctx, "GET", f.scheme+addr+"/v1/internal/node", 1, nil, "", func(resp *fasthttp.Response) error {
		return json.Unmarshal(resp.Body(), &st)
	})
	return st, err
}

// Ping implements core.Forwarder.
func (f *Forwarder) Ping(ctx context.Context, addr string) error {
	return f.call(ctx, "GET", f.scheme+addr+"/healthz", 0, nil, "", nil)
}

// Proxy sends the client's request as is to another node (marked with
// HopsHeader) and copies the answer back. It reports false when the node
// could not be reached (nothing was written to ctx then).
func (f *Forwarder) Proxy(ctx *fasthttp.RequestCtx, addr string, hops int, deadline time.Time) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	ctx.Request.CopyTo(req)
	req.SetRequestURI(f.scheme + addr + string(ctx.RequestURI()))
	req.Header.Set(HopsHeader, strconv.Itoa(hops))
	if f.secret != "" {
		req.Header.Set(NodeSecretHeader, f.secret)
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

// remoteError is the error body internal endpoints answer with: the public
// shape plus what the caller needs to rebuild the domain error.
type remoteError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Leader        uint64 `json:"leader,omitempty"`
	Expected      int64  `json:"expected,omitempty"`
	LogStart      int64  `json:"log_start_offset,omitempty"`
	HighWatermark int64  `json:"high_watermark,omitempty"`
}

func decodeRemoteError(status int, body []byte) error {
	var re remoteError
	if json.Unmarshal(body, &re) != nil || re.Error.Code == "" {
		return fmt.Errorf("node answered HTTP %d: %.200s", status, body)
	}
	msg := re.Error.Message
	switch re.Error.Code {
	case "not_leader":
		return &core.NotLeaderError{Leader: re.Leader, Msg: msg}
	case "out_of_order_sequence":
		return &core.SequenceError{Expected: re.Expected}
	case "offset_out_of_range":
		return &core.OffsetRangeError{LogStart: re.LogStart, HighWatermark: re.HighWatermark}
	case "bad_request":
		return core.Invalidf("%s", msg)
	case "topic_not_found":
		return fmt.Errorf("%w: %s", core.ErrTopicNotFound, msg)
	case "partition_not_found":
		return fmt.Errorf("%w: %s", core.ErrPartitionNotFound, msg)
	case "too_large":
		return fmt.Errorf("%w: %s", core.ErrTooLarge, msg)
	case "rate_limited":
		return fmt.Errorf("%w: %s", core.ErrRateLimited, msg)
	case "unavailable":
		return fmt.Errorf("%w: %s", core.ErrUnavailable, msg)
	}
	return fmt.Errorf("node answered %s: %s", re.Error.Code, msg)
}

// writeInternalError answers a node-to-node call.
func writeInternalError(ctx *fasthttp.RequestCtx, err error) {
	status, code := ErrorStatus(err)
	var re remoteError
	re.Error.Code, re.Error.Message = code, err.Error()
	var nl *core.NotLeaderError
	if errors.As(err, &nl) {
		re.Leader = nl.Leader
	}
	if errors.Is(err, core.ErrNotLeader) {
		status, re.Error.Code = http.StatusServiceUnavailable, "not_leader"
	}
	var se *core.SequenceError
	if errors.As(err, &se) {
		re.Expected = se.Expected
	}
	var oe *core.OffsetRangeError
	if errors.As(err, &oe) {
		re.LogStart, re.HighWatermark = oe.LogStart, oe.HighWatermark
	}
	b, _ := json.Marshal(re)
	writeJSON(ctx, status, b)
}

// Wire format of a forwarded append:
//
//	uvarint len(producerID), producerID, varint sequence, varint timestamp,
//	records (core.AppendRecords)
func encodeForwardAppend(b *core.AppendBatch) []byte {
	size := 32 + len(b.ProducerID)
	for i := range b.Records {
		size += b.Records[i].Size()
	}
	out := make([]byte, 0, size)
	out = binary.AppendUvarint(out, uint64(len(b.ProducerID)))
	out = append(out, b.ProducerID...)
	out = binary.AppendVarint(out, b.Sequence)
	out = binary.AppendVarint(out, b.Timestamp)
	return core.AppendRecords(out, b.Records)
}

func decodeForwardAppend(body []byte) (*core.AppendBatch, error) {
	bad := core.Invalidf("malformed forwarded batch")
	n, k := binary.Uvarint(body)
	if k <= 0 || n > uint64(len(body)-k) || n > 255 {
		return nil, bad
	}
	b := &core.AppendBatch{ProducerID: string(body[k : k+int(n)])}
	body = body[k+int(n):]
	if b.Sequence, k = binary.Varint(body); k <= 0 {
		return nil, bad
	}
	body = body[k:]
	if b.Timestamp, k = binary.Varint(body); k <= 0 {
		return nil, bad
	}
	recs, err := core.DecodeRecords(nil, body[k:], 0)
	if err != nil {
		return nil, bad
	}
	b.Records = recs
	return b, nil
}

// Wire format of a read answer:
//
//	varint hwm, varint logStart, varint offset, varint firstOffset,
//	records (core.AppendRecords; offsets are dense from firstOffset)
func encodeReadResult(r core.ReadResult) []byte {
	out := make([]byte, 0, 64)
	out = binary.AppendVarint(out, r.HighWatermark)
	out = binary.AppendVarint(out, r.LogStart)
	out = binary.AppendVarint(out, r.Offset)
	first := int64(0)
	if len(r.Records) > 0 {
		first = r.Records[0].Offset
	}
	out = binary.AppendVarint(out, first)
	return core.AppendRecords(out, r.Records)
}

func decodeReadResult(b []byte) (core.ReadResult, error) {
	var r core.ReadResult
	vals := make([]int64, 4)
	for i := range vals {
		v, k := binary.Varint(b)
		if k <= 0 {
			return r, core.ErrCorruptBatch
		}
		vals[i], b = v, b[k:]
	}
	r.HighWatermark, r.LogStart, r.Offset = vals[0], vals[1], vals[2]
	recs, err := core.DecodeRecords(nil, b, vals[3])
	if err != nil {
		return r, err
	}
	r.Records = recs
	return r, nil
}

// hops reads HopsHeader (0 for a client's request).
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

// forwardedContext is the context of a node-to-node call: the caller's
// remaining time, capped by the gateway's own limit.
func (s *Server) forwardedContext(ctx *fasthttp.RequestCtx, limit time.Duration) (context.Context, context.CancelFunc) {
	d := limit
	if v := ctx.Request.Header.Peek(deadlineHeader); len(v) > 0 {
		if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil && ms > 0 {
			d = min(d, time.Duration(ms)*time.Millisecond)
		}
	}
	return s.requestContext(d)
}

// routeInternal serves /v1/internal/...: calls from other nodes.
// internal serves /v1/internal/* (calls from other nodes; the route table
// admits only them).
func (s *Server) internal(ctx *fasthttp.RequestCtx) {
	s.routeInternal(ctx, string(ctx.Method()), splitPath(string(ctx.Path()))[2:])
}

func (s *Server) routeInternal(ctx *fasthttp.RequestCtx, method string, seg []string) {
	c, ok := s.broker.Store().(core.Cluster)
	if !ok || len(seg) != 1 {
		writeError(ctx, errNotFound)
		return
	}
	if seg[0] == "node" {
		b, _ := json.Marshal(c.LocalStatus())
		writeJSON(ctx, 200, b)
		return
	}
	q := ctx.QueryArgs()
	topic := string(q.Peek("topic"))
	p, err := strconv.Atoi(string(q.Peek("partition")))
	if err != nil || p < 0 {
		writeInternalError(ctx, core.Invalidf("partition must be a number ≥ 0"))
		return
	}
	log, err := c.ForwardedPartition(topic, p, max(1, hops(ctx)))
	if err != nil {
		writeInternalError(ctx, err)
		return
	}
	rctx, cancel := s.forwardedContext(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	switch {
	case seg[0] == "append" && method == "POST":
		b, err := decodeForwardAppend(ctx.PostBody())
		if err != nil {
			writeInternalError(ctx, err)
			return
		}
		res, err := s.broker.Telemetry().Append(s.traceContext(rctx, ctx), log, topic, p, b) // a commit span on this node too
		if err != nil {
			writeInternalError(ctx, err)
			return
		}
		out := append([]byte(`{"base_offset":`), strconv.FormatInt(res.BaseOffset, 10)...)
		out = append(out, `,"duplicate":`...)
		out = strconv.AppendBool(out, res.Duplicate)
		writeJSON(ctx, 200, append(out, '}'))
	case seg[0] == "txn" && method == "POST":
		var txn core.StateTxn
		if err := json.Unmarshal(ctx.PostBody(), &txn); err != nil {
			writeInternalError(ctx, core.Invalidf("malformed forwarded transaction: %v", err))
			return
		}
		res, err := log.ApplyTxn(rctx, &txn)
		if err != nil {
			writeInternalError(ctx, err)
			return
		}
		b, _ := json.Marshal(res)
		writeJSON(ctx, 200, b)
	case seg[0] == "trim" && method == "POST":
		off, err := strconv.ParseInt(string(q.Peek("offset")), 10, 64)
		if err != nil {
			writeInternalError(ctx, core.Invalidf("offset must be a number"))
			return
		}
		if err := log.TrimTo(rctx, off); err != nil {
			writeInternalError(ctx, err)
			return
		}
		writeJSON(ctx, 200, []byte(`{}`))
	case seg[0] == "read" && method == "GET":
		if !c.HostsReplica(topic, p) {
			// Not hosted here (a routed handle without a local replica).
			writeInternalError(ctx, &core.NotLeaderError{Msg: "no local replica"})
			return
		}
		var res core.ReadResult
		ts, _ := strconv.ParseInt(string(q.Peek("timestamp")), 10, 64)
		from, _ := strconv.ParseInt(string(q.Peek("from")), 10, 64)
		maxRecs, _ := strconv.Atoi(string(q.Peek("max_records")))
		maxBytes, _ := strconv.Atoi(string(q.Peek("max_bytes")))
		switch {
		case ts >= 0 && q.Has("timestamp"):
			res.Offset, err = log.OffsetForTime(rctx, ts)
		case from >= 0 && maxRecs > 0:
			res.Records, err = log.Read(rctx, from, maxRecs, maxBytes)
		}
		if err != nil {
			writeInternalError(ctx, err)
			return
		}
		res.HighWatermark, res.LogStart = log.HighWatermark(), log.LogStart()
		ctx.Response.Header.SetContentType("application/octet-stream")
		ctx.SetBody(encodeReadResult(res))
	case seg[0] == "state" && method == "GET":
		if !c.HostsReplica(topic, p) {
			writeInternalError(ctx, &core.NotLeaderError{Msg: "no local replica"})
			return
		}
		prefix := string(q.Peek("prefix"))
		out := map[string][]byte{}
		if q.Has("exact") {
			if v, ok := log.StateGet(prefix); ok {
				out[prefix] = v
			}
		} else {
			log.StateScan(prefix, func(k string, v []byte) bool { out[k] = v; return true })
		}
		b, _ := json.Marshal(out)
		writeJSON(ctx, 200, b)
	default:
		writeError(ctx, errNotFound)
	}
}
