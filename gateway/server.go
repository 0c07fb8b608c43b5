package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
)

// Config configures the gateway. Zero values take the defaults named.
type Config struct {
	MaxBodyBytes int           // request body limit; default 16 MiB (413 too_large past it)
	ReadTimeout  time.Duration // default 90 s (long-polls wait up to 60 s)
	WriteTimeout time.Duration // default 90 s
	// ProduceTimeout bounds a produce that has no deadline of its own; default 30 s.
	ProduceTimeout time.Duration
	Logger         *slog.Logger

	// WebSocket configures /v1/ws (ws.go).
	WebSocket WSConfig
	// Groups is the consumer group coordinator (groups.go); nil: the
	// gateway makes one with default settings and runs it until Shutdown.
	Groups *core.GroupCoordinator

	// Auth authenticates and authorizes requests (security.go); nil or
	// disabled: every request is allowed, as the anonymous admin.
	Auth *auth.Service

	// Quotas limits what each principal may cost this node and stores the
	// quotas of /v1/quotas (quota.go, docs/quotas.md); nil: no limits, and
	// /v1/quotas answers 404.
	Quotas *quota.Limiter
	// Cluster serves /v1/cluster (membership, status, rebalance; the node's
	// Raft host implements it); nil: those routes answer 404.
	Cluster core.Cluster

	// Links stores cluster links and mirror marks (links.go,
	// docs/geo-replication.md); nil: /v1/links answers 404.
	// LinkObserver reports their lag (GET /v1/links/{name}); may be nil.
	Links        *core.Links
	LinkObserver core.LinkObserver
}

