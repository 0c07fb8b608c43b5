package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/internal/peer"
	"github.com/weir-broker/weir/raftlog"
	"github.com/weir-broker/weir/sdk/client"
)

// joinTimeout bounds how long a new node keeps asking a running cluster to
// admit it.
const joinTimeout = 2 * time.Minute

// prepareCluster gives the Raft store its node-to-node client and, for a
// node started with Join that has no Raft state yet, asks the running
// cluster to admit it first (a restarted node already is a member).
func prepareCluster(cfg Config, rc *raftlog.Config) (*peer.Forwarder, error) {
	fc, err := cfg.Security.forwarderConfig() // security.go
	if err != nil {
		return nil, err
	}
	fwd := peer.NewForwarder(fc)
	rc.Forwarder = fwd
	if cfg.Join == "" {
		return fwd, nil
	}
	rc.Join = true
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft")); err == nil {
		return fwd, nil // already joined: restart from local state
	}
	req := core.JoinRequest{NodeID: cfg.NodeID, RaftAddr: cfg.RaftAddr, HTTPAddr: rc.HTTPAddr}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	if err := join(ctx, cfg.Join, req, fc); err != nil {
		return nil, fmt.Errorf("join the cluster at %s: %w", cfg.Join, err)
	}
	cfg.Logger.Info("admitted to the cluster", "via", cfg.Join, "node", cfg.NodeID)
	return fwd, nil
}

// join posts the join request until the cluster admits the node, refuses
// it, or ctx ends.
func join(ctx context.Context, addr string, req core.JoinRequest, fc peer.ForwarderConfig) error {
	scheme := "http://"
	if fc.TLS != nil {
		scheme = "https://"
	}
	opts := []client.Option{client.WithTLSConfig(fc.TLS), client.WithRetries(0)} // the loop below retries
	if fc.Secret != "" {
		opts = append(opts, client.WithHeader(auth.NodeSecretHeader, fc.Secret))
	}
	c, err := client.New(scheme+addr, opts...)
	if err != nil {
		return err
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.JoinCluster(cctx, req.NodeID, req.RaftAddr, req.HTTPAddr)
		cancel()
		var e *client.Error
		switch {
		case err == nil:
			return nil
		case errors.As(err, &e) && e.Status >= 400 && e.Status < 500:
			return fmt.Errorf("refused: %w", err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}
