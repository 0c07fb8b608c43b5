package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
)

// DefaultMaxRequestBytes bounds one request frame, like Kafka's
// socket.request.max.bytes.
const DefaultMaxRequestBytes = 100 << 20

// Config configures a Server. Broker is required; the zero value of every
// other field takes the default named.
type Config struct {
	// Broker is the domain the listener maps requests onto (required).
	Broker *core.Broker
	// NodeID is this node's id; it is the Kafka broker id in Metadata.
	// Default 1.
	NodeID uint64
	// Addr is the listen address used by Run (port 0 picks a free port);
	// default "127.0.0.1:9092".
	Addr string
	// AdvertisedAddr is the host:port Metadata names for this node;
	// default the bound address.
	AdvertisedAddr string
	// TLS, when set, serves TLS on the listener (Run only; Serve takes the
	// listener as it is).
	TLS *tls.Config
	// Auth, when enabled, requires SASL (PLAIN with a Weir token as the
	// password, or OAUTHBEARER with a JWT) and checks ACLs on every call.
	Auth *auth.Service
	// Quotas limits what each principal may cost this node (quota.go,
	// docs/quotas.md): the gateway's limiter; nil: no limits.
	Quotas *quota.Limiter
	// MaxRequestBytes bounds a request frame; default 100 MiB.
	MaxRequestBytes int
	// Cluster names the other nodes and the group coordinator; nil: this
	// node alone answers for every partition and group.
	Cluster Cluster
	// ClusterID is returned in Metadata; default "weir".
	ClusterID string
	// Now is the clock for session expiry; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Broker == nil {
		return errors.New("kafka: Config.Broker is required")
	}
	if c.MaxRequestBytes < 0 {
		return errors.New("kafka: MaxRequestBytes must be ≥ 0")
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := splitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("kafka: advertised address: %w", err)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9092"
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.ClusterID == "" {
		c.ClusterID = "weir"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is a Kafka protocol listener. New returns it inert; Run or Serve
// start it; Close stops it and waits for every connection goroutine. It is
// safe for concurrent use.
type Server struct {
	cfg    Config
	broker *core.Broker
	groups *coordinator
	pids   *producerIDs

	ready chan struct{}

	mu     sync.Mutex // guards ln, conns, closed
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates cfg and returns an inert server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, broker: cfg.Broker, ready: make(chan struct{}), conns: map[net.Conn]struct{}{}, ctx: ctx, cancel: cancel}
	s.groups = newCoordinator(s)
	s.pids = newProducerIDs()
	return s, nil
}

// Run listens on Config.Addr (with TLS when configured) and serves until
// ctx ends or Close is called.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kafka: listen on %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	return s.Serve(ln)
}

// Listen binds Config.Addr now (so Addr is known at once) and serves in a
// goroutine owned by the server; Close stops it.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kafka: listen on %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	if err := s.Start(ln); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// Start serves ln in a goroutine owned by the server; Close stops it.
func (s *Server) Start(ln net.Listener) error {
	if err := s.setListener(ln); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.serve(ln) }()
	return nil
}

// Serve accepts connections on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.setListener(ln); err != nil {
		return err
	}
	return s.serve(ln)
}

func (s *Server) setListener(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kafka: server closed")
	}
	if s.ln != nil {
		return errors.New("kafka: server already serving")
	}
	s.ln = ln
	close(s.ready)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.groups.run(s.ctx) }()
	return nil
}

func (s *Server) serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Ready is closed once the server has a listener.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the bound listen address ("" before Run, Serve or Listen).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// advertised is the host and port Metadata names for this node.
func (s *Server) advertised() (string, int32) {
	a := s.cfg.AdvertisedAddr
	if a == "" {
		a = s.Addr()
	}
	h, p, err := splitHostPort(a)
	if err != nil {
		return "127.0.0.1", 9092
	}
	return h, p
}

func joinHostPort(h string, p int32) string { return net.JoinHostPort(h, strconv.Itoa(int(p))) }

func splitHostPort(a string) (string, int32, error) {
	h, ps, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = "127.0.0.1"
	}
	return h, int32(p), nil
}

// Close stops accepting, closes every connection and waits for their
// goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	s.cancel()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
