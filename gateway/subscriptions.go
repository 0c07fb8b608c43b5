package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// The queue model's endpoints (docs/queues.md):
//
//	POST   /v1/topics/{topic}/subscriptions
//	GET    /v1/topics/{topic}/subscriptions
//	GET    /v1/topics/{topic}/subscriptions/{sub}
//	DELETE /v1/topics/{topic}/subscriptions/{sub}
//	POST   /v1/topics/{topic}/subscriptions/{sub}/receive|ack|nack|extend
//	POST   /v1/topics/{dlq}/redrive

// SetQueues enables the subscription endpoints. Call before Serve.
func (s *Server) SetQueues(q *core.Queues) { s.queues = q }

// Queues returns the queue service (nil when subscriptions are not enabled);
// the WebSocket protocol uses it.
func (s *Server) Queues() *core.Queues { return s.queues }

var errNoQueues = &StatusError{Status: http.StatusNotFound, Code: "not_found", Msg: "subscriptions are not enabled on this node"}

// queuesOn answers 404 when subscriptions are not enabled.
func (s *Server) queuesOn(c *call) bool {
	if s.queues == nil {
		writeError(c.ctx, errNoQueues)
		return false
	}
	return true
}

// SubscriptionJSON is a subscription in the API's shape.
type SubscriptionJSON struct {
	Topic               string       `json:"topic,omitempty"`
	Name                string       `json:"name"`
	VisibilityTimeoutMs *int64       `json:"visibility_timeout_ms,omitempty"`
	MaxAttempts         *int         `json:"max_attempts,omitempty"`
	Backoff             *BackoffJSON `json:"backoff,omitempty"`
	DeadLetterTopic     string       `json:"dead_letter_topic,omitempty"`
	Ordering            string       `json:"ordering,omitempty"`
	Start               string       `json:"start,omitempty"`
	Priority            *bool        `json:"priority,omitempty"`
	PriorityGuardEvery  *int         `json:"priority_guard_every,omitempty"`
	CreatedAt           int64        `json:"created_at,omitempty"`
}

// BackoffJSON is a subscription's retry backoff; omitted fields take the
// defaults (1000 ms, 60000 ms, ×2).
type BackoffJSON struct {
	InitialMs  *int64   `json:"initial_ms,omitempty"`
	MaxMs      *int64   `json:"max_ms,omitempty"`
	Multiplier *float64 `json:"multiplier,omitempty"`
}

func subscriptionJSON(sub *core.Subscription) SubscriptionJSON {
	vt, ma, prio := sub.VisibilityTimeoutMs, sub.MaxAttempts, sub.Priority
	b := sub.Backoff
	out := SubscriptionJSON{
		Topic: sub.Topic, Name: sub.Name, VisibilityTimeoutMs: &vt, MaxAttempts: &ma,
		Backoff:         &BackoffJSON{InitialMs: &b.InitialMs, MaxMs: &b.MaxMs, Multiplier: &b.Multiplier},
		DeadLetterTopic: sub.DeadLetterTopic, Ordering: sub.Ordering, Start: sub.Start, CreatedAt: sub.CreatedAt,
		Priority: &prio,
	}
	if prio {
		guard := sub.PriorityGuardEvery
		out.PriorityGuardEvery = &guard
	}
	return out
}

// createSubscriptionReq is POST /v1/topics/{t}/subscriptions. The
// subscription's dead-letter topic is written by the broker on the
// creator's behalf, so it needs write on it (and create when missing).
type createSubscriptionReq struct {
	Topic string `path:"t" json:"-" need:"topic:read"`
	SubscriptionJSON
	Sub string `json:"-" need:"subscription:create" doc:"{t}/<body.name>"`
	DLT string `json:"-" need:"topic:write,optional" doc:"<body.dead_letter_topic>"`
	cfg core.SubscriptionConfig
}

