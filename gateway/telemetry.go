package gateway

import (
	"context"

	"github.com/valyala/fasthttp"
)

// traceContext continues the client's trace: with tracing on, a request's
// traceparent header becomes the parent of the spans the request starts.
// With tracing off it returns rctx at no cost.
func (s *Server) traceContext(rctx context.Context, ctx *fasthttp.RequestCtx) context.Context {
	tel := s.broker.Telemetry()
	if !tel.Tracing() {
		return rctx
	}
	v := ctx.Request.Header.Peek("traceparent")
	if len(v) == 0 {
		return rctx
	}
	return tel.ContextWithTraceparent(rctx, string(v))
}
