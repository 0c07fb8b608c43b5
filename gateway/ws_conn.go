package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
	"github.com/weir-broker/weir/gateway/apierr"
)

// wsFrame is any client frame (docs/websocket.md). Fields are read by the
// ops that use them; unknown fields are ignored.
type wsFrame struct {
	Op  string `json:"op"`
	ID  string `json:"id"`
	Sub string `json:"sub"`

	// subscribe
	Topic            string          `json:"topic"`
	Partition        *int            `json:"partition"`
	From             json.RawMessage `json:"from"`
	Timestamp        *int64          `json:"timestamp"`
	Positions        []wsPosition    `json:"positions"`
	Group            string          `json:"group"`
	ClientID         string          `json:"client_id"`
	SessionTimeoutMs int64           `json:"session_timeout_ms"`
	Credit           *int64          `json:"credit"`
	Encoding         string          `json:"encoding"`

	// credit: a count; produce: an array of records
	Records json.RawMessage `json:"records"`

	// produce
	ProducerID string `json:"producer_id"`
	Sequence   *int64 `json:"sequence"`

	// commit
	Offset     *int64     `json:"offset"`
	Offsets    []wsOffset `json:"offsets"`
	Generation int64      `json:"generation"`

	// queue subscriptions (ws_queue.go): subscribe, ack, nack, extend
	Subscription        string   `json:"subscription"`
	Receipts            []string `json:"receipts"`
	DelayMs             *int64   `json:"delay_ms"`
	Error               string   `json:"error"`
	VisibilityTimeoutMs int64    `json:"visibility_timeout_ms"`
}

type wsPosition struct {
	Partition int   `json:"partition"`
	Offset    int64 `json:"offset"`
}

type wsOffset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// outFrame is one text message to send: head, body and tail written in
// order. Records frames share body with other connections (a feed chunk);
// it is never modified.
type outFrame struct {
	head, body, tail []byte
	span             trace.Span // a records frame's weir.deliver span, or nil (ws_trace.go)
}

func (f *outFrame) size() int64 { return int64(len(f.head) + len(f.body) + len(f.tail)) }

var errConnClosed = errors.New("connection closed")

// sendQueue is a connection's bounded send buffer. push blocks while the
// queued bytes would exceed the limit (a frame larger than the limit goes
// alone), which is what pauses a slow consumer's subscriptions.
type sendQueue struct {
	limit int64

	mu     sync.Mutex
	frames []outFrame
	bytes  int64 // queued or being written
	closed bool
	space  chan struct{} // closed and replaced when bytes fall and someone waits
	full   int           // pushers waiting for space
	active bool          // a writer is draining the queue
	start  func()        // starts a writer; called with mu held
	nbytes atomic.Int64  // bytes, readable without the lock
}

// newSendQueue returns a queue of limit bytes. start is called (with the
// queue's lock held, so it must not block) when a frame arrives and no
// writer is active: writers run only while there is something to write,
// so an idle connection has no writer goroutine.
func newSendQueue(limit int, start func()) *sendQueue {
	return &sendQueue{limit: int64(limit), space: make(chan struct{}), start: start}
}

func (q *sendQueue) push(ctx context.Context, f outFrame, paused *atomic.Int64) error {
	n := f.size()
	q.mu.Lock()
	waiting := false
	for !q.closed && q.bytes > 0 && q.bytes+n > q.limit {
		if !waiting && paused != nil {
			waiting = true
			paused.Add(1)
		}
		ch := q.space
		q.full++
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			q.mu.Lock()
			q.full--
			q.mu.Unlock()
			if waiting {
				paused.Add(-1)
			}
			return ctx.Err()
		}
		q.mu.Lock()
		q.full--
	}
	if waiting {
		paused.Add(-1)
	}
	defer q.mu.Unlock()
	if q.closed {
		return errConnClosed
	}
	q.frames = append(q.frames, f)
	q.bytes += n
	q.nbytes.Store(q.bytes)
	if !q.active {
		q.active = true
		q.start()
	}
	return nil
}

// next removes the queued frames (their bytes stay counted until done).
// When there are none the calling writer is done: it must return.
func (q *sendQueue) next() []outFrame {
	q.mu.Lock()
	defer q.mu.Unlock()
	fs := q.frames
	q.frames = nil
	if len(fs) == 0 {
		q.active = false
	}
	return fs
}

func (q *sendQueue) done(n int64) {
	q.mu.Lock()
	q.bytes -= n
	q.nbytes.Store(q.bytes)
	if q.full > 0 {
		close(q.space)
		q.space = make(chan struct{})
	}
	q.mu.Unlock()
}

