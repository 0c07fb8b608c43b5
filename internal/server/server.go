// Package server assembles one Weir node: the Raft store (raftlog), the
// domain (core) and the HTTP gateway. cmd/weir and the integration tests
// start nodes through it, so both run exactly the same wiring.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
	"github.com/weir-broker/weir/raftlog"
)

// Config is one node's configuration; cmd/weir fills it from flags.
type Config struct {
	NodeID   uint64
	DataDir  string
	HTTPAddr string // listen address; port 0 picks a free port
	RaftAddr string
	Peers    map[uint64]string // initial cluster members (node id → Raft address)

	Raft    raftlog.Config    // advanced Raft settings; identity fields above win
	Broker  core.BrokerConfig // domain limits and retention interval
	Gateway gateway.Config    // HTTP limits
	Logger  *slog.Logger
}

// Server is a running node.
type Server struct {
	Host    *raftlog.Host
	Broker  *core.Broker
	Gateway *gateway.Server

	ln       net.Listener
	cancel   context.CancelFunc
	serveErr chan error
	log      *slog.Logger
}

// Start opens the data directory, joins or forms the Raft cluster and
// starts serving HTTP.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	rc := cfg.Raft
	rc.NodeID, rc.DataDir, rc.RaftAddr, rc.Peers = cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Peers
	rc.HTTPAddr = ln.Addr().String()
	rc.Logger = cfg.Logger
	host, err := raftlog.New(rc)
	if err != nil {
		ln.Close()
		return nil, err
	}
	bc := cfg.Broker
	bc.Logger = cfg.Logger
	broker := core.NewBroker(host, bc)
	gc := cfg.Gateway
	gc.Logger = cfg.Logger
	gw := gateway.New(broker, gc)

	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Host: host, Broker: broker, Gateway: gw, ln: ln, cancel: cancel, serveErr: make(chan error, 1), log: cfg.Logger}
	go broker.RunRetention(ctx)
	go func() { s.serveErr <- gw.Serve(ln) }()
	return s, nil
}

// Addr is the HTTP address the node serves on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the node's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

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

// Close stops accepting requests, lets in-flight ones finish (until ctx
// ends), then stops Raft.
func (s *Server) Close(ctx context.Context) error {
	err := s.Gateway.Shutdown(ctx)
	s.cancel()
	if herr := s.Host.Close(); err == nil {
		err = herr
	}
	return err
}
