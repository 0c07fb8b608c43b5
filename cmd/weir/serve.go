package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/quota"
	"github.com/weir-broker/weir/gateway"
	"github.com/weir-broker/weir/internal/server"
	"github.com/weir-broker/weir/internal/telemetry"
	"github.com/weir-broker/weir/raftlog"
)

func newServeCmd() *cobra.Command {
	var (
		dataDir, httpAddr, raftAddr, peers, join, logLevel, pprofAddr string
		nodeID                                                        uint64
		replication                                                   serveReplication
		allowedOrigins                                                []string
		kafkaAddr, kafkaAdvertisedAddr                                string
		sec                                                           serveSecurity // security_serve.go
		quotas                                                        quota.Config  // docs/quotas.md
		tiered                                                        serveTiered   // tiered_serve.go
		faults                                                        server.TestFaultsConfig
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Weir node (one node with embedded storage by default)",
		Long: `Run a Weir node. With no flags: a single-node cluster with its data in ./weir-data,
HTTP on 127.0.0.1:8080 and Raft on 127.0.0.1:7070. Every flag can also be set
through the environment as WEIR_<FLAG>, e.g. WEIR_HTTP_ADDR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newServeLogger(logLevel)
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				go servePprof(pprofAddr, logger)
			}
			pm, err := parsePeers(peers)
			if err != nil {
				return err
			}
			if join != "" && len(pm) > 0 {
				return fmt.Errorf("--join and --peers exclude each other: --peers forms a new cluster, --join enters a running one")
			}
			if replication.tick < time.Millisecond || replication.tick > time.Second || replication.tick%time.Millisecond != 0 {
				return fmt.Errorf("--raft-tick %v: a whole number of milliseconds from 1ms to 1s", replication.tick)
			}
			s3cfg, tieredCfg, err := tiered.config()
			if err != nil {
				return err
			}
			cfg := server.Config{
				NodeID: nodeID, DataDir: dataDir, HTTPAddr: httpAddr, RaftAddr: raftAddr, Peers: pm, Join: join, Logger: logger,
				Raft:      replication.raft(tieredCfg),
				Broker:    core.BrokerConfig{ProposalsInFlight: replication.proposalsInFlight}, // group commit (docs/RATIONALE.md)
				Telemetry: telemetry.Config{Env: os.LookupEnv},                                 // OTEL_* variables (docs/observability.md)
				// Pages of these origins may open WebSockets (docs/websocket.md).
				Gateway:   gateway.Config{WebSocket: gateway.WSConfig{AllowedOrigins: allowedOrigins}},
				Security:  sec.config(),
				Quotas:    quotas,
				KafkaAddr: kafkaAddr, KafkaAdvertisedAddr: kafkaAdvertisedAddr, // docs/kafka.md
				TieredStorage: s3cfg, // docs/tiered-storage.md
			}
			s, closeNode, err := startNode(cfg, faults)
			if err != nil {
				return err
			}
			logger.Info("weir node started", "node", nodeID, "http", s.URL(), "raft", raftAddr, "data", dataDir)
			return serveUntilSignal(s, closeNode, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "./weir-data", "directory for all of this node's data")
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	f.StringVar(&raftAddr, "raft-addr", "127.0.0.1:7070", "Raft listen address (peers dial it)")
	f.Uint64Var(&nodeID, "node-id", 1, "this node's id (≥ 1, unique in the cluster)")
	f.StringVar(&peers, "peers", "", "initial cluster members: 1=HOST:RAFTPORT,2=...; the same list on every initial node")
	f.StringVar(&join, "join", "", "HOST:HTTPPORT of a running node to join (a new node; ignored once it has joined)")
	replication.flags(f)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringSliceVar(&allowedOrigins, "allowed-origins", nil, "origins (https://app.example.com, or *) whose pages may open WebSockets besides this node's own; comma-separated")
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve Go's net/http/pprof on this address (for profiling; keep it on 127.0.0.1)")
	f.StringVar(&kafkaAddr, "kafka-addr", "127.0.0.1:9092", "Kafka protocol listen address (docs/kafka.md); empty turns the listener off")
	f.StringVar(&kafkaAdvertisedAddr, "kafka-advertised-addr", "", "HOST:PORT that Kafka Metadata names for this node (default the bound --kafka-addr)")
	f.DurationVar(&quotas.MaxWait, "quota-max-wait", time.Second, "how long a request over its principal's quota waits for it before the answer is 429 rate_limited (docs/quotas.md)")
	f.DurationVar(&quotas.Burst, "quota-burst", time.Second, "how many seconds of its quota's rate a principal may spend at once (docs/quotas.md)")
	sec.flags(f)
	tiered.flags(f)
	testFaultFlags(f, &faults)
	return cmd
}

// serveReplication is the flags of the Raft log and of how produces are
// proposed.
type serveReplication struct {
	metaVoters, proposalsInFlight int
	logDB, followerWrites         string
	quiesce                       bool
	tick                          time.Duration
}

func (r *serveReplication) flags(f *pflag.FlagSet) {
	f.IntVar(&r.metaVoters, "meta-voters", 3, "voters of the metadata shard: 3 or 5 (the same on every node)")
	f.StringVar(&r.logDB, "logdb", "tan", "Raft log store, fixed per data dir: tan (fastest; 64 MiB of disk per replica) or pebble (for thousands of partitions)")
	f.StringVar(&r.followerWrites, "follower-writes", raftlog.FollowerForward, "a write at a node with a follower replica: forward (over HTTP to the leader's node) or propose (through Raft to the leader; experimental, docs/benchmarks.md)")
	f.DurationVar(&r.tick, "raft-tick", 10*time.Millisecond, "Raft clock tick, 1ms to 1s: every replica is stepped once per tick, so a longer one costs less CPU with many partitions; the heartbeat stays 50 ms and the election timeout 1 s, or at least 1 and 3 ticks (docs/cluster.md)")
	f.BoolVar(&r.quiesce, "quiesce", false, "idle partitions stop ticking and heartbeating until traffic reaches them (for many partitions; docs/cluster.md)")
	f.IntVar(&r.proposalsInFlight, "proposals-in-flight", 0, "produce proposals in flight per partition; produces arriving while all are busy share the next one (group commit). 0: the default (1), -1: every produce its own proposal")
}

func (r *serveReplication) raft(tiered raftlog.TieredConfig) raftlog.Config {
	return raftlog.Config{MetaVoters: r.metaVoters, LogDB: r.logDB, FollowerWrites: r.followerWrites, Quiesce: r.quiesce,
		RTTMillisecond: uint64(r.tick.Milliseconds()), Tiered: tiered}
}

// testFaultFlags are test-only flags (docs/guarantees.md, "Analysis"): a
// fault-control listener for the chaos harness. Hidden; refused with
// --auth or off loopback.
func testFaultFlags(f *pflag.FlagSet, faults *server.TestFaultsConfig) {
	f.StringVar(&faults.Addr, "test-faults", "", "TEST ONLY: loopback address of the fault-control listener (disk, clock, power loss)")
	f.StringVar(&faults.Storage, "test-faults-storage", "mem", "TEST ONLY: mem (data in memory, lost with the process) or disk")
	f.MarkHidden("test-faults")
	f.MarkHidden("test-faults-storage")
}

// servePprof serves Go's net/http/pprof on addr until the process ends.
func servePprof(addr string, logger *slog.Logger) {
	logger.Info("pprof listening", "addr", addr)
	if err := http.ListenAndServe(addr, nil); err != nil {
		logger.Error("pprof", "err", err)
	}
}

// newServeLogger is the node's logger at level (debug, info, warn or
// error), made the default; records made with a context carry its
// trace_id and span_id.
func newServeLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(telemetry.NewLogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})))
	slog.SetDefault(logger)
	return logger, nil
}

// serveUntilSignal logs when s is ready (or not within 30 s), then serves
// until SIGINT or SIGTERM and closes it with closeNode, letting in-flight requests finish
// for up to 15 s.
func serveUntilSignal(s *server.Server, closeNode func(context.Context) error, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := s.WaitReady(ctx); err != nil {
		logger.Warn("node is not ready yet (waiting for the metadata leader)", "err", err)
	} else {
		logger.Info("ready", "url", s.URL())
	}
	cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	logger.Info("shutting down: finishing in-flight requests")
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return closeNode(ctx)
}

// startNode starts the node, in the test-fault mode when tf.Addr is set,
// and returns what stops it.
func startNode(cfg server.Config, tf server.TestFaultsConfig) (*server.Server, func(context.Context) error, error) {
	if tf.Addr == "" {
		s, err := server.Start(cfg)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	f, err := server.StartTestFaults(cfg, tf)
	if err != nil {
		return nil, nil, err
	}
	return f.Server(), f.Close, nil
}

// parsePeers parses "1=host:port,2=host:port".
func parsePeers(s string) (map[uint64]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || n == 0 || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not ID=HOST:PORT", part)
		}
		out[n] = addr
	}
	return out, nil
}
