package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// WSConfig configures WebSocket streaming (docs/websocket.md). Zero values
// take the defaults named.
type WSConfig struct {
	// AllowedOrigins lists the origins ("https://app.example.com") whose
	// pages may open sockets besides the gateway's own origin; "*" allows
	// every origin. Empty: same origin only. A handshake without an Origin
	// header (a program, not a browser page) is always accepted.
	AllowedOrigins []string
	// MaxMessageBytes is the largest message a client may send; past it the
	// connection is closed with status 1009. Default 1 MiB.
	MaxMessageBytes int
	// MaxFrameBytes bounds a records frame (a single larger record is sent
	// alone); default 256 KiB.
	MaxFrameBytes int
	// SendBufferBytes bounds the frames queued for one connection; when it
	// is full the connection's subscriptions stop reading the log until the
	// client catches up. Default 1 MiB.
	SendBufferBytes int
	// MaxSubscriptions per connection; default 64.
	MaxSubscriptions int
	// MaxInflight is the number of produce and commit requests of one
	// connection in progress at once; the next waits. Default 32.
	MaxInflight int
	// DefaultCredit is how many records a subscription may be sent before
	// the client grants more, when subscribe names no credit; default 1000.
	DefaultCredit int
	// PingInterval between server pings; default 20 s.
	PingInterval time.Duration
	// PongTimeout closes a connection from which nothing (not even a pong)
	// arrived for that long; default 60 s.
	PongTimeout time.Duration
	// WriteTimeout closes a connection when writing one frame takes longer;
	// default 30 s.
	WriteTimeout time.Duration
	// ReadBufferSize is the per-connection read buffer; default 2 KiB.
	// Write buffers (WriteBufferSize, default 32 KiB) are pooled and held
	// only while a frame is written, so idle connections cost little.
	ReadBufferSize  int
	WriteBufferSize int
	// FeedCacheBytes is how many bytes of encoded records are kept per
	// partition, shared by all its subscribers (fan-out encodes each record
	// once); default 4 MiB.
	FeedCacheBytes int
}

func (c *WSConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxMessageBytes, 1<<20)
	def(&c.MaxFrameBytes, 256<<10)
	def(&c.SendBufferBytes, 1<<20)
	def(&c.MaxSubscriptions, 64)
	def(&c.MaxInflight, 32)
	def(&c.DefaultCredit, 1000)
	def(&c.ReadBufferSize, 2<<10)
	def(&c.WriteBufferSize, 32<<10)
	def(&c.FeedCacheBytes, 4<<20)
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
}

// WSStats is a snapshot of the WebSocket server's state.
type WSStats struct {
	Connections   int
	Subscriptions int
	QueuedBytes   int64 // frames waiting to be written, all connections
	// Paused counts partition readers waiting for room in their
	// connection's send buffer (slow consumers), not for credit or data.
	Paused int64
}

// wsHub owns the WebSocket connections of a gateway: it upgrades them,
// tracks them for Shutdown and stats, and holds the shared feeds.
type wsHub struct {
	s        *Server
	cfg      WSConfig
	upgrader websocket.Upgrader
	feeds    *feeds
	allowAll bool
	allowed  map[string]bool

	mu    sync.Mutex // guards conns
	conns map[*wsConn]struct{}
	wg    sync.WaitGroup // one per connection

	paused atomic.Int64

	open, dropped atomic.Int64 // connections open now; dropped for reading too slowly (WSCounters)

	pconns principalConns // connections per principal (ws_security.go)
}

func newWSHub(s *Server, cfg WSConfig) *wsHub {
	cfg.setDefaults()
	h := &wsHub{s: s, cfg: cfg, conns: map[*wsConn]struct{}{}, allowed: map[string]bool{}}
	for _, o := range cfg.AllowedOrigins {
		o = strings.TrimRight(strings.ToLower(strings.TrimSpace(o)), "/")
		if o == "*" {
			h.allowAll = true
		} else if o != "" {
			h.allowed[o] = true
		}
	}
	h.feeds = newFeeds(cfg.FeedCacheBytes, cfg.MaxFrameBytes)
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferSize:  cfg.WriteBufferSize,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      func(r *http.Request) bool { return h.originAllowed(r.Header.Get("Origin"), r.Host) },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			code := "bad_request"
			if status == http.StatusForbidden {
				code = "forbidden"
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Sec-Websocket-Version", "13")
			w.WriteHeader(status)
			b := append([]byte(`{"error":{"code":`), strconv.Quote(code)...)
			b = append(b, `,"message":`...)
			b = appendJSONString(b, reason.Error())
			w.Write(append(b, "}}\n"...))
		},
	}
	return h
}