func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
}

func (q *sendQueue) queued() int64 { return q.nbytes.Load() }

// wsConn is one WebSocket connection. Goroutines: the reader (run, on the
// hijacked connection's goroutine), a writer while frames are queued
// (writeFrames), the ping timer's, the partition readers and group
// watchers of its subscriptions, and one per produce or commit in
// progress. run owns them all and returns once they have ended.
type wsConn struct {
	hub  *wsHub
	cfg  *WSConfig
	conn *websocket.Conn
	out  *sendQueue

	ctx    context.Context // ends with the connection or the gateway
	cancel context.CancelFunc

	inflight chan struct{} // semaphore of produce and commit requests
	wg       sync.WaitGroup
	writers  sync.WaitGroup // the writer goroutine, while one runs

	pingMu      sync.Mutex // guards pingTimer and pingStopped
	pingTimer   *time.Timer
	pingStopped bool

	principal auth.Principal // the authenticated caller (ws_security.go)
	remote    string

	frames, deliveries wsOrigin // for quota audit records (ws_quota.go)

	mu      sync.Mutex // guards subs and nextSub
	subs    map[string]*wsSub
	nextSub int
}

func newWSConn(h *wsHub, conn *websocket.Conn) *wsConn {
	c := &wsConn{hub: h, cfg: &h.cfg, conn: conn,
		inflight: make(chan struct{}, h.cfg.MaxInflight), subs: map[string]*wsSub{}}
	c.out = newSendQueue(h.cfg.SendBufferBytes, func() {
		c.writers.Add(1)
		go func() {
			defer c.writers.Done()
			c.writeFrames()
		}()
	})
	c.ctx, c.cancel = context.WithCancel(h.s.baseCtx)
	c.frames = wsOrigin{c: c, action: "ws frame"}
	c.deliveries = wsOrigin{c: c, action: "ws delivery"}
	return c
}

func (c *wsConn) subCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

// run serves the connection until the client leaves, a write fails, or the
// gateway shuts down; then it stops every subscription (leaving their
// groups) and returns.
func (c *wsConn) run(preset *wsFrame) {
	c.pingMu.Lock()
	c.pingTimer = time.AfterFunc(c.cfg.PingInterval, c.ping)
	c.pingMu.Unlock()
	// When the connection's context ends (shutdown, a failed write, the
	// reader's end), unblock the reader and any write with deadlines: the
	// hijacked connection itself is closed by fasthttp once run returns, so
	// run waits for this function before returning.
	closed := make(chan struct{})
	stopClose := context.AfterFunc(c.ctx, func() {
		defer close(closed)
		nc := c.conn.NetConn()
		if c.hub.s.baseCtx.Err() != nil {
			c.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
			nc.SetWriteDeadline(time.Now())
			nc.SetReadDeadline(time.Now().Add(time.Second)) // time for the client's close reply
			return
		}
		nc.SetDeadline(time.Now())
	})
	defer func() {
		if !stopClose() {
			<-closed
		}
	}()
	if preset != nil {
		if err := c.opSubscribe(preset); err != nil {
			c.sendError(preset.ID, "", nil, err)
		}
	}
	c.readLoop()
	c.cancel()
	c.mu.Lock()
	subs := make([]*wsSub, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.subs = map[string]*wsSub{}
	c.mu.Unlock()
	for _, s := range subs {
		s.stop()
	}
	c.wg.Wait()
	c.out.close() // no writer starts after this
	c.writers.Wait()
	c.pingMu.Lock()
	c.pingStopped = true
	c.pingTimer.Stop()
	c.pingMu.Unlock()
	c.conn.Close()
}

// ping sends a ping every PingInterval; a failed one ends the connection.
func (c *wsConn) ping() {
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	if c.pingStopped {
		return
	}
	if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.cfg.WriteTimeout)); err != nil {
		c.cancel()
		return
	}
	c.pingTimer.Reset(c.cfg.PingInterval)
}

func (c *wsConn) readLoop() {
	c.conn.SetReadLimit(int64(c.cfg.MaxMessageBytes))
	deadline := func() { c.conn.SetReadDeadline(time.Now().Add(c.cfg.PongTimeout)) }
	deadline()
	c.conn.SetPongHandler(func(string) error { deadline(); return nil })
	for {
		mt, r, err := c.conn.NextReader()
		if err != nil {
			return
		}
		deadline()
		data, err := io.ReadAll(r)
		if err != nil {
			return
		}
		if mt != websocket.TextMessage {
			c.sendError("", "", nil, core.Invalidf("frames are JSON text; binary messages are not supported"))
			continue
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.sendError("", "", nil, core.Invalidf("a frame must be a JSON object: %v", err))
			continue
		}
		c.dispatch(&f)
		if c.ctx.Err() != nil {
			return
		}
	}
}

