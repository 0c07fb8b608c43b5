package core

import (
	"context"
	"fmt"
)

// A cluster of Weir nodes: any node serves any request. A Store that spans
// several nodes (raftlog.Host) implements Cluster; it reaches the other nodes
// through a Forwarder, which internal/peer implements over HTTP. The Broker and
// the rest of the domain see neither: Store.Partition returns a PartitionLog
// for every partition of the cluster, and its writes go to the partition's
// leader wherever it runs.

// Route names one partition on one node for a forwarded call.
type Route struct {
	Node      uint64 // target node id
	Addr      string // its HTTP address (host:port)
	Topic     string
	Partition int
	// Hops is how many nodes the call has crossed when it arrives at Node
	// (1 for a call from the node that took the client's request). A node
	// forwards a call onwards only while Hops is below a small limit, so a
	// call never loops.
	Hops int
}

// ReadRequest is a forwarded read of a partition's log.
type ReadRequest struct {
	From       int64
	MaxRecords int
	MaxBytes   int
	// Timestamp ≥ 0 asks for OffsetForTime(Timestamp) instead of records.
	Timestamp int64
}

// ReadResult is the answer to a ReadRequest, from the serving replica.
type ReadResult struct {
	Records       []Record
	Offset        int64 // OffsetForTime's answer when Timestamp was asked
	HighWatermark int64
	LogStart      int64
}

// Forwarder carries partition calls and status queries to other nodes. It is
// safe for concurrent use. Errors: ErrNotLeader (or *NotLeaderError) when
// the call was certainly not applied there and may be retried elsewhere
// (including a node that could not be reached at all); the domain errors of
// the call itself; anything else means the outcome is unknown.
type Forwarder interface {
	Append(ctx context.Context, to Route, b *AppendBatch) (AppendResult, error)
	ApplyTxn(ctx context.Context, to Route, txn *StateTxn) (TxnResult, error)
	TrimTo(ctx context.Context, to Route, offset int64) error
	Read(ctx context.Context, to Route, req ReadRequest) (ReadResult, error)
	// State returns the partition state's keys with prefix (exactly key
	// when exact is set) from the serving replica.
	State(ctx context.Context, to Route, prefix string, exact bool) (map[string][]byte, error)
	// NodeStatus asks a node (by HTTP address) for its local view.
	NodeStatus(ctx context.Context, addr string) (NodeStatus, error)
	// Ping checks that a node (by HTTP address) answers.
	Ping(ctx context.Context, addr string) error
}

// NotLeaderError says a node did not apply a forwarded call because it does
// not lead (or no longer hosts) the partition. Leader is a hint: the node it
// believes leads, 0 when unknown. It wraps ErrNotLeader.
type NotLeaderError struct {
	Leader uint64
	Msg    string
}

func (e *NotLeaderError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("not the leader (leader hint: node %d)", e.Leader)
}
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// ReplicaStatus is one replica as the node hosting it sees it.
type ReplicaStatus struct {
	Topic         string `json:"topic"`
	Partition     int    `json:"partition"`
	Shard         uint64 `json:"shard"`
	Replica       uint64 `json:"replica"`
	Role          string `json:"role"`   // voter or non_voting
	Leader        uint64 `json:"leader"` // node id of the leader this replica knows, 0 none
	IsLeader      bool   `json:"is_leader"`
	Term          uint64 `json:"term"`
	HighWatermark int64  `json:"high_watermark"`
	LogStart      int64  `json:"log_start_offset"`
	// Tiered storage: first offset on this replica's disk, one past the
	// last offset in object storage (0: none).
	LocalStart int64 `json:"local_start_offset"`
	RemoteEnd  int64 `json:"remote_end_offset"`
}

// NodeStatus is one node's local view: what it hosts and leads.
type NodeStatus struct {
	Node       uint64          `json:"node"`
	MetaLeader uint64          `json:"meta_leader"` // node id, 0 unknown
	Replicas   []ReplicaStatus `json:"replicas"`
	HeapBytes  uint64          `json:"heap_bytes"`
}

