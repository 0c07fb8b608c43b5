package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// ClusterNode is one node of the cluster.
type ClusterNode struct {
	ID        uint64 `json:"id"`
	HTTPAddr  string `json:"http_addr"`
	RaftAddr  string `json:"raft_addr"`
	State     string `json:"state"`     // active, draining, removed
	Health    string `json:"health"`    // up, down
	MetaRole  string `json:"meta_role"` // voter, non_voting, none
	Replicas  int    `json:"replicas"`
	Leaders   int    `json:"leaders"`
	Placed    int    `json:"placed"`
	HeapBytes uint64 `json:"heap_bytes,omitempty"`
}

// LaggingReplica is a replica behind its leader, not running, or down.
type LaggingReplica struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Node      uint64 `json:"node"`
	Replica   uint64 `json:"replica"`
	Lag       int64  `json:"lag"` // -1: unknown
	Reason    string `json:"reason"`
}

// ClusterPartition is one partition's placement.
type ClusterPartition struct {
	Topic     string   `json:"topic"`
	Partition int      `json:"partition"`
	Shard     uint64   `json:"shard"`
	Leader    uint64   `json:"leader"`
	Preferred uint64   `json:"preferred"`
	Replicas  []uint64 `json:"replicas"`
	Members   []uint64 `json:"members"`
	Learners  []uint64 `json:"learners,omitempty"`
	Moving    bool     `json:"moving"`
}

// ClusterStatus is the cluster as the answering node sees it.
type ClusterStatus struct {
	Node          uint64             `json:"node"`
	MetaLeader    uint64             `json:"meta_leader"`
	Nodes         []ClusterNode      `json:"nodes"`
	Partitions    int                `json:"partitions"`
	Leaderless    int                `json:"leaderless"`
	Moving        int                `json:"moving"`
	Lagging       []LaggingReplica   `json:"lagging"`
	PartitionList []ClusterPartition `json:"partition_list,omitempty"`
}

// Cluster returns the cluster's nodes, health and leaders; with
// partitions, every partition's placement too.
func (c *Client) Cluster(ctx context.Context, partitions bool) (*ClusterStatus, error) {
	q := ""
	if partitions {
		q = "?partitions=true"
	}
	var st ClusterStatus
	if err := c.call(ctx, "GET", "/v1/cluster"+q, nil, &st, true); err != nil {
		return nil, err
	}
	return &st, nil
}

// Rebalance spreads replicas and leaders evenly and returns how many
// replicas will move.
func (c *Client) Rebalance(ctx context.Context) (int, error) {
	var out struct {
		Moves int `json:"moves"`
	}
	return out.Moves, c.call(ctx, "POST", "/v1/cluster/rebalance", nil, &out, false)
}

// RemoveNode starts moving every replica off node id, after which the
// node is removed from the cluster.
func (c *Client) RemoveNode(ctx context.Context, id uint64) error {
	return c.call(ctx, "POST", fmt.Sprintf("/v1/cluster/nodes/%d/remove", id), nil, nil, true)
}

// JoinCluster asks the cluster to admit a new node (what `weir serve
// --join` does before it starts; needs cluster:alter, or the cluster
// secret). Not retried on 503.
func (c *Client) JoinCluster(ctx context.Context, nodeID uint64, raftAddr, httpAddr string) error {
	body := map[string]any{"node_id": nodeID, "raft_addr": raftAddr, "http_addr": httpAddr}
	return c.call(ctx, "POST", "/v1/cluster/join", body, nil, false)
}

// Stats returns GET /v1/stats (throughput, lag, pipeline progress: the
// dashboard's source) as JSON.
func (c *Client) Stats(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	return raw, c.call(ctx, "GET", "/v1/stats", nil, &raw, true)
}

// Ready reports whether the node can take writes (GET /readyz): nil when
// ready, an *Error (503) when not. Not retried.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, request{method: "GET", path: "/readyz"})
	return err
}
