// Package server assembles one Weir node: the Raft store (raftlog), the
// domain (core) and the HTTP gateway. cmd/weir and the integration tests
// start nodes through it, so both run exactly the same wiring.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
	"github.com/weir-broker/weir/gateway"
	"github.com/weir-broker/weir/gateway/kafka"
	"github.com/weir-broker/weir/internal/link"
	"github.com/weir-broker/weir/internal/peer"
	"github.com/weir-broker/weir/internal/telemetry"
	"github.com/weir-broker/weir/objstore"
	"github.com/weir-broker/weir/plugins"
	"github.com/weir-broker/weir/raftlog"
)

// Config is one node's configuration; cmd/weir fills it from flags.
type Config struct {
	NodeID   uint64
	DataDir  string
	HTTPAddr string // listen address; port 0 picks a free port
	RaftAddr string
	Peers    map[uint64]string // initial cluster members (node id → Raft address)
	Join     string            // HOST:HTTPPORT of a running node to join (cluster.go)

	Raft    raftlog.Config    // advanced Raft settings; identity fields above win
	Broker  core.BrokerConfig // domain limits and retention interval
	Gateway gateway.Config    // HTTP limits
	Logger  *slog.Logger

	// Telemetry configures traces, metrics and disk use (telemetry.go);
	// the zero value has tracing off and metrics on GET /metrics.
	Telemetry telemetry.Config

	// Queues tunes subscriptions (the queue model, queues.go).
	Queues core.QueueConfig

	// Wasm configures the Wasm host (isolation, limits, cache); Pipelines
	// the pipeline runner (pipelines.go).
	Wasm      plugins.Config
	Pipelines core.PipelinesConfig

	// Groups tunes consumer groups (streaming.go); NodeID and Logger are
	// taken from above.
	Groups core.GroupConfig

	// Security: TLS, authentication, ACLs, audit log (security.go).
	Security SecurityConfig

	// Quotas bounds what each principal may cost a node (core/quota,
	// docs/quotas.md): the wait bound and the burst; the quotas themselves
	// are set through /v1/quotas. Telemetry, Audit and Logger are set here.
	Quotas quota.Config

	// KafkaAddr is the Kafka listener's address ("": off; port 0 picks a
	// free port); KafkaAdvertisedAddr what Metadata names (default the
	// bound address). kafka.go, docs/kafka.md.
	KafkaAddr, KafkaAdvertisedAddr string

	// TieredStorage, with its Endpoint set, is the S3-compatible object
	// store of tiered topics (docs/tiered-storage.md); Start creates the
	// bucket when missing. Raft.Tiered tunes the rest.
	TieredStorage objstore.S3Config

	// Links tunes the cluster link runner (links.go, docs/geo-replication.md).
	Links link.Config
}

