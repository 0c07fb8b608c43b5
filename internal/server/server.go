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
	for _, v := range []interface{ Validate() error }{&cfg.Broker, &cfg.Gateway, &cfg.Queues, &cfg.Groups, &cfg.Quotas} {
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
func Start(cfg Config) (*Server, error) {
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
	cfg.HTTPAddr = sec.listenAddr(cfg.HTTPAddr, cfg.Logger.Warn)
	var tlsCfg *tls.Config
	if sec.TLS() {
		var err error
		if tlsCfg, err = sec.serverTLS(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	scheme := "http://"
	if tlsCfg != nil {
		ln, scheme = tls.NewListener(ln, tlsCfg), "https://"
	}
	kln, kadv, err := listenKafka(cfg, sec, tlsCfg) // kafka.go
	if err != nil {
		ln.Close()
		return nil, err
	}
	defer func() { // until startKafka owns it
		if kln != nil {
			kln.Close()
		}
	}()
	rc := cfg.Raft
	if cfg.TieredStorage.Endpoint != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		store, err := objstore.NewS3(ctx, cfg.TieredStorage)
		cancel()
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("tiered storage: %w", err)
		}
		rc.Tiered.Store = store
	}
	rc.KafkaAddr = kadv
	sec.applyRaft(&rc)
	rc.NodeID, rc.DataDir, rc.RaftAddr, rc.Peers = cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Peers
	rc.HTTPAddr = ln.Addr().String()
	rc.Logger = cfg.Logger
	fwd, err := prepareCluster(cfg, &rc) // cluster.go: forwarding, --join
	if err != nil {
		ln.Close()
		return nil, err
	}
	host, err := raftlog.New(rc)
	if err != nil {
		ln.Close()
		return nil, err
	}
	tel, err := newTelemetry(cfg)
	if err != nil {
		host.Close()
		ln.Close()
		return nil, err
	}
	authSvc, err := auth.New(host, func() auth.Config { c := sec.authConfig(); c.Logger = cfg.Logger; return c }())
	if err != nil {
		tel.Shutdown(context.Background())
		host.Close()
		ln.Close()
		return nil, err
	}
	if sec.Auth {
		cfg.Pipelines.Access = authSvc // pipelines run with their creator's rights
	}
	bc := cfg.Broker
	bc.Logger = cfg.Logger
	bc.Telemetry = tel.Core()
	broker := core.NewBroker(host, bc)
	qc := cfg.Quotas
	qc.Telemetry, qc.Audit, qc.Logger = tel.Core(), authSvc, cfg.Logger
	quotas, _ := quota.New(host, qc) // validated above
	gc := cfg.Gateway
	gc.Logger = cfg.Logger
	gc.Groups = newGroups(cfg, broker) // streaming.go
	gc.Auth = authSvc
	gc.Quotas = quotas
	runLinks := startLinks(cfg, broker, &gc, tel) // links.go: /v1/links and the mirror pullers
	gw := gateway.New(broker, gc)
	gw.SetProxy(fwd) // proxied fetches
	// Node-to-node calls: served by internal/peer under the route table's
	// node-only mount point /v1/internal/.
	ph, err := peer.NewHandler(peer.HandlerConfig{Cluster: host, Telemetry: broker.Telemetry(), Timeout: gc.ProduceTimeout})
	if err != nil {
		tel.Shutdown(context.Background())
		host.Close()
		ln.Close()
		return nil, err
	}
	gw.Handle(gateway.Route{Path: peer.Prefix, Handler: ph.Serve})
	mountBrowser(gw)                            // streaming.go: /sdk/weir.js and /demo
	var pipesRef atomic.Pointer[core.Pipelines] // set once the pipeline service starts, below
	pipeLags := func() []core.PipelineLag {
		if p := pipesRef.Load(); p != nil {
			return p.Lags()
		}
		return nil
	}
	var queuesRef atomic.Pointer[core.Queues] // set once the queue service exists, below
	queuePending := func() []core.QueuePending {
		if q := queuesRef.Load(); q != nil {
			return q.PendingByPriority()
		}
		return nil
	}
	if err := wireTelemetry(tel, cfg.NodeID, host, broker, gw, pipeLags, queuePending); err != nil {
		tel.Shutdown(context.Background())
		host.Close()
		ln.Close()
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Host: host, Broker: broker, Gateway: gw, Telemetry: tel, peer: ph, ln: ln, scheme: scheme, cancel: cancel, serveErr: make(chan error, 1), log: cfg.Logger}
	s.Groups = gc.Groups
	s.Queues = newQueues(cfg, broker, gw) // queues.go
	queuesRef.Store(s.Queues)
	s.goRun(ctx, authSvc.Run)  // the audit log writer
	s.goRun(ctx, s.Groups.Run) // expiry and keep-alives (streaming.go)
	s.goRun(ctx, s.Queues.Run) // maintenance; owns the partition workers
	if s.Pipelines, s.Wasm, s.pipesDone, err = startPipelines(ctx, cfg, broker, gw); err != nil {
		cancel()
		s.bg.Wait()
		tel.Shutdown(context.Background())
		host.Close()
		ln.Close()
		return nil, err
	}
	pipesRef.Store(s.Pipelines)
	s.goRun(ctx, broker.RunRetention)
	s.goRun(ctx, runLinks)
	go func() { s.serveErr <- gw.Serve(ln) }()
	kafkaLn := kln // startKafka owns it now
	kln = nil
	if s.Kafka, err = startKafka(cfg, kafkaLn, kadv, broker, authSvc, quotas, host); err != nil { // kafka.go
		s.Close(context.Background())
		return nil, err
	}
	return s, nil
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