// dispatch runs one client frame. Each op is one case and one method; an
// error becomes an error frame carrying the frame's id (and sub).
func (c *wsConn) dispatch(f *wsFrame) {
	if err := c.authorizeFrame(f); err != nil { // ws_security.go
		c.sendError(f.ID, f.Sub, nil, err)
		return
	}
	var err error
	if f.Op != "produce" { // a produce frame is charged with its bytes (opProduce)
		if err := c.admitFrame(c.ctx, quota.Cost{Requests: 1}); err != nil { // ws_quota.go
			c.sendError(f.ID, f.Sub, nil, err)
			return
		}
	}
	switch f.Op {
	case "subscribe":
		if f.Subscription != "" {
			err = c.opSubscribeQueue(f) // ws_queue.go
		} else {
			err = c.opSubscribe(f)
		}
	case "unsubscribe":
		err = c.opUnsubscribe(f)
	case "credit":
		err = c.opCredit(f)
	case "commit":
		err = c.opCommit(f)
	case "produce":
		err = c.opProduce(f)
	case "ping":
		err = c.opPing(f)
	case "ack", "nack", "extend":
		err = c.opReceipts(f) // ws_queue.go
	case "":
		err = core.Invalidf("a frame needs an op")
	default:
		err = core.Invalidf("unknown op %q (subscribe, unsubscribe, credit, commit, produce, ping, ack, nack, extend)", f.Op)
	}
	if err != nil {
		c.sendError(f.ID, f.Sub, nil, err)
	}
}

// writeFrames writes queued frames until the queue is empty; a failed
// write ends the connection.
func (c *wsConn) writeFrames() {
	for {
		fs := c.out.next()
		if len(fs) == 0 {
			return
		}
		for i := range fs {
			f := &fs[i]
			if c.ctx.Err() != nil {
				return
			}
			err := c.writeFrame(f)
			c.hub.s.endDelivery(f, err) // ws_trace.go
			if err != nil {
				c.cancel()
				return
			}
			c.out.done(f.size())
		}
	}
}

func (c *wsConn) writeFrame(f *outFrame) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	w, err := c.conn.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	for _, p := range [][]byte{f.head, f.body, f.tail} {
		if len(p) > 0 {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
	}
	return w.Close()
}

// send queues a control frame (a reply, an error, an assignment).
func (c *wsConn) send(b []byte) error {
	return c.out.push(c.ctx, outFrame{head: b}, nil)
}

// frameStart begins a server frame: {"op":op[,"id":id][,"sub":sub]
func frameStart(op, id, sub string) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"op":`...)
	b = appendJSONString(b, op)
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, id)
	}
	if sub != "" {
		b = append(b, `,"sub":`...)
		b = appendJSONString(b, sub)
	}
	return b
}

// sendError sends {"op":"error","id","sub","partition","error":{"code","message"}}
// with the code the HTTP API would use for err.
func (c *wsConn) sendError(id, sub string, partition *int, err error) {
	c.sendErrorCtx(c.ctx, id, sub, partition, err)
}

// sendErrorCtx is sendError waiting for room in the send buffer only
// until ctx ends: a subscription's goroutines pass the subscription's
// context, so unsubscribing never waits for a stalled client to read.
func (c *wsConn) sendErrorCtx(ctx context.Context, id, sub string, partition *int, err error) {
	_, code := ErrorStatus(err)
	b := frameStart("error", id, sub)
	if partition != nil {
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(*partition), 10)
	}
	b = append(b, `,"error":{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, err.Error())
	var re *core.OffsetRangeError
	if errors.As(err, &re) {
		b = append(b, `,"log_start_offset":`...)
		b = strconv.AppendInt(b, re.LogStart, 10)
		b = append(b, `,"high_watermark":`...)
		b = strconv.AppendInt(b, re.HighWatermark, 10)
	}
	var rl *core.RateLimitError
	if errors.As(err, &rl) {
		b = append(b, `,"retry_after_ms":`...)
		b = strconv.AppendInt(b, max(rl.RetryAfter.Milliseconds(), 1), 10)
	}
	var sg *core.StaleGenerationError
	if errors.As(err, &sg) {
		b = append(b, `,"generation":`...)
		b = strconv.AppendInt(b, sg.Current, 10)
	}
	b = apierr.AppendPartitions(b, err) // a produce that partly failed
	b = append(b, "}}"...)
	c.out.push(ctx, outFrame{head: b}, nil)
}

