package gateway

import (
	"encoding/base64"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

func intArg(args *fasthttp.Args, name string, def int) (int, error) {
	if !args.Has(name) {
		return def, nil
	}
	v, err := strconv.Atoi(string(args.Peek(name)))
	if err != nil || v < 0 {
		return 0, core.Invalidf("%s must be a number ≥ 0", name)
	}
	return v, nil
}

// fetchReq is GET /v1/topics/{t}/partitions/{p}/records.
type fetchReq struct {
	Topic string `path:"t" json:"-" need:"topic:read"`
	Part  string `path:"p" json:"-"`
	req   core.FetchRequest
	b64   bool
}

func (r *fetchReq) parse(c *call) error {
	topic, partStr, ctx := r.Topic, r.Part, c.ctx
	p, err := strconv.Atoi(partStr)
	if err != nil || p < 0 {
		return core.Invalidf("partition must be a number ≥ 0, not %q", partStr)
	}
	args := ctx.QueryArgs()
	req := core.FetchRequest{Topic: topic, Partition: p, From: core.AtEarliest}
	if args.Has("offset") && args.Has("timestamp") {
		return core.Invalidf("give offset or timestamp, not both")
	}
	if args.Has("offset") {
		switch v := string(args.Peek("offset")); v {
		case "earliest":
			req.From = core.AtEarliest
		case "latest":
			req.From = core.AtLatest
		default:
			off, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return core.Invalidf("offset must be a number, earliest or latest, not %q", v)
			}
			req.From, req.Offset = core.AtOffset, off
		}
	}
	if args.Has("timestamp") {
		ts, err := strconv.ParseInt(string(args.Peek("timestamp")), 10, 64)
		if err != nil || ts < 0 {
			return core.Invalidf("timestamp must be milliseconds since the epoch")
		}
		req.From, req.Timestamp = core.AtTime, ts
	}
	if req.MaxRecords, err = intArg(args, "max_records", 500); err == nil {
		req.MaxBytes, err = intArg(args, "max_bytes", 1<<20)
	}
	if err == nil {
		req.Wait, err = parseWait(args)
	}
	if err != nil {
		return err
	}
	if req.MaxRecords == 0 {
		return core.Invalidf("max_records must be ≥ 1")
	}
	b64 := false
	switch enc := string(args.Peek("encoding")); enc {
	case "", "utf8", "utf-8":
	case "base64":
		b64 = true
	default:
		return core.Invalidf("encoding must be utf8 or base64, not %q", enc)
	}
	r.req, r.b64 = req, b64
	return nil
}

func (s *Server) fetch(c *call, r *fetchReq) {
	ctx, req, b64 := c.ctx, r.req, r.b64
	if s.proxyFetch(ctx, &req) { // cluster.go: another node serves this partition
		return
	}
	rctx, cancel := s.requestContext(req.Wait + s.cfg.ProduceTimeout)
	defer cancel()
	rctx = s.traceContext(rctx, ctx)
	res, err := s.broker.Fetch(rctx, &req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if wantsBinaryRecords(ctx) { // fetchbin.go
		writeFetchBinary(ctx, res)
		return
	}
	b := make([]byte, 0, 64)
	b = append(b, `{"records":`...)
	b = AppendRecordsJSON(b, res.Records, b64, "", -1)
	b = append(b, `,"next_offset":`...)
	b = strconv.AppendInt(b, res.NextOffset, 10)
	b = append(b, `,"high_watermark":`...)
	b = strconv.AppendInt(b, res.HighWatermark, 10)
	b = append(b, `,"log_start_offset":`...)
	b = strconv.AppendInt(b, res.LogStart, 10)
	b = append(b, "}\n"...)
	writeJSON(ctx, 200, b)
}

// AppendRecordsJSON appends records as a JSON array in the API's shape. When
// topic is not empty each record also carries "topic" and "partition"
// (the WebSocket frames use that).
func AppendRecordsJSON(b []byte, recs []core.Record, b64 bool, topic string, partition int) []byte {
	b = append(b, '[')
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if topic != "" {
			b = append(b, `"topic":`...)
			b = appendJSONString(b, topic)
			b = append(b, `,"partition":`...)
			b = strconv.AppendInt(b, int64(partition), 10)
			b = append(b, ',')
		}
		b = append(b, `"offset":`...)
		b = strconv.AppendInt(b, r.Offset, 10)
		b = appendRecordFields(b, r, b64)
	}
	return append(b, ']')
}

// appendRecordFields appends `,"timestamp":…,"key":…,"value":…,"headers":{…}}`:
// the fields every record-carrying answer shares, and the closing brace.
func appendRecordFields(b []byte, r *core.Record, b64 bool) []byte {
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	b = append(b, `,"key":`...)
	b = appendBytesField(b, r.Key, b64, true)
	b = append(b, `,"value":`...)
	b = appendBytesField(b, r.Value, b64, false)
	b = append(b, `,"headers":{`...)
	for j, h := range r.Headers {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, h.Key)
		b = append(b, ':')
		b = appendJSONString(b, h.Value)
	}
	return append(b, "}}"...)
}

func appendBytesField(b, v []byte, b64, nullable bool) []byte {
	if v == nil && nullable {
		return append(b, "null"...)
	}
	if b64 {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"')
	}
	return appendJSONString(b, v)
}
