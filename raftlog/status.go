package raftlog

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
)

var _ core.Cluster = (*Host)(nil)

// nodeView is a node's NodeStatus as this node last fetched it.
type nodeView struct {
	at      time.Time
	byShard map[uint64]core.ReplicaStatus
}

const viewMaxAge = time.Second

// LocalNode implements core.Cluster.
func (h *Host) LocalNode() uint64 { return h.cfg.NodeID }

// shardNodes maps every shard to its replica id → node id (all roles) and
// its topic and partition.
type shardPlace struct {
	topic string
	idx   int
	nodes map[uint64]uint64
}

func (h *Host) shardPlaces() map[uint64]shardPlace {
	out := map[uint64]shardPlace{}
	h.meta.read(func(st *metaState) {
		st.eachPartition(func(topic string, idx int, p *PartitionMeta) {
			nodes := map[uint64]uint64{}
			for _, m := range []map[uint64]uint64{p.initial(), p.Replicas, p.members(), p.Learners} {
				for r, n := range m {
					nodes[r] = n
				}
			}
			out[p.ShardID] = shardPlace{topic: topic, idx: idx, nodes: nodes}
		})
	})
	return out
}

// metaLeader is the node leading the metadata shard (its replica id is the
// node id), 0 unknown.
func (h *Host) metaLeader() uint64 {
	lid, _, ok, err := h.nh.GetLeaderID(metaShardID)
	if err != nil || !ok {
		return 0
	}
	return lid
}

// MetaLeader is the node leading the metadata shard, 0 when unknown.
func (h *Host) MetaLeader() uint64 { return h.metaLeader() }

