package gateway

import (
	"context"
	"errors"
	"net"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-broker/weir/core"
)

// Telemetry of WebSocket delivery (docs/observability.md): a weir.deliver
// span per records frame, from the moment it is queued until it is written
// to the socket, in the trace of the frame's first record (linked to the
// others); records and bytes out; connections; clients dropped because a
// write timed out (a consumer too slow to read).

// chunkTraceparents returns the traceparent header of each record, or nil
// when none has one (the common case with tracing off or unsampled).
func chunkTraceparents(recs []core.Record) []string {
	var tps []string
	for i := range recs {
		if v, ok := recs[i].Header(core.TraceparentHeader); ok {
			if tps == nil {
				tps = make([]string, len(recs))
			}
			tps[i] = v
		}
	}
	return tps
}

// traceparents returns the traceparents of the n records at off as get
// returned them, or nil.
func (f *feed) traceparents(off int64, n int) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for i := len(f.chunks) - 1; i >= 0; i-- {
		if c := f.chunks[i]; c.from <= off && off < c.end() {
			if c.tps == nil {
				return nil
			}
			lo := int(max64(off-c.base, 0))
			return c.tps[lo:min(len(c.tps), lo+n)]
		}
	}
	return nil
}

// traceDelivery counts a records frame of n records at off and, with
// tracing on, starts its weir.deliver span (ended by endDelivery).
func (s *Server) traceDelivery(ctx context.Context, fr *outFrame, f *feed, topic string, partition int, off int64, n int) {
	tel := s.broker.Telemetry()
	tel.CountOut(topic, n, len(fr.body))
	if !tel.Tracing() {
		return
	}
	tps := f.traceparents(off, n)
	_, fr.span = tel.StartBatchOf(ctx, core.SpanDeliver, trace.SpanKindProducer, len(tps), func(i int) (string, bool) { return tps[i], tps[i] != "" },
		attribute.String("messaging.system", "weir"),
		attribute.String("messaging.operation.type", "deliver"),
		attribute.String("messaging.destination.name", topic),
		attribute.String("messaging.destination.partition.id", strconv.Itoa(partition)),
		attribute.Int("messaging.batch.message_count", n),
		attribute.Int64("weir.offset", off))
}

// endDelivery ends a frame's span once written (or failed), and counts a
// client dropped for not reading in time.
func (s *Server) endDelivery(fr *outFrame, err error) {
	if fr.span != nil {
		core.EndSpan(fr.span, err)
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		s.ws.dropped.Add(1)
	}
}