// ClusterNode is one node in a ClusterStatus.
type ClusterNode struct {
	ID       uint64 `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	State    string `json:"state"`     // active, draining, removed
	Health   string `json:"health"`    // up, down
	MetaRole string `json:"meta_role"` // voter, non_voting, none
	Replicas int    `json:"replicas"`  // partition replicas it hosts (reported by the node)
	Leaders  int    `json:"leaders"`   // partitions it leads
	// Placed is the number of partition replicas the metadata assigns it.
	Placed    int    `json:"placed"`
	HeapBytes uint64 `json:"heap_bytes,omitempty"`
}

// LaggingReplica is a replica behind its leader, not running, or on a down node.
type LaggingReplica struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Node      uint64 `json:"node"`
	Replica   uint64 `json:"replica"`
	Lag       int64  `json:"lag"` // records behind the leader; -1 unknown (down or not running)
	Reason    string `json:"reason"`
}

// ClusterPartition is one partition's placement and state.
type ClusterPartition struct {
	Topic     string   `json:"topic"`
	Partition int      `json:"partition"`
	Shard     uint64   `json:"shard"`
	Leader    uint64   `json:"leader"`    // node id, 0 none known
	Preferred uint64   `json:"preferred"` // preferred leader node
	Replicas  []uint64 `json:"replicas"`  // target nodes
	Members   []uint64 `json:"members"`   // voting nodes in Raft now
	Learners  []uint64 `json:"learners,omitempty"`
	Moving    bool     `json:"moving"`
}

// ClusterStatus is the whole cluster as one node assembles it
// (GET /v1/cluster).
type ClusterStatus struct {
	Node        uint64             `json:"node"`        // the node that answered
	MetaLeader  uint64             `json:"meta_leader"` // node id, 0 unknown
	Nodes       []ClusterNode      `json:"nodes"`
	Partitions  int                `json:"partitions"`
	Leaderless  int                `json:"leaderless"`
	Moving      int                `json:"moving"`
	Lagging     []LaggingReplica   `json:"lagging"`
	PartitionsL []ClusterPartition `json:"partition_list,omitempty"`
}

// JoinRequest asks a running cluster to admit a new node.
type JoinRequest struct {
	NodeID   uint64 `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Cluster is implemented by stores that span several nodes. The gateway uses
// it to serve cluster endpoints, internal/peer to serve calls forwarded from
// other nodes.
type Cluster interface {
	// LocalNode is this node's id.
	LocalNode() uint64
	// FetchRoute says where a fetch of the partition at offset (-1: not a
	// fixed offset) should be served: nil for here, else another node.
	FetchRoute(topic string, partition int, offset int64) (*Route, error)
	// ForwardedPartition returns the partition for a call that crossed hops
	// nodes; it serves from the local replica and forwards writes only
	// while hops is below the limit.
	ForwardedPartition(topic string, partition, hops int) (PartitionLog, error)
	// HostsReplica reports whether this node has an open replica of the
	// partition (reads forwarded here are served from it).
	HostsReplica(topic string, partition int) bool
	// LocalStatus is this node's view for NodeStatus.
	LocalStatus() NodeStatus
	// Status assembles the cluster's status; withPartitions adds every
	// partition's placement.
	Status(ctx context.Context, withPartitions bool) (*ClusterStatus, error)
	// Join admits a node (idempotent for the same id and addresses).
	Join(ctx context.Context, req JoinRequest) error
	// RemoveNode moves every replica off a node, then removes it for good.
	RemoveNode(ctx context.Context, id uint64) error
	// Rebalance spreads replicas and preferred leaders evenly over the
	// active nodes; it returns how many replicas will move.
	Rebalance(ctx context.Context) (int, error)
}