// originAllowed: no Origin (not a browser), the gateway's own origin, or
// one of AllowedOrigins.
func (h *wsHub) originAllowed(origin, host string) bool {
	if origin == "" {
		return true
	}
	if h.allowAll {
		return true
	}
	if h.allowed[strings.TrimRight(strings.ToLower(origin), "/")] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

func (h *wsHub) add(c *wsConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.s.baseCtx.Err() != nil {
		return false
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.open.Add(1)
	return true
}

func (h *wsHub) remove(c *wsConn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.open.Add(-1)
	h.wg.Done()
}

// stats sums the connections' state.
func (h *wsHub) stats() WSStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := WSStats{Connections: len(h.conns), Paused: h.paused.Load()}
	for c := range h.conns {
		st.QueuedBytes += c.out.queued()
		st.Subscriptions += c.subCount()
	}
	return st
}

// wait blocks until every connection has ended (they end when the
// gateway's base context is cancelled) or ctx ends.
func (h *wsHub) wait(ctx context.Context) error {
	// An add in progress finishes first; later ones see the base context
	// cancelled and refuse, so Wait below races with no Add.
	h.mu.Lock()
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WSStats returns a snapshot of the WebSocket connections.
func (s *Server) WSStats() WSStats { return s.ws.stats() }

var errUpgradeRequired = &StatusError{Status: http.StatusUpgradeRequired, Code: "upgrade_required",
	Msg: "this endpoint speaks WebSocket: send a GET with Connection: Upgrade and Upgrade: websocket"}

// serveWS upgrades a request to a WebSocket connection. preset, when not
// nil, is a subscribe frame run at once (the /v1/topics/{topic}/ws shortcut).
//
// fasthttp cannot hand gorilla a net/http request, so the connection is
// hijacked (no fasthttp response written) and gorilla's Upgrader runs on
// it through hijackWriter, a minimal http.ResponseWriter + http.Hijacker.
// Refusals we can foresee (wrong method, not an upgrade, foreign origin)
// are answered before the hijack as ordinary JSON errors; any other
// refusal by gorilla is written by hijackWriter as a complete HTTP
// response. docs/RATIONALE.md says why this and not net/http beside fasthttp.
func (s *Server) serveWS(ctx *fasthttp.RequestCtx, preset *wsFrame) {
	if !ctx.IsGet() {
		writeError(ctx, errMethodNotAllowed)
		return
	}
	if !headerHasToken(ctx.Request.Header.Peek("Connection"), "upgrade") ||
		!headerHasToken(ctx.Request.Header.Peek("Upgrade"), "websocket") {
		writeError(ctx, errUpgradeRequired)
		return
	}
	origin := string(ctx.Request.Header.Peek("Origin"))
	if !s.ws.originAllowed(origin, string(ctx.Host())) {
		writeError(ctx, &StatusError{Status: http.StatusForbidden, Code: "forbidden",
			Msg: fmt.Sprintf("origin %q may not open WebSockets here (same origin only, or list it in --allowed-origins)", origin)})
		return
	}
	principal, release, ok := s.wsAdmit(ctx) // ws_security.go
	if !ok {
		return
	}
	// Copy what gorilla needs: ctx must not be used after the hijack.
	req := &http.Request{
		Method:     "GET",
		Host:       string(ctx.Host()),
		Header:     http.Header{},
		RequestURI: string(ctx.RequestURI()),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		RemoteAddr: ctx.RemoteAddr().String(),
	}
	req.URL, _ = url.ParseRequestURI(req.RequestURI)
	for k, v := range ctx.Request.Header.All() {
		req.Header.Add(string(k), string(v))
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(nc net.Conn) {
		defer release()
		w := &hijackWriter{conn: nc, header: http.Header{}}
		conn, err := s.ws.upgrader.Upgrade(w, req, nil)
		if err != nil {
			w.finish()
			s.cfg.Logger.Debug("websocket handshake refused", "remote", req.RemoteAddr, "err", err)
			return
		}
		c := newWSConn(s.ws, conn)
		c.principal, c.remote = principal, req.RemoteAddr
		if !s.ws.add(c) {
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
			conn.Close()
			return
		}
		defer s.ws.remove(c)
		c.run(preset)
	})
}

// serveTopicWS is GET /v1/topics/{topic}/ws: a socket with one
// subscription made from the query (from, timestamp, partition, group,
// encoding, credit; unlimited credit by default), for tools like websocat.
// serveWSRoute is GET /v1/ws.
func (s *Server) serveWSRoute(ctx *fasthttp.RequestCtx) { s.serveWS(ctx, nil) }

// topicWSReq is GET /v1/topics/{t}/ws: the subscription frame is made from
// the query once, and the frame's own needs are checked by the route.
type topicWSReq struct {
	Topic string `path:"t" json:"-" need:"topic:read"`
	Group string `query:"group" json:"-" need:"group:read,optional"`
	frame *wsFrame
}

func (r *topicWSReq) parse(c *call) error {
	f, err := c.s.topicWSFrame(c.ctx, r.Topic)
	if err != nil {
		return err
	}
	f.Group = r.Group
	r.frame = f
	return nil
}

func (s *Server) serveTopicWS(c *call, r *topicWSReq) {
	if _, err := s.broker.Store().Topic(r.Topic); err != nil {
		writeError(c.ctx, err)
		return
	}
	if _, err := s.ws.parseSubscribe(r.frame); err != nil {
		writeError(c.ctx, err)
		return
	}
	s.serveWS(c.ctx, r.frame)
}

// topicWSFrame makes the subscribe frame of GET /v1/topics/{t}/ws from the
// query (from, timestamp, partition, group, encoding, credit; unlimited
// credit by default), for tools like websocat.
func (s *Server) topicWSFrame(ctx *fasthttp.RequestCtx, topic string) (*wsFrame, error) {
	args := ctx.QueryArgs()
	f := &wsFrame{Op: "subscribe", ID: topic, Topic: topic, Group: string(args.Peek("group")), Encoding: string(args.Peek("encoding"))}
	if args.Has("from") {
		v := string(args.Peek("from"))
		if _, err := strconv.ParseInt(v, 10, 64); err == nil {
			f.From = []byte(v)
		} else {
			f.From = strconv.AppendQuote(nil, v)
		}
	}
	for _, q := range []struct {
		name string
		dst  **int64
	}{{"timestamp", &f.Timestamp}, {"partition", nil}, {"credit", &f.Credit}, {"session_timeout_ms", nil}} {
		if !args.Has(q.name) {
			continue
		}
		v, err := strconv.ParseInt(string(args.Peek(q.name)), 10, 64)
		if err != nil || v < 0 {
			return nil, core.Invalidf("%s must be a number ≥ 0", q.name)
		}
		switch q.name {
		case "partition":
			p := int(v)
			f.Partition = &p
		case "session_timeout_ms":
			f.SessionTimeoutMs = v
		default:
			*q.dst = &v
		}
	}
	if f.Credit == nil {
		unlimited := int64(unlimitedCredit)
		f.Credit = &unlimited
	}
	return f, nil
}

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(v []byte, token string) bool {
	for _, part := range strings.Split(string(v), ",") {
		if strings.EqualFold(strings.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// hijackWriter is the http.ResponseWriter and http.Hijacker gorilla's
// Upgrader needs, over a connection hijacked from fasthttp. On success
// gorilla writes the 101 itself; on refusal the status, headers and body
// it set are written by finish as a complete HTTP/1.1 response, so the
// client gets a real status line (e.g. 403) and not a dropped connection.
type hijackWriter struct {
	conn     net.Conn
	header   http.Header
	status   int
	body     []byte
	hijacked bool
}

func (w *hijackWriter) Header() http.Header { return w.header }

func (w *hijackWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *hijackWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, errors.New("connection already hijacked")
	}
	w.hijacked = true
	// A small reader: gorilla allocates its own (ReadBufferSize), and the
	// request was already read by fasthttp, so nothing is buffered here.
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(w.conn, 16), bufio.NewWriterSize(w.conn, 16)), nil
}

// finish writes the refusal gorilla produced, if any.
func (w *hijackWriter) finish() {
	if w.hijacked && w.status == 0 {
		return // gorilla failed after taking the connection; nothing to answer
	}
	status := w.status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	w.header.Del("Content-Length")
	w.header.Set("Connection", "close")
	for k, vs := range w.header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, strings.NewReplacer("\r", " ", "\n", " ").Replace(v))
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(w.body))
	w.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w.conn.Write(append([]byte(b.String()), w.body...))
}