func (c *wsConn) opPing(f *wsFrame) error {
	b := frameStart("pong", f.ID, "")
	return c.send(append(b, '}'))
}

// async runs a request (produce, commit) beside the reader, at most
// MaxInflight at once per connection; the next one waits for a slot.
func (c *wsConn) async(fn func()) error {
	select {
	case c.inflight <- struct{}{}:
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.inflight }()
		fn()
	}()
	return nil
}

func (c *wsConn) opProduce(f *wsFrame) error {
	if f.Topic == "" {
		return core.Invalidf("produce needs a topic")
	}
	body := ProduceRequestJSON{Encoding: f.Encoding, ProducerID: f.ProducerID, Sequence: f.Sequence}
	if len(f.Records) == 0 {
		return core.Invalidf("produce needs records")
	}
	if err := json.Unmarshal(f.Records, &body.Records); err != nil {
		return core.Invalidf("records must be an array of records: %v", err)
	}
	req, err := body.ToCore(f.Topic)
	if err != nil {
		return err
	}
	return c.async(func() {
		cost := quota.Cost{Requests: 1}
		if c.hub.s.cfg.Quotas.Applies(c.principal) {
			for i := range req.Records {
				cost.Produce += int64(req.Records[i].Size())
			}
		}
		if err := c.admitFrame(c.ctx, cost); err != nil { // ws_quota.go: decided before writing
			c.sendError(f.ID, "", nil, err)
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.hub.s.cfg.ProduceTimeout)
		defer cancel()
		res, err := c.hub.s.broker.Produce(ctx, req)
		if err != nil {
			c.sendError(f.ID, "", nil, err)
			return
		}
		b := frameStart("produced", f.ID, "")
		b = appendProduced(append(b, ','), res)
		c.send(append(b, '}'))
	})
}

// opCommit commits offsets: of a group subscription ("sub", checked
// against the member's generation and assignment), or of a named group
// ("group", unchecked, like POST /v1/groups/{group}/offsets).
func (c *wsConn) opCommit(f *wsFrame) error {
	offs := make([]core.GroupOffset, 0, len(f.Offsets)+1)
	var sub *wsSub
	topic := f.Topic
	if f.Sub != "" {
		c.mu.Lock()
		sub = c.subs[f.Sub]
		c.mu.Unlock()
		if sub == nil {
			return core.Invalidf("no subscription %q on this connection", f.Sub)
		}
		if sub.spec.group == "" {
			return core.Invalidf("subscription %q is not in a group: commit with \"group\" instead", f.Sub)
		}
		if topic == "" {
			topic = sub.spec.topic
		}
	} else if f.Group == "" {
		return core.Invalidf("commit needs a group subscription (\"sub\") or a \"group\"")
	}
	if f.Offset != nil {
		if f.Partition == nil {
			return core.Invalidf("commit needs a partition with its offset")
		}
		offs = append(offs, core.GroupOffset{Topic: topic, Partition: *f.Partition, Offset: *f.Offset})
	}
	for _, o := range f.Offsets {
		t := o.Topic
		if t == "" {
			t = topic
		}
		offs = append(offs, core.GroupOffset{Topic: t, Partition: o.Partition, Offset: o.Offset})
	}
	if len(offs) == 0 {
		return core.Invalidf("commit needs an offset (with partition) or offsets")
	}
	for _, o := range offs {
		if o.Topic == "" {
			return core.Invalidf("commit needs a topic")
		}
	}
	return c.async(func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.hub.s.cfg.ProduceTimeout)
		defer cancel()
		var err error
		if sub != nil {
			err = sub.commit(ctx, f.Generation, offs)
		} else {
			err = c.hub.s.broker.CommitOffsets(ctx, f.Group, offs)
		}
		if err != nil {
			c.sendError(f.ID, f.Sub, nil, err)
			return
		}
		b := frameStart("committed", f.ID, f.Sub)
		b = append(b, `,"offsets":`...)
		b = appendOffsets(b, offs)
		c.send(append(b, '}'))
	})
}

func appendOffsets(b []byte, offs []core.GroupOffset) []byte {
	b = append(b, '[')
	for i, o := range offs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"topic":`...)
		b = appendJSONString(b, o.Topic)
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(o.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, o.Offset, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}