func (r *createSubscriptionReq) parse(*call) error {
	req, topic := &r.SubscriptionJSON, r.Topic
	if req.Topic != "" && req.Topic != topic {
		return core.Invalidf("topic %q in the body differs from the path's %q", req.Topic, topic)
	}
	if req.Name == "" {
		return core.Invalidf("a subscription needs a name")
	}
	r.Sub, r.DLT = topic+"/"+req.Name, req.DeadLetterTopic
	cfg := core.SubscriptionConfig{Topic: topic, Name: req.Name, DeadLetterTopic: req.DeadLetterTopic,
		Ordering: req.Ordering, Start: req.Start, Priority: req.Priority != nil && *req.Priority}
	if req.PriorityGuardEvery != nil {
		cfg.PriorityGuardEvery = *req.PriorityGuardEvery
	}
	if req.VisibilityTimeoutMs != nil {
		if *req.VisibilityTimeoutMs <= 0 {
			return core.Invalidf("visibility_timeout_ms must be ≥ 1")
		}
		cfg.VisibilityTimeoutMs = *req.VisibilityTimeoutMs
	}
	if req.MaxAttempts != nil {
		if *req.MaxAttempts < 0 {
			return core.Invalidf("max_attempts must be ≥ 0")
		}
		cfg.MaxAttempts = *req.MaxAttempts
	}
	if req.Backoff != nil {
		b := core.DefaultBackoff
		if req.Backoff.InitialMs != nil {
			b.InitialMs = *req.Backoff.InitialMs
			if req.Backoff.MaxMs == nil && b.MaxMs < b.InitialMs {
				b.MaxMs = b.InitialMs
			}
		}
		if req.Backoff.MaxMs != nil {
			b.MaxMs = *req.Backoff.MaxMs
			if req.Backoff.InitialMs == nil && b.InitialMs > b.MaxMs {
				b.InitialMs = b.MaxMs
			}
		}
		if req.Backoff.Multiplier != nil {
			b.Multiplier = *req.Backoff.Multiplier
		}
		cfg.Backoff = &b
	}
	r.cfg = cfg
	return nil
}

