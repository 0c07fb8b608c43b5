package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/internal/peer"
	"github.com/weir-broker/weir/raftlog"
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
	body, _ := json.Marshal(req)
	var last error
	scheme := "http://"
	if fc.TLS != nil {
		scheme = "https://"
	}
	for {
		status, resp, err := postJSON(ctx, scheme+addr+"/v1/cluster/join", body, fc)
		switch {
		case err == nil && status == 200:
			return nil
		case err == nil && status >= 400 && status < 500:
			return fmt.Errorf("refused: %s", resp)
		case err != nil:
			last = err
		default:
			last = fmt.Errorf("HTTP %d: %s", status, resp)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

func postJSON(ctx context.Context, url string, body []byte, fc peer.ForwarderConfig) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if fc.Secret != "" {
		req.Header.Set(auth.NodeSecretHeader, fc.Secret)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: fc.TLS}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}