// Validate reports a negative limit or timeout, in Config or in its
// WebSocket settings (zero takes the default). New calls it and returns
// its error.
func (c *Config) Validate() error {
	type field struct {
		name string
		v    int64
		dur  bool
	}
	i := func(name string, v int) field { return field{name: name, v: int64(v)} }
	d := func(name string, v time.Duration) field { return field{name: name, v: int64(v), dur: true} }
	w := &c.WebSocket
	for _, f := range []field{
		i("MaxBodyBytes", c.MaxBodyBytes),
		d("ReadTimeout", c.ReadTimeout),
		d("WriteTimeout", c.WriteTimeout),
		d("ProduceTimeout", c.ProduceTimeout),
		i("WebSocket.MaxMessageBytes", w.MaxMessageBytes),
		i("WebSocket.MaxFrameBytes", w.MaxFrameBytes),
		i("WebSocket.SendBufferBytes", w.SendBufferBytes),
		i("WebSocket.MaxSubscriptions", w.MaxSubscriptions),
		i("WebSocket.MaxInflight", w.MaxInflight),
		i("WebSocket.DefaultCredit", w.DefaultCredit),
		d("WebSocket.PingInterval", w.PingInterval),
		d("WebSocket.PongTimeout", w.PongTimeout),
		d("WebSocket.WriteTimeout", w.WriteTimeout),
		i("WebSocket.ReadBufferSize", w.ReadBufferSize),
		i("WebSocket.WriteBufferSize", w.WriteBufferSize),
		i("WebSocket.FeedCacheBytes", w.FeedCacheBytes),
	} {
		if f.v >= 0 {
			continue
		}
		v := fmt.Sprint(f.v)
		if f.dur {
			v = time.Duration(f.v).String()
		}
		return fmt.Errorf("gateway: Config.%s is %s: it must not be negative (0 takes the default)", f.name, v)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 90 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 90 * time.Second
	}
	if c.ProduceTimeout <= 0 {
		c.ProduceTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Route is a handler another part of the product provides for one of the
// route table's mount points (routes.go: /metrics, /sdk/*, /demo, and
// /v1/internal/ for internal/peer); the table decides who may call it.
type Route struct {
	// Path matches exactly, or by prefix when it ends in "/".
	Path    string
	Handler fasthttp.RequestHandler
}

// Server is the HTTP gateway.
type Server struct {
	cfg    Config
	broker *core.Broker
	srv    *fasthttp.Server
	mounts []Route

	baseCtx context.Context
	cancel  context.CancelFunc
	bg      sync.WaitGroup // goroutines New started (the default group coordinator); Shutdown waits

	stats StatsSource     // node-level parts of GET /v1/stats (stats.go)
	pipes *core.Pipelines // set by MountPipelines; GET /v1/stats reads pipeline progress

	queues *core.Queues // subscriptions (subscriptions.go); nil: disabled

	proxy NodeProxy // proxies fetches to other nodes (cluster.go); nil: single node

	ws     *wsHub                 // WebSocket connections (ws.go)
	groups *core.GroupCoordinator // consumer groups (groups.go)
}

// New returns a gateway for broker, or cfg.Validate's error.
func New(broker *core.Broker, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	groups := cfg.Groups
	if groups == nil {
		var err error
		if groups, err = core.NewGroupCoordinator(broker, core.GroupConfig{Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, broker: broker}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	g := newHeaderGate(s) // earlyauth.go: 413 and 401 from the headers, body unread
	s.srv = &fasthttp.Server{
		Handler:                       g.handler(s.handle),
		ErrorHandler:                  g.parseError, // then handleParseError
		HeaderReceived:                g.received,
		ConnState:                     g.connState,
		SecureErrorLogMessage:         true, // no request bytes (tokens) in logs
		MaxRequestBodySize:            cfg.MaxBodyBytes,
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   2 * time.Minute,
		NoDefaultServerHeader:         true,
		DisableHeaderNamesNormalizing: false,
		StreamRequestBody:             false,
		Name:                          "weir",
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{cfg.Logger},
	}
	s.ws = newWSHub(s, cfg.WebSocket)
	s.groups = groups
	if cfg.Groups == nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.groups.Run(s.baseCtx)
		}()
	}
	return s, nil
}

// Handle provides the handler of a mount point of the route table. Call
// before Serve.
func (s *Server) Handle(r Route) { s.mounts = append(s.mounts, r) }

// Serve accepts connections on ln until Shutdown. A connection answered
// before its request was read closes lingeringly (conn.go); Serve returns
// once those drains ended too (each within 2 s).
func (s *Server) Serve(ln net.Listener) error {
	l := newLingerListener(ln)
	err := s.srv.Serve(l)
	l.wait()
	return err
}

// Shutdown stops accepting, lets in-flight requests (produces included,
// and the appends of acks=none produces) finish until ctx ends, then
// closes the rest and waits for the goroutines the gateway started.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.ShutdownWithContext(ctx)
	if werr := s.broker.WaitNoAck(ctx); err == nil {
		err = werr
	}
	s.cancel() // ends acks=none appends still running, WebSockets, the group coordinator
	if werr := s.ws.wait(ctx); err == nil {
		err = werr // WebSocket connections close with the base context
	}
	s.bg.Wait()
	return err
}

// Handler returns the gateway's request handler (tests serve it on their own listeners).
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// handleParseError answers a request fasthttp could not read. The message
// never quotes the request (fasthttp's errors do: headers, tokens
// included), and the connection closes lingeringly: the client may still
// be sending (conn.go).
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	ctx.SetConnectionClose()
	lingerOnClose(ctx)
	var small *fasthttp.ErrSmallBuffer
	var broken fasthttp.ErrBrokenChunk
	var ne net.Error
	msg := "malformed HTTP request"
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, &StatusError{Status: 413, Code: "too_large",
			Msg: fmt.Sprintf("request body exceeds the limit of %d bytes", s.cfg.MaxBodyBytes)})
		return
	case errors.As(err, &small):
		msg = "request header block too large (at most 4 KiB)"
	case errors.As(err, &broken):
		msg = "malformed chunked request body"
	case errors.As(err, &ne) && ne.Timeout():
		msg = "timed out reading the request"
	}
	writeError(ctx, &StatusError{Status: 400, Code: "bad_request", Msg: msg})
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ok"}` + "\n")
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if s.broker.Store().Ready() {
		ctx.SetBodyString(`{"status":"ready"}` + "\n")
		return
	}
	ctx.SetStatusCode(503)
	ctx.SetBodyString(`{"status":"not ready"}` + "\n")
}

func (s *Server) dashboard(ctx *fasthttp.RequestCtx) { s.serveDashboard(ctx, string(ctx.Path())) }

// mounted serves a handler another part of the product mounted with
// Handle at the request's path (a prefix when it ends in "/").
func (s *Server) mounted(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	for _, r := range s.mounts {
		if matchMount(r.Path, path) {
			r.Handler(ctx)
			return
		}
	}
	writeError(ctx, errNotFound)
}

func matchMount(pattern, path string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(path, pattern) || path+"/" == pattern
	}
	return pattern == path
}

// requestContext derives a context for one request that ends at shutdown's
// hard stop or after timeout.
func (s *Server) requestContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.baseCtx, timeout)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(body)
}

// fasthttpLogger sends fasthttp's own messages (mostly clients that went
// away or sent garbage) to the debug log.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("http: " + fmt.Sprintf(format, args...))
}
