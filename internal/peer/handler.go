package peer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway/apierr"
)

// HandlerConfig configures the server side of node-to-node calls.
type HandlerConfig struct {
	// Cluster is this node's store: calls are served from its partitions
	// (ForwardedPartition, HostsReplica, LocalStatus). Required.
	Cluster core.Cluster
	// Telemetry records the commit span of a forwarded append and continues
	// the caller's trace; nil: none.
	Telemetry *core.Telemetry
	// Timeout bounds a call; a caller's shorter remaining time (sent with
	// the call) wins. Default 30 s (the gateway's produce timeout).
	Timeout time.Duration
}

// Validate reports a configuration NewHandler cannot use.
func (c *HandlerConfig) Validate() error {
	if c.Cluster == nil {
		return errors.New("peer: HandlerConfig.Cluster is required")
	}
	return nil
}

// Handler serves node-to-node calls under Prefix; Serve is its
// fasthttp.RequestHandler, safe for concurrent use. It authorizes nothing:
// the gateway that mounts it admits only other nodes.
type Handler struct {
	cfg HandlerConfig

	once   sync.Once
	base   context.Context // ends at Close: every call's context derives from it
	cancel context.CancelFunc
}

// NewHandler returns the handler of /v1/internal/*.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	h := &Handler{cfg: cfg}
	h.base, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Close ends the calls still running (their callers see unavailable).
// Call it once the listener serving Handler stopped taking requests.
func (h *Handler) Close() { h.once.Do(h.cancel) }

// callContext is the context of one call: the caller's remaining time,
// capped by the handler's timeout, ended by Close; with tracing on it
// continues the caller's trace.
func (h *Handler) callContext(ctx *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	d := h.cfg.Timeout
	if v := ctx.Request.Header.Peek(deadlineHeader); len(v) > 0 {
		if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil && ms > 0 {
			d = min(d, time.Duration(ms)*time.Millisecond)
		}
	}
	rctx, cancel := context.WithTimeout(h.base, d)
	if tp := ctx.Request.Header.Peek(core.TraceparentHeader); len(tp) > 0 {
		rctx = h.cfg.Telemetry.ContextWithTraceparent(rctx, string(tp))
	}
	return rctx, cancel
}

// Serve answers one call: /v1/internal/{node,append,txn,trim,read,state}.
// Errors are answered with the API's table (apierr.AppendNodeBody), except
// that not_leader wins over any other code the error wraps: the caller may
// then retry at another node, the call was certainly not applied here.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) {
	op, ok := strings.CutPrefix(string(ctx.Path()), Prefix)
	op = strings.Trim(op, "/")
	if !ok || op == "" || strings.Contains(op, "/") {
		writeError(ctx, apierr.ErrNotFound)
		return
	}
	c := h.cfg.Cluster
	if op == "node" {
		b, _ := json.Marshal(c.LocalStatus())
		writeJSON(ctx, b)
		return
	}
	if m := callMethod(op); m == "" || string(ctx.Method()) != m {
		writeError(ctx, apierr.ErrNotFound)
		return
	}
	q := ctx.QueryArgs()
	topic := string(q.Peek("topic"))
	p, err := strconv.Atoi(string(q.Peek("partition")))
	if err != nil || p < 0 {
		writeError(ctx, core.Invalidf("partition must be a number ≥ 0"))
		return
	}
	log, err := c.ForwardedPartition(topic, p, max(1, hops(ctx)))
	if err != nil {
		writeError(ctx, err)
		return
	}
	rctx, cancel := h.callContext(ctx)
	defer cancel()
	switch op {
	case "append":
		err = h.serveAppend(rctx, ctx, log, topic, p)
	case "txn":
		err = serveTxn(rctx, ctx, log)
	case "trim":
		err = serveTrim(rctx, ctx, log)
	case "read":
		err = h.serveRead(rctx, ctx, log, topic, p)
	case "state":
		err = h.serveState(ctx, log, topic, p)
	}
	if err != nil {
		writeError(ctx, err)
	}
}

// serveAppend appends a forwarded batch to log (topic/p) and answers its
// base offset and whether it was a duplicate.
func (h *Handler) serveAppend(rctx context.Context, ctx *fasthttp.RequestCtx, log core.PartitionLog, topic string, p int) error {
	b, err := decodeAppend(ctx.PostBody())
	if err != nil {
		return err
	}
	res, err := h.cfg.Telemetry.Append(rctx, log, topic, p, b) // a commit span on this node too
	if err != nil {
		return err
	}
	out := append([]byte(`{"base_offset":`), strconv.FormatInt(res.BaseOffset, 10)...)
	out = append(out, `,"duplicate":`...)
	out = strconv.AppendBool(out, res.Duplicate)
	writeJSON(ctx, append(out, '}'))
	return nil
}

// serveTxn applies a forwarded state transaction to log and answers its
// result.
func serveTxn(rctx context.Context, ctx *fasthttp.RequestCtx, log core.PartitionLog) error {
	var txn core.StateTxn
	if err := json.Unmarshal(ctx.PostBody(), &txn); err != nil {
		return core.Invalidf("malformed forwarded transaction: %v", err)
	}
	res, err := log.ApplyTxn(rctx, &txn)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(res)
	writeJSON(ctx, b)
	return nil
}

// serveTrim trims log to the call's offset.
func serveTrim(rctx context.Context, ctx *fasthttp.RequestCtx, log core.PartitionLog) error {
	off, err := strconv.ParseInt(string(ctx.QueryArgs().Peek("offset")), 10, 64)
	if err != nil {
		return core.Invalidf("offset must be a number")
	}
	if err := log.TrimTo(rctx, off); err != nil {
		return err
	}
	writeJSON(ctx, []byte(`{}`))
	return nil
}

// serveRead answers a read of the local replica of topic/p: the offset
// for a timestamp, or records from an offset, with the watermarks.
func (h *Handler) serveRead(rctx context.Context, ctx *fasthttp.RequestCtx, log core.PartitionLog, topic string, p int) error {
	if !h.cfg.Cluster.HostsReplica(topic, p) {
		// Not hosted here (a routed handle without a local replica).
		return &core.NotLeaderError{Msg: "no local replica"}
	}
	q := ctx.QueryArgs()
	var res core.ReadResult
	var err error
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
		return err
	}
	res.HighWatermark, res.LogStart = log.HighWatermark(), log.LogStart()
	ctx.Response.Header.SetContentType("application/octet-stream")
	ctx.SetBody(encodeReadResult(res))
	return nil
}

// serveState answers the local replica's state of topic/p: the key equal
// to the call's prefix (exact), or every key under it.
func (h *Handler) serveState(ctx *fasthttp.RequestCtx, log core.PartitionLog, topic string, p int) error {
	if !h.cfg.Cluster.HostsReplica(topic, p) {
		return &core.NotLeaderError{Msg: "no local replica"}
	}
	q := ctx.QueryArgs()
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
	writeJSON(ctx, b)
	return nil
}

// callMethod is the method of a call on one partition ("": no such call).
func callMethod(op string) string {
	switch op {
	case "append", "txn", "trim":
		return "POST"
	case "read", "state":
		return "GET"
	}
	return ""
}

// writeError answers a call with err (see Serve).
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := apierr.Status(err)
	if errors.Is(err, core.ErrNotLeader) {
		status, code = http.StatusServiceUnavailable, "not_leader"
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(apierr.AppendNodeBody(make([]byte, 0, 128), code, err))
}

func writeJSON(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetBody(body)
}