// validate reports a negative limit in the parts' configurations before
// anything starts (zero takes each default).
func (cfg *Config) validate() error {
	for _, v := range []interface{ Validate() error }{&cfg.Broker, &cfg.Gateway, &cfg.Queues, &cfg.Groups, &cfg.Pipelines, &cfg.Quotas} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Server is a running node.
type Server struct {
	Host    *raftlog.Host
	Broker  *core.Broker
	Gateway *gateway.Server
	// Telemetry is the node's OpenTelemetry setup (flushed by Close).
	Telemetry *telemetry.Telemetry
	// Queues is the subscription service (stopped by Close).
	Queues *core.Queues
	// Pipelines runs Wasm pipelines; Wasm is their host (closed by Close).
	Pipelines *core.Pipelines
	Wasm      *plugins.Host
	// Groups coordinates consumer groups (streaming.go).
	Groups *core.GroupCoordinator
	// Kafka is the Kafka listener, nil when off (kafka.go).
	Kafka *kafka.Server

	peer      *peer.Handler // node-to-node calls (closed by Close)
	quotas    *quota.Limiter
	runLinks  func(context.Context)          // the mirror pullers (links.go)
	pipes     atomic.Pointer[core.Pipelines] // Pipelines, for telemetry's lag gauges, once started
	ln        net.Listener
	scheme    string
	cancel    context.CancelFunc // ends the loops below; Close calls it, then waits
	bg        sync.WaitGroup     // audit log writer, retention, groups, queues (go)
	pipesDone <-chan struct{}
	serveErr  chan error
	log       *slog.Logger
}

// Start opens the data directory, joins or forms the Raft cluster and
// starts serving HTTP.
func Start(cfg Config) (s *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sec := cfg.Security // security.go
	if err := sec.validate(len(cfg.Peers) > 0 || cfg.Join != ""); err != nil {
		return nil, err
	}
	if !sec.Auth {
		cfg.Logger.Warn("AUTHENTICATION IS OFF: anyone who can reach this node may read, write and delete everything (start with --auth for production; docs/security.md)")
	}
	var undo undoList // what is started so far, undone if a later step fails
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	ls, err := listen(cfg, sec, &undo)
	if err != nil {
		return nil, err
	}
	host, fwd, err := startRaft(cfg, sec, ls)
	if err != nil {
		return nil, err
	}
	undo.add(func() { host.Close() })
	tel, err := newTelemetry(cfg) // telemetry.go
	if err != nil {
		return nil, err
	}
	undo.add(func() { tel.Shutdown(context.Background()) })
	authSvc, err := auth.New(host, func() auth.Config { c := sec.authConfig(); c.Logger = cfg.Logger; return c }())
	if err != nil {
		return nil, err
	}
	if sec.Auth {
		cfg.Pipelines.Access = authSvc // pipelines run with their creator's rights
	}
	s, err = newServer(cfg, host, tel, authSvc, fwd, ls)
	if err != nil {
		return nil, err
	}
	undo = nil // from here on, Close undoes
	if err := s.run(cfg, authSvc, ls); err != nil {
		return nil, err
	}
	return s, nil
}

// undoList undoes, in reverse, the steps of Start done so far.
type undoList []func()

func (u *undoList) add(f func()) { *u = append(*u, f) }

func (u undoList) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// listeners are the node's open sockets: HTTP (TLS when configured) and
// the Kafka listener with the address it advertises (nil, "" when off).
type listeners struct {
	http     net.Listener
	scheme   string // "http://" or "https://"
	kafka    net.Listener
	kafkaAdv string
}

// listen opens the HTTP and Kafka listeners; undo closes them.
func listen(cfg Config, sec SecurityConfig, undo *undoList) (*listeners, error) {
	addr := sec.listenAddr(cfg.HTTPAddr, cfg.Logger.Warn)
	var tlsCfg *tls.Config
	if sec.TLS() {
		var err error
		if tlsCfg, err = sec.serverTLS(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	ls := &listeners{http: ln, scheme: "http://"}
	if tlsCfg != nil {
		ls.http, ls.scheme = tls.NewListener(ln, tlsCfg), "https://"
	}
	undo.add(func() { ls.http.Close() })
	if ls.kafka, ls.kafkaAdv, err = listenKafka(cfg, sec, tlsCfg); err != nil { // kafka.go
		return nil, err
	}
	undo.add(func() {
		if ls.kafka != nil {
			ls.kafka.Close()
		}
	})
	return ls, nil
}

// startRaft connects tiered storage when configured, prepares node-to-node
// forwarding (and --join), and starts the Raft host.
func startRaft(cfg Config, sec SecurityConfig, ls *listeners) (*raftlog.Host, *peer.Forwarder, error) {
	rc := cfg.Raft
	if cfg.TieredStorage.Endpoint != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		store, err := objstore.NewS3(ctx, cfg.TieredStorage)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("tiered storage: %w", err)
		}
		rc.Tiered.Store = store
	}
	rc.KafkaAddr = ls.kafkaAdv
	sec.applyRaft(&rc)
	rc.NodeID, rc.DataDir, rc.RaftAddr, rc.Peers = cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Peers
	rc.HTTPAddr = ls.http.Addr().String()
	rc.Logger = cfg.Logger
	fwd, err := prepareCluster(cfg, &rc) // cluster.go: forwarding, --join
	if err != nil {
		return nil, nil, err
	}
	host, err := raftlog.New(rc)
	if err != nil {
		return nil, nil, err
	}
	return host, fwd, nil
}

// newServer builds the domain services and the gateway over host, mounts
// their endpoints and wires telemetry; nothing runs yet.
func newServer(cfg Config, host *raftlog.Host, tel *telemetry.Telemetry, authSvc *auth.Service, fwd *peer.Forwarder, ls *listeners) (*Server, error) {
	bc := cfg.Broker
	bc.Logger = cfg.Logger
	bc.Telemetry = tel.Core()
	broker, err := core.NewBroker(host, bc)
	if err != nil {
		return nil, err
	}
	s := &Server{Host: host, Broker: broker, Telemetry: tel, ln: ls.http, scheme: ls.scheme, serveErr: make(chan error, 1), log: cfg.Logger}
	qc := cfg.Quotas
	qc.Telemetry, qc.Audit, qc.Logger = tel.Core(), authSvc, cfg.Logger
	if s.quotas, err = quota.New(host, qc); err != nil {
		return nil, err
	}
	if s.Groups, err = newGroups(cfg, broker); err != nil { // streaming.go
		return nil, err
	}
	gc := cfg.Gateway
	gc.Logger = cfg.Logger
	gc.Groups, gc.Auth, gc.Quotas, gc.Cluster = s.Groups, authSvc, s.quotas, host
	s.runLinks = startLinks(cfg, broker, &gc, tel) // links.go: /v1/links and the mirror pullers
	if s.Gateway, err = gateway.New(broker, gc); err != nil {
		return nil, err
	}
	s.Gateway.SetProxy(fwd) // proxied fetches
	// Node-to-node calls: served by internal/peer under the route table's
	// node-only mount point /v1/internal/.
	if s.peer, err = peer.NewHandler(peer.HandlerConfig{Cluster: host, Telemetry: broker.Telemetry(), Timeout: cfg.Gateway.ProduceTimeout}); err != nil {
		return nil, err
	}
	s.Gateway.Handle(gateway.Route{Path: peer.Prefix, Handler: s.peer.Serve})
	mountBrowser(s.Gateway) // streaming.go: /sdk/weir.js and /demo
	// queues.go: the subscription service and its endpoints
	if s.Queues, err = newQueues(cfg, broker, s.Gateway); err != nil {
		return nil, err
	}
	pipeLags := func() []core.PipelineLag {
		if p := s.pipes.Load(); p != nil {
			return p.Lags()
		}
		return nil
	}
	if err := wireTelemetry(tel, cfg.NodeID, host, broker, s.Gateway, pipeLags, s.Queues.PendingByPriority); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the node's loops, the pipeline service and the front doors.
// On an error, it has closed the node.
func (s *Server) run(cfg Config, authSvc *auth.Service, ls *listeners) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.goRun(ctx, authSvc.Run)  // the audit log writer
	s.goRun(ctx, s.Groups.Run) // expiry and keep-alives (streaming.go)
	s.goRun(ctx, s.Queues.Run) // maintenance; owns the partition workers
	var err error
	if s.Pipelines, s.Wasm, s.pipesDone, err = startPipelines(ctx, cfg, s.Broker, s.Gateway); err != nil {
		cancel()
		s.bg.Wait()
		s.Telemetry.Shutdown(context.Background())
		s.Host.Close()
		ls.http.Close()
		if ls.kafka != nil {
			ls.kafka.Close()
		}
		return err
	}
	s.pipes.Store(s.Pipelines)
	s.goRun(ctx, s.Broker.RunRetention)
	s.goRun(ctx, s.runLinks)
	go func() { s.serveErr <- s.Gateway.Serve(ls.http) }()
	if s.Kafka, err = startKafka(cfg, ls.kafka, ls.kafkaAdv, s.Broker, authSvc, s.quotas, s.Host); err != nil { // kafka.go, owns ls.kafka
		s.Close(context.Background())
		return err
	}
	return nil
}

// goRun runs loop(ctx) in a goroutine that Close waits for.
func (s *Server) goRun(ctx context.Context, loop func(context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		loop(ctx)
	}()
}

// Addr is the HTTP address the node serves on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the node's base URL.
func (s *Server) URL() string { return s.scheme + s.Addr() }

// WaitReady blocks until the node can take writes or ctx ends.
func (s *Server) WaitReady(ctx context.Context) error {
	for !s.Host.Ready() {
		select {
		case <-ctx.Done():
			return errors.New("node did not become ready")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Close stops accepting requests, lets in-flight ones (and acks=none
// appends) finish until ctx ends, stops every loop Start started and waits
// for them, then stops Raft.
func (s *Server) Close(ctx context.Context) error {
	s.Broker.EndWaits() // long polls answer now: the front doors drain promptly
	if s.Kafka != nil {
		s.Kafka.Close()
	}
	err := s.Gateway.Shutdown(ctx) // waits for acks=none appends, bounded by ctx
	s.peer.Close()
	s.cancel()
	s.bg.Wait()   // audit log, groups, queues (and their partition workers), retention
	<-s.pipesDone // workers stopped: no guest is running
	if werr := s.Broker.WaitNoAck(ctx); err == nil {
		err = werr // appends cancelled with the gateway's and Kafka's contexts end promptly
	}
	s.Wasm.Close()
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	s.Telemetry.Shutdown(flushCtx) // export errors were logged; nothing to do about them now
	cancelFlush()
	if herr := s.Host.Close(); err == nil {
		err = herr
	}
	return err
}