func (s *Server) createSubscription(c *call, r *createSubscriptionReq) {
	if !s.queuesOn(c) {
		return
	}
	ctx, cfg := c.ctx, r.cfg
	if cfg.DeadLetterTopic != "" {
		if _, err := s.broker.Store().Topic(cfg.DeadLetterTopic); errors.Is(err, core.ErrTopicNotFound) {
			if err := c.check(need{topicRT, auth.Create, cfg.DeadLetterTopic}); err != nil {
				writeError(ctx, err)
				return
			}
		}
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	sub, err := s.queues.CreateSubscription(rctx, cfg)
	if err != nil {
		writeError(ctx, err)
		return
	}
	b, _ := json.Marshal(subscriptionJSON(sub))
	writeJSON(ctx, 201, append(b, '\n'))
}

type listSubscriptionsReq struct {
	Topic string `path:"t" json:"-" need:"topic:describe"`
}

func (s *Server) listSubscriptions(c *call, r *listSubscriptionsReq) {
	if !s.queuesOn(c) {
		return
	}
	ctx, topic := c.ctx, r.Topic
	if _, err := s.broker.Store().Topic(topic); err != nil {
		writeError(ctx, err)
		return
	}
	out := struct {
		Subscriptions []SubscriptionJSON `json:"subscriptions"`
	}{Subscriptions: []SubscriptionJSON{}}
	for _, sub := range s.queues.Subscriptions(topic) {
		out.Subscriptions = append(out.Subscriptions, subscriptionJSON(sub))
	}
	b, _ := json.Marshal(out)
	writeJSON(ctx, 200, append(b, '\n'))
}

type subPartitionJSON struct {
	Partition     int   `json:"partition"`
	Cursor        int64 `json:"cursor"`
	Frontier      int64 `json:"frontier"`
	HighWatermark int64 `json:"high_watermark"`
	subTotalsJSON
	Error string `json:"error,omitempty"`
}

// pendingJSON is a priority subscription's indexed messages waiting for
// delivery, per priority ("9" … "0"; only priorities that have some).
type pendingJSON map[string]int64

func (p pendingJSON) add(counts []int) {
	for prio, n := range counts {
		if n > 0 {
			p[strconv.Itoa(prio)] += int64(n)
		}
	}
}

type subTotalsJSON struct {
	Backlog      int64 `json:"backlog"`
	InFlight     int   `json:"in_flight"`
	Retrying     int   `json:"retrying"`
	Delayed      int   `json:"delayed"`
	Blocked      int   `json:"blocked"`
	DeadPending  int   `json:"dead_letter_pending"`
	Delivered    int64 `json:"delivered"`
	Acked        int64 `json:"acked"`
	Nacked       int64 `json:"nacked"`
	Expired      int64 `json:"expired"`
	DeadLettered int64 `json:"dead_lettered"`
	Dropped      int64 `json:"dropped"`
}

func (t *subTotalsJSON) add(p *subTotalsJSON) {
	t.Backlog += p.Backlog
	t.InFlight += p.InFlight
	t.Retrying += p.Retrying
	t.Delayed += p.Delayed
	t.Blocked += p.Blocked
	t.DeadPending += p.DeadPending
	t.Delivered += p.Delivered
	t.Acked += p.Acked
	t.Nacked += p.Nacked
	t.Expired += p.Expired
	t.DeadLettered += p.DeadLettered
	t.Dropped += p.Dropped
}

// subReq names a subscription by the path.
type subReq struct {
	Topic string `path:"t" json:"-"`
	Name  string `path:"s" json:"-"`
	Sub   string `json:"-" need:"subscription:describe" doc:"{t}/{s}"`
}

func (r *subReq) parse(*call) error { r.Sub = r.Topic + "/" + r.Name; return nil }

func (s *Server) describeSubscription(c *call, r *subReq) {
	if !s.queuesOn(c) {
		return
	}
	ctx, topic, name := c.ctx, r.Topic, r.Name
	sub, parts, err := s.queues.Stats(topic, name)
	if err != nil {
		writeError(ctx, err)
		return
	}
	out := struct {
		SubscriptionJSON
		Stats struct {
			subTotalsJSON
			Pending pendingJSON `json:"pending_by_priority,omitempty"`
		} `json:"stats"`
		Partitions []subPartitionJSON `json:"partitions"`
	}{SubscriptionJSON: subscriptionJSON(sub), Partitions: make([]subPartitionJSON, len(parts))}
	tot := &out.Stats.subTotalsJSON
	if sub.Priority {
		out.Stats.Pending = pendingJSON{}
	}
	for i, p := range parts {
		if sub.Priority {
			out.Stats.Pending.add(p.Pending[:])
		}
		pj := subPartitionJSON{Partition: p.Partition, Cursor: p.Cursor, Frontier: p.Frontier, HighWatermark: p.HighWatermark,
			subTotalsJSON: subTotalsJSON{Backlog: p.Backlog, InFlight: p.InFlight, Retrying: p.Retrying, Delayed: p.Delayed,
				Blocked: p.Blocked, DeadPending: p.DeadPending, Delivered: p.Delivered, Acked: p.Acked, Nacked: p.Nacked,
				Expired: p.Expired, DeadLettered: p.DeadLettered, Dropped: p.Dropped}}
		if p.Err != nil {
			pj.Error = p.Err.Error()
		}
		out.Partitions[i] = pj
		tot.add(&pj.subTotalsJSON)
	}
	b, _ := json.Marshal(out)
	writeJSON(ctx, 200, append(b, '\n'))
}

type deleteSubReq struct {
	Topic string `path:"t" json:"-"`
	Name  string `path:"s" json:"-"`
	Sub   string `json:"-" need:"subscription:delete" doc:"{t}/{s}"`
}

func (r *deleteSubReq) parse(*call) error { r.Sub = r.Topic + "/" + r.Name; return nil }

func (s *Server) deleteSubscription(c *call, r *deleteSubReq) {
	if !s.queuesOn(c) {
		return
	}
	ctx, topic, name := c.ctx, r.Topic, r.Name
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.queues.DeleteSubscription(rctx, topic, name); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(204)
}

// ReceiveJSON is the body of a receive (every field optional).
type ReceiveJSON struct {
	MaxRecords          int    `json:"max_records"`
	MaxBytes            int    `json:"max_bytes"`
	WaitMs              int64  `json:"wait_ms"`
	VisibilityTimeoutMs int64  `json:"visibility_timeout_ms"`
	AutoAck             bool   `json:"auto_ack"`
	Encoding            string `json:"encoding"`
}

// ToCore converts a receive body into the domain request; b64 reports
// whether keys and values are to be sent as base64.
func (r *ReceiveJSON) ToCore(topic, sub string) (req *core.ReceiveRequest, b64 bool, err error) {
	switch r.Encoding {
	case "", "utf8", "utf-8":
	case "base64":
		b64 = true
	default:
		return nil, false, core.Invalidf("encoding must be utf8 or base64, not %q", r.Encoding)
	}
	if r.MaxRecords < 0 || r.MaxBytes < 0 || r.WaitMs < 0 || r.VisibilityTimeoutMs < 0 {
		return nil, false, core.Invalidf("max_records, max_bytes, wait_ms and visibility_timeout_ms must be ≥ 0")
	}
	return &core.ReceiveRequest{Topic: topic, Subscription: sub, MaxRecords: r.MaxRecords, MaxBytes: r.MaxBytes,
		Wait: time.Duration(r.WaitMs) * time.Millisecond, VisibilityTimeout: time.Duration(r.VisibilityTimeoutMs) * time.Millisecond,
		AutoAck: r.AutoAck}, b64, nil
}

// subReadReq names a subscription whose messages the call reads or
// settles: read on the subscription and on its topic.
type subReadReq struct {
	Topic string `path:"t" json:"-" need:"topic:read"`
	Name  string `path:"s" json:"-"`
	Sub   string `json:"-" need:"subscription:read" doc:"{t}/{s}"`
}

type receiveReq struct {
	subReadReq `json:"-"`
	ReceiveJSON
	req *core.ReceiveRequest
	b64 bool
}

func (*receiveReq) bodyOptional() {}

func (r *receiveReq) parse(*call) (err error) {
	r.Sub = r.Topic + "/" + r.Name
	r.req, r.b64, err = r.ReceiveJSON.ToCore(r.Topic, r.Name)
	return err
}

func (s *Server) receive(c *call, r *receiveReq) {
	if !s.queuesOn(c) {
		return
	}
	ctx, req, b64 := c.ctx, r.req, r.b64
	rctx, cancel := s.requestContext(req.Wait + s.cfg.ProduceTimeout)
	defer cancel()
	msgs, err := s.queues.Receive(rctx, req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	b := make([]byte, 0, 256*len(msgs)+32)
	b = append(b, `{"messages":`...)
	b = AppendMessagesJSON(b, msgs, b64)
	b = append(b, "}\n"...)
	writeJSON(ctx, 200, b)
}

// AppendMessagesJSON appends leased messages as a JSON array:
// [{"receipt","partition","offset","attempt","lease_expires_at","timestamp","key","value","headers"}].
func AppendMessagesJSON(b []byte, msgs []core.Message, b64 bool) []byte {
	b = append(b, '[')
	for i := range msgs {
		m := &msgs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"receipt":`...)
		b = appendJSONString(b, m.Receipt)
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(m.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, m.Offset, 10)
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(m.Attempt), 10)
		b = append(b, `,"lease_expires_at":`...)
		b = strconv.AppendInt(b, m.LeaseExpiresAt, 10)
		b = appendRecordFields(b, &m.Record, b64)
	}
	return append(b, ']')
}

// ReceiptsJSON is the body of ack, nack and extend.
type ReceiptsJSON struct {
	Receipts []string `json:"receipts"`
	// nack only: the delay before redelivery (else the backoff) and the
	// reason kept as the message's last error.
	DelayMs *int64 `json:"delay_ms,omitempty"`
	Error   string `json:"error,omitempty"`
	// extend only: the new visibility timeout from now.
	VisibilityTimeoutMs int64 `json:"visibility_timeout_ms,omitempty"`
}

// ReceiptCall runs an ack, nack or extend for the HTTP and WebSocket APIs.
func (s *Server) ReceiptCall(c context.Context, topic, sub, op string, body *ReceiptsJSON) ([]core.ReceiptResult, error) {
	if op != "nack" && (body.DelayMs != nil || body.Error != "") {
		return nil, core.Invalidf("delay_ms and error are fields of nack only")
	}
	if op != "extend" && body.VisibilityTimeoutMs != 0 {
		return nil, core.Invalidf("visibility_timeout_ms is a field of extend only")
	}
	switch op {
	case "ack":
		return s.queues.Ack(c, topic, sub, body.Receipts)
	case "nack":
		req := &core.NackRequest{Topic: topic, Subscription: sub, Receipts: body.Receipts, Error: body.Error}
		if body.DelayMs != nil {
			if *body.DelayMs < 0 {
				return nil, core.Invalidf("delay_ms must be ≥ 0")
			}
			d := time.Duration(*body.DelayMs) * time.Millisecond
			req.Delay = &d
		}
		return s.queues.Nack(c, req)
	default:
		if body.VisibilityTimeoutMs <= 0 {
			return nil, core.Invalidf("extend needs visibility_timeout_ms ≥ 1")
		}
		return s.queues.Extend(c, topic, sub, body.Receipts, time.Duration(body.VisibilityTimeoutMs)*time.Millisecond)
	}
}

type receiptsReq struct {
	subReadReq `json:"-"`
	ReceiptsJSON
}

func (r *receiptsReq) parse(*call) error { r.Sub = r.Topic + "/" + r.Name; return nil }

func (s *Server) ack(c *call, r *receiptsReq)    { s.receiptCall(c, r, "ack") }
func (s *Server) nack(c *call, r *receiptsReq)   { s.receiptCall(c, r, "nack") }
func (s *Server) extend(c *call, r *receiptsReq) { s.receiptCall(c, r, "extend") }

func (s *Server) receiptCall(c *call, r *receiptsReq, op string) {
	if !s.queuesOn(c) {
		return
	}
	ctx, topic, sub, body := c.ctx, r.Topic, r.Name, &r.ReceiptsJSON
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	res, err := s.ReceiptCall(rctx, topic, sub, op, body)
	if err != nil {
		writeError(ctx, err)
		return
	}
	b := make([]byte, 0, 64*len(res)+16)
	b = append(b, `{"results":`...)
	b = AppendReceiptResultsJSON(b, res)
	b = append(b, "}\n"...)
	writeJSON(ctx, 200, b)
}

// AppendReceiptResultsJSON appends per-receipt results as a JSON array:
// [{"receipt","status":"ok"|"error","error":{"code","message"},"lease_expires_at"}].
func AppendReceiptResultsJSON(b []byte, res []core.ReceiptResult) []byte {
	b = append(b, '[')
	for i, r := range res {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"receipt":`...)
		b = appendJSONString(b, r.Receipt)
		if r.Err == nil {
			b = append(b, `,"status":"ok"`...)
			if r.LeaseExpiresAt > 0 {
				b = append(b, `,"lease_expires_at":`...)
				b = strconv.AppendInt(b, r.LeaseExpiresAt, 10)
			}
		} else {
			_, code := ErrorStatus(r.Err)
			b = append(b, `,"status":"error","error":{"code":`...)
			b = appendJSONString(b, code)
			b = append(b, `,"message":`...)
			b = appendJSONString(b, r.Err.Error())
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

type redriveReq struct {
	From       string `path:"t" json:"-" need:"topic:read"`
	To         string `json:"to" need:"topic:write"`
	MaxRecords int64  `json:"max_records"`
}

func (r *redriveReq) parse(*call) error {
	if r.MaxRecords < 0 {
		return core.Invalidf("redrive needs \"to\" (a topic) and max_records ≥ 0 (0: all)")
	}
	return nil
}

func (s *Server) redrive(c *call, body *redriveReq) {
	if !s.queuesOn(c) {
		return
	}
	ctx, from := c.ctx, body.From
	rctx, cancel := s.requestContext(5 * time.Minute)
	defer cancel()
	n, err := s.queues.Redrive(rctx, &core.RedriveRequest{From: from, To: body.To, MaxRecords: body.MaxRecords})
	if err != nil && n == 0 {
		writeError(ctx, err)
		return
	}
	b := []byte(`{"redriven":` + strconv.FormatInt(n, 10))
	if err != nil {
		_, code := ErrorStatus(err)
		b = append(b, `,"error":{"code":`...)
		b = appendJSONString(b, code)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, err.Error())
		b = append(b, '}')
	}
	writeJSON(ctx, 200, append(b, "}\n"...))
}
