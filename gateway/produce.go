package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// ProduceRecordJSON is one record of a JSON produce request (API.md
// "Produce"). The WebSocket protocol uses the same shape.
type ProduceRecordJSON struct {
	Key       json.RawMessage   `json:"key"`
	Value     json.RawMessage   `json:"value"`
	Headers   map[string]string `json:"headers"`
	Partition *int              `json:"partition"`
	Timestamp int64             `json:"timestamp"`
	// DeliverAt (ms since the epoch) or DelayMs (from now) hold the record
	// back from subscriptions; kept as the weir-deliver-at header (delay.go).
	DeliverAt *int64 `json:"deliver_at,omitempty"`
	DelayMs   *int64 `json:"delay_ms,omitempty"`
}

// ProduceRequestJSON is a JSON produce request body.
type ProduceRequestJSON struct {
	Records    []ProduceRecordJSON `json:"records"`
	Encoding   string              `json:"encoding"`
	ProducerID string              `json:"producer_id"`
	Sequence   *int64              `json:"sequence"`
}

// ToCore converts a decoded request for topic into the domain request.
func (r *ProduceRequestJSON) ToCore(topic string) (*core.ProduceRequest, error) {
	b64 := false
	switch r.Encoding {
	case "", "utf8", "utf-8":
	case "base64":
		b64 = true
	default:
		return nil, core.Invalidf("encoding must be utf8 or base64, not %q", r.Encoding)
	}
	req := &core.ProduceRequest{Topic: topic, ProducerID: r.ProducerID, Records: make([]core.ProduceRecord, len(r.Records))}
	if r.ProducerID != "" {
		if r.Sequence == nil {
			return nil, core.Invalidf("producer_id needs a sequence")
		}
		req.Sequence = *r.Sequence
	} else if r.Sequence != nil {
		return nil, core.Invalidf("sequence needs a producer_id")
	}
	if len(r.ProducerID) > 255 {
		return nil, core.Invalidf("producer_id must be at most 255 bytes")
	}
	for i := range r.Records {
		in := &r.Records[i]
		out := &req.Records[i]
		out.Partition = -1
		if in.Partition != nil {
			if *in.Partition < 0 {
				return nil, core.Invalidf("records[%d].partition must be ≥ 0", i)
			}
			out.Partition = *in.Partition
		}
		var err error
		if out.Key, err = decodeField(in.Key, b64, true); err != nil {
			return nil, core.Invalidf("records[%d].key: %v", i, err)
		}
		if out.Value, err = decodeField(in.Value, b64, false); err != nil {
			return nil, core.Invalidf("records[%d].value: %v", i, err)
		}
		if out.Value == nil {
			out.Value = []byte{}
		}
		out.Timestamp = in.Timestamp
		if len(in.Headers) > 0 {
			keys := make([]string, 0, len(in.Headers))
			for k := range in.Headers {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			out.Headers = make([]core.Header, len(keys))
			for j, k := range keys {
				out.Headers[j] = core.Header{Key: k, Value: in.Headers[k]}
			}
		}
		if in.DeliverAt != nil || in.DelayMs != nil {
			if out.Headers, err = withDeliverAt(out.Headers, in.DeliverAt, in.DelayMs); err != nil {
				return nil, core.Invalidf("records[%d]: %v", i, err)
			}
		}
	}
	return req, nil
}

// decodeField turns a JSON key or value into bytes: a string is taken as
// UTF-8 text (or base64 when b64), null or absent is nil, and for values any
// other JSON (object, array, number, boolean) is kept as its compact text.
func decodeField(raw json.RawMessage, b64, isKey bool) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if !b64 && plainJSONString(raw) {
		return raw[1 : len(raw)-1 : len(raw)-1], nil
	}
	if raw[0] != '"' {
		if isKey || b64 {
			return nil, errString
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if b64 {
		return base64.StdEncoding.DecodeString(s)
	}
	return []byte(s), nil
}

var errString = core.Invalidf("must be a string")

// plainJSONString reports whether raw is a JSON string token with nothing
// to unescape: printable ASCII (no quote or backslash) or valid UTF-8.
func plainJSONString(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	body := raw[1 : len(raw)-1]
	ascii := true
	for _, c := range body {
		if c == '"' || c == '\\' || c < 0x20 {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(body)
}

func isJSON(ctx *fasthttp.RequestCtx) bool {
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.EqualFold(bytes.TrimSpace(ct), []byte("application/json"))
}

// produceReq is POST /v1/topics/{t}/records: a JSON batch, a binary batch
// (application/vnd.weir.records, producebin.go), or any other content type
// as one record's value (key, partition and delivery time from the query).
type produceReq struct {
	Topic string `path:"t" json:"-" need:"topic:write"`
	Acks  string `query:"acks" json:"-"`
	req   *core.ProduceRequest
}

func (r *produceReq) decodeBody(c *call, raw []byte) error {
	ctx, q := c.ctx, c.ctx.QueryArgs()
	if isJSON(ctx) {
		if isNoAck(q) {
			raw = bytes.Clone(raw) // records outlive the request
		}
		body, ok := parseProduceFast(raw)
		if !ok {
			body = ProduceRequestJSON{}
			if err := decodeJSON(raw, &body); err != nil {
				return err
			}
		}
		var err error
		r.req, err = body.ToCore(c.pathVar("t"))
		return err
	}
	if isBinaryRecords(ctx) { // producebin.go
		if isNoAck(q) {
			raw = bytes.Clone(raw) // records outlive the request
		}
		var err error
		r.req, err = DecodeProduceBinary(c.pathVar("t"), raw)
		return err
	}
	// Any other content type: the body is one record's value.
	rec := core.ProduceRecord{Partition: -1, Record: core.Record{Value: bytes.Clone(raw)}}
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	if q.Has("key") {
		rec.Key = append([]byte{}, q.Peek("key")...)
	}
	if q.Has("partition") {
		p, err := strconv.Atoi(string(q.Peek("partition")))
		if err != nil || p < 0 {
			return core.Invalidf("partition must be a number ≥ 0")
		}
		rec.Partition = p
	}
	if err := deliverAtArgs(q, &rec.Record); err != nil { // delay.go
		return err
	}
	if q.Has("priority") {
		// Checked with the record's other headers by the broker (400 unless "0" … "9").
		rec.Headers = append(rec.Headers, core.Header{Key: core.HeaderPriority, Value: string(q.Peek("priority"))})
	}
	r.req = &core.ProduceRequest{Topic: c.pathVar("t"), Records: []core.ProduceRecord{rec}}
	return nil
}

// producedBytes implements producer: the decoded records' bytes.
func (r *produceReq) producedBytes() int64 {
	var n int64
	for i := range r.req.Records {
		n += int64(r.req.Records[i].Size())
	}
	return n
}

func (s *Server) produce(c *call, r *produceReq) {
	ctx, req := c.ctx, r.req
	req.Topic = r.Topic
	switch acks := r.Acks; acks {
	case "", "all", "1", "-1":
	case "none", "0":
		if err := s.broker.ProduceNoAck(s.baseCtx, req, s.cfg.ProduceTimeout); err != nil {
			writeError(ctx, err)
			return
		}
		writeJSON(ctx, 202, []byte(`{"accepted":`+strconv.Itoa(len(req.Records))+`}`+"\n"))
		return
	default:
		writeError(ctx, core.Invalidf("acks must be all or none, not %q", acks))
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	rctx = s.traceContext(rctx, ctx)
	res, err := s.broker.Produce(rctx, req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	b := appendProduced(append(make([]byte, 0, 16+len(res.Offsets)*32), '{'), res)
	writeJSON(ctx, 200, append(b, "}\n"...))
}

func isNoAck(q *fasthttp.Args) bool {
	a := string(q.Peek("acks"))
	return a == "none" || a == "0"
}

// parseWait reads wait_ms.
func parseWait(args *fasthttp.Args) (time.Duration, error) {
	if !args.Has("wait_ms") {
		return 0, nil
	}
	ms, err := strconv.ParseInt(string(args.Peek("wait_ms")), 10, 64)
	if err != nil || ms < 0 {
		return 0, core.Invalidf("wait_ms must be a number ≥ 0")
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// appendProduced appends the fields of a produce's answer, the same over
// HTTP and WebSocket: "offsets" (partition and offset of each record, in
// request order) and "duplicate" when the broker found the batch applied.
func appendProduced(b []byte, res *core.ProduceResult) []byte {
	b = append(b, `"offsets":[`...)
	for i, o := range res.Offsets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(o.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, o.Offset, 10)
		b = append(b, '}')
	}
	b = append(b, ']')
	if res.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return b
}