// LocalStatus implements core.Cluster.
func (h *Host) LocalStatus() core.NodeStatus {
	places := h.shardPlaces()
	h.mu.Lock()
	parts := make(map[uint64]*partitionSM, len(h.parts))
	for id, psm := range h.parts {
		parts[id] = psm
	}
	h.mu.Unlock()
	st := core.NodeStatus{Node: h.cfg.NodeID, MetaLeader: h.metaLeader(), Replicas: []core.ReplicaStatus{}}
	for shard, psm := range parts {
		rs := core.ReplicaStatus{Shard: shard, Replica: psm.replicaID, Role: roleVoter,
			HighWatermark: psm.hwm.Load(), LogStart: psm.logStart.Load(),
			LocalStart: psm.localStart.Load(), RemoteEnd: psm.remoteEnd.Load()}
		if h.roles.nonVoting(shard) {
			rs.Role = roleNonVoting
		}
		pl, ok := places[shard]
		if ok {
			rs.Topic, rs.Partition = pl.topic, pl.idx
		}
		if lid, term, ok2, err := h.nh.GetLeaderID(shard); err == nil && ok2 {
			rs.Leader, rs.Term, rs.IsLeader = pl.nodes[lid], term, lid == psm.replicaID
		}
		st.Replicas = append(st.Replicas, rs)
	}
	sort.Slice(st.Replicas, func(i, j int) bool {
		a, b := st.Replicas[i], st.Replicas[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.HeapBytes = ms.HeapAlloc
	return st
}

// view returns a node's status, fetched at most once a second.
func (h *Host) view(node uint64) *nodeView {
	h.mu.Lock()
	v := h.views[node]
	h.mu.Unlock()
	if v != nil && time.Since(v.at) < viewMaxAge {
		return v
	}
	addr := h.httpAddr(node)
	if addr == "" || h.cfg.Forwarder == nil || !h.alive(node) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	st, err := h.cfg.Forwarder.NodeStatus(ctx, addr)
	if err != nil {
		return nil
	}
	return h.storeView(st)
}

func (h *Host) storeView(st core.NodeStatus) *nodeView {
	v := &nodeView{at: time.Now(), byShard: make(map[uint64]core.ReplicaStatus, len(st.Replicas))}
	for _, r := range st.Replicas {
		v.byShard[r.Shard] = r
	}
	h.mu.Lock()
	h.views[st.Node] = v
	h.mu.Unlock()
	return v
}

// remotePartitionInfo fills leader and offsets of a partition not hosted
// here from its nodes' status.
func (h *Host) remotePartitionInfo(pm *PartitionMeta, pi *core.PartitionInfo) {
	var best *core.ReplicaStatus
	for _, n := range h.candidates(pm) {
		v := h.view(n)
		if v == nil {
			continue
		}
		rs, ok := v.byShard[pm.ShardID]
		if !ok {
			continue
		}
		if rs.IsLeader {
			pi.Leader, pi.LogStart, pi.HighWatermark = n, rs.LogStart, rs.HighWatermark
			pi.LocalStart, pi.RemoteEnd = rs.LocalStart, rs.RemoteEnd
			return
		}
		if best == nil || rs.HighWatermark > best.HighWatermark {
			c := rs
			best = &c
		}
	}
	if best != nil {
		pi.Leader, pi.LogStart, pi.HighWatermark = best.Leader, best.LogStart, best.HighWatermark
		pi.LocalStart, pi.RemoteEnd = best.LocalStart, best.RemoteEnd
	}
}

// Status implements core.Cluster.
func (h *Host) Status(ctx context.Context, withPartitions bool) (*core.ClusterStatus, error) {
	nodes, parts := h.statusSnapshot()
	statuses := h.nodeStatuses(ctx, nodes)
	out := &core.ClusterStatus{Node: h.cfg.NodeID, MetaLeader: h.metaLeader(), Lagging: []core.LaggingReplica{}}
	byNode, up := addStatusNodes(out, nodes, statuses, parts)
	for i := range parts {
		addStatusPartition(out, &parts[i], byNode, up, withPartitions)
	}
	return out, nil
}

// statusPartition is a partition's placement as Status reads it.
type statusPartition struct {
	topic string
	idx   int
	pm    PartitionMeta
}

// statusSnapshot copies the nodes (by id) and partitions' placements out
// of the metadata.
func (h *Host) statusSnapshot() ([]NodeInfo, []statusPartition) {
	var nodes []NodeInfo
	var parts []statusPartition
	h.meta.read(func(st *metaState) {
		for _, n := range st.Nodes {
			nodes = append(nodes, *n)
		}
		st.eachPartition(func(topic string, idx int, p *PartitionMeta) {
			cp := *p
			cp.Replicas, cp.Members, cp.Learners = cloneMap(p.Replicas), cloneMap(p.members()), cloneMap(p.Learners)
			parts = append(parts, statusPartition{topic, idx, cp})
		})
	})
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, parts
}

// nodeStatuses asks every node for its view, in parallel (2 s each): nil
// for a node removed, unreachable or without an HTTP address.
func (h *Host) nodeStatuses(ctx context.Context, nodes []NodeInfo) []*core.NodeStatus {
	statuses := make([]*core.NodeStatus, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n.State == nodeRemoved {
			continue
		}
		if n.ID == h.cfg.NodeID {
			st := h.LocalStatus()
			statuses[i] = &st
			continue
		}
		if n.HTTPAddr == "" || h.cfg.Forwarder == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			st, err := h.cfg.Forwarder.NodeStatus(sctx, n.HTTPAddr)
			if err == nil {
				statuses[i] = &st
				h.storeView(st)
			}
		}()
	}
	wg.Wait()
	return statuses
}

// replicaViews are the replicas each node reported: node → shard → replica.
type replicaViews map[uint64]map[uint64]core.ReplicaStatus

// addStatusNodes adds the nodes to out with their health, roles and
// replica counts, and returns the replicas each node that answered
// reported and which nodes did.
func addStatusNodes(out *core.ClusterStatus, nodes []NodeInfo, statuses []*core.NodeStatus, parts []statusPartition) (replicaViews, map[uint64]bool) {
	byNode := replicaViews{}
	up := map[uint64]bool{}
	placed := map[uint64]int{}
	for _, p := range parts {
		for _, n := range p.pm.Replicas {
			placed[n]++
		}
	}
	for i, n := range nodes {
		cn := core.ClusterNode{ID: n.ID, HTTPAddr: n.HTTPAddr, RaftAddr: n.RaftAddr, State: n.State, Health: "down", MetaRole: n.MetaRole, Placed: placed[n.ID]}
		if cn.State == nodeActive {
			cn.State = "active"
		}
		if cn.MetaRole == "" {
			cn.MetaRole = "none"
		}
		if st := statuses[i]; st != nil {
			cn.Health = "up"
			up[n.ID] = true
			cn.Replicas = len(st.Replicas)
			cn.HeapBytes = st.HeapBytes
			m := make(map[uint64]core.ReplicaStatus, len(st.Replicas))
			for _, r := range st.Replicas {
				m[r.Shard] = r
				if r.IsLeader {
					cn.Leaders++
				}
			}
			byNode[n.ID] = m
		}
		if n.State == nodeRemoved {
			cn.Health = "removed"
		}
		out.Nodes = append(out.Nodes, cn)
	}
	return byNode, up
}

// addStatusPartition counts partition p in out (leaderless, moving), lists
// its replicas that lag or do not run, and adds it to out.PartitionsL when
// withPartitions.
func addStatusPartition(out *core.ClusterStatus, p *statusPartition, byNode replicaViews, up map[uint64]bool, withPartitions bool) {
	pm := &p.pm
	out.Partitions++
	cp := core.ClusterPartition{Topic: p.topic, Partition: p.idx, Shard: pm.ShardID, Preferred: pm.Preferred,
		Replicas: nodeList(pm.Replicas), Members: nodeList(pm.members()), Learners: nodeList(pm.Learners), Moving: pm.moving()}
	var leaderHWM int64 = -1
	for _, n := range pm.members() {
		if rs, ok := byNode[n][pm.ShardID]; ok && rs.IsLeader {
			cp.Leader, leaderHWM = n, rs.HighWatermark
		}
	}
	if cp.Leader == 0 {
		out.Leaderless++
	}
	if cp.Moving {
		out.Moving++
	}
	check := func(rid, n uint64, learner bool) {
		lr := core.LaggingReplica{Topic: p.topic, Partition: p.idx, Node: n, Replica: rid, Lag: -1}
		rs, ok := byNode[n][pm.ShardID]
		switch {
		case !up[n]:
			lr.Reason = "node down"
		case !ok:
			lr.Reason = "not running"
		case leaderHWM >= 0 && rs.HighWatermark < leaderHWM:
			lr.Lag, lr.Reason = leaderHWM-rs.HighWatermark, "behind the leader"
			if learner {
				lr.Reason = "catching up (learner)"
			}
		default:
			return
		}
		out.Lagging = append(out.Lagging, lr)
	}
	for _, rid := range sortedKeys(pm.members()) {
		check(rid, pm.members()[rid], false)
	}
	for _, rid := range sortedKeys(pm.Learners) {
		check(rid, pm.Learners[rid], true)
	}
	if withPartitions {
		out.PartitionsL = append(out.PartitionsL, cp)
	}
}

func nodeList(m map[uint64]uint64) []uint64 {
	out := make([]uint64, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Join implements core.Cluster: it records the node in the metadata and
// waits until the metadata leader has added it to the metadata shard as a
// non-voting member; the node then starts with raftlog.Config.Join.
func (h *Host) Join(ctx context.Context, req core.JoinRequest) error {
	if req.NodeID == 0 || req.RaftAddr == "" {
		return core.Invalidf("a joining node needs node_id ≥ 1 and raft_addr")
	}
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "join_node", Node: &NodeInfo{ID: req.NodeID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr}})
	if err != nil {
		return err
	}
	if res.Value != metaOK {
		return core.Invalidf("join refused: %s", res.Data)
	}
	h.kick()
	for {
		admitted := false
		h.meta.read(func(st *metaState) {
			if n := st.Nodes[req.NodeID]; n != nil && n.MetaRole != "" {
				admitted = true
			}
		})
		if admitted {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: node %d is recorded but the metadata leader has not admitted it yet; retry the join", core.ErrUnavailable, req.NodeID)
		case <-h.meta.changed():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RemoveNode implements core.Cluster: the metadata marks the node draining
// and moves each of its replicas to another node (new replica ids); the
// partition leaders carry the moves out, then the metadata leader drops the
// node's metadata replica and marks it removed. It returns once the moves
// are decided; GET /v1/cluster shows their progress.
func (h *Host) RemoveNode(ctx context.Context, id uint64) error {
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "remove_node", NodeID: id})
	if err != nil {
		return err
	}
	switch res.Value {
	case metaOK:
		h.kick()
		return nil
	case metaNotFound:
		return core.Invalidf("node %d is not a member of the cluster", id)
	default:
		return core.Invalidf("%s", res.Data)
	}
}

// Rebalance implements core.Cluster.
func (h *Host) Rebalance(ctx context.Context) (int, error) {
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "rebalance"})
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(string(res.Data))
	h.kick()
	return n, nil
}
