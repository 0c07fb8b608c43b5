package raftlog

import (
	"context"
	"sort"
	"time"

	"github.com/lni/dragonboat/v4"
)

// The cluster is reconciled like a Kubernetes controller: the metadata holds
// the desired state (placement decided inside the metadata state machine, see
// placement.go) and each node acts on what it can see:
//
//   - every node starts and stops the replicas placed on it (host.go);
//   - the leader of each partition shard carries out that partition's
//     membership changes one at a time: add a new replica as a non-voting
//     learner, promote it once its node reports it caught up, then delete
//     the replica it replaces (Dragonboat allows one change at a time, each
//     with the ConfigChangeID of the membership it read);
//   - the metadata leader manages the metadata shard's own membership
//     (joining nodes, voter count) and finishes node removals;
//   - every leader hands leadership to the partition's preferred node when
//     that node is up, which spreads leaders evenly.

const (
	maxTasks          = 8               // membership tasks in flight per node
	balanceEvery      = 2 * time.Second // leader balancing pass
	leaderSettle      = 3 * time.Second // a new leader keeps leading this long before a transfer
	transferCooldown  = 10 * time.Second
	transfersPerPass  = 32
	configChangeLimit = 5 * time.Second // one membership change
)

// partitionView is a copy of one partition's metadata for the control loop.
type partitionView struct {
	pm    PartitionMeta
	addrs map[uint64]string // node id → Raft address
}

// control runs one pass of the control duties that apply to this node.
func (h *Host) control() {
	if h.stopping() {
		return
	}
	h.notePromotions()
	self := h.cfg.NodeID
	var views []partitionView
	h.meta.read(func(st *metaState) {
		addrs := map[uint64]string{}
		for id, n := range st.Nodes {
			addrs[id] = n.RaftAddr
		}
		st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
			if !p.moving() && p.Preferred == self {
				return // nothing to do here unless this node leads it
			}
			cp := *p
			cp.Replicas, cp.Members, cp.Learners = cloneMap(p.Replicas), cloneMap(p.members()), cloneMap(p.Learners)
			cp.CaughtUp = append([]uint64(nil), p.CaughtUp...)
			views = append(views, partitionView{pm: cp, addrs: addrs})
		})
	})
	h.mu.Lock()
	local := make(map[uint64]uint64, len(h.parts)) // shard → local replica id
	for id, psm := range h.parts {
		local[id] = psm.replicaID
	}
	h.mu.Unlock()
	for i := range views {
		v := &views[i]
		rid, ok := local[v.pm.ShardID]
		if !ok || !v.pm.moving() {
			continue
		}
		if _, learner := v.pm.Learners[rid]; learner && !v.pm.caughtUp(rid) {
			h.task(v.pm.ShardID, func(ctx context.Context) { h.watchCatchUp(ctx, v.pm.ShardID, rid) })
			continue
		}
		if lid, _, ok, err := h.nh.GetLeaderID(v.pm.ShardID); err == nil && ok && lid == rid {
			h.task(v.pm.ShardID, func(ctx context.Context) { h.stepPartition(ctx, v, rid) })
		}
	}
	h.balanceLeaders(views, local)
	if lid, _, ok, err := h.nh.GetLeaderID(metaShardID); err == nil && ok && lid == self {
		h.task(metaShardID, h.controlMeta)
	}
}

// task runs f on its own goroutine unless a task for key is in flight or
// too many are. Host.Close waits for it.
func (h *Host) task(key uint64, f func(ctx context.Context)) {
	h.mu.Lock()
	if h.busy[key] || len(h.busy) >= maxTasks || h.stopping() {
		h.mu.Unlock()
		return
	}
	h.busy[key] = true
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-h.stopC:
				cancel()
			case <-ctx.Done():
			}
		}()
		f(ctx)
		cancel()
		h.mu.Lock()
		delete(h.busy, key)
		h.mu.Unlock()
		// A partition move goes on at once with its next step. The metadata
		// task runs on every pass of the metadata leader and kicks by
		// itself when it changed something: waking the loop after it would
		// spin an idle node (measured: 45% of a core).
		if key != metaShardID {
			h.kick()
		}
	}()
}

// notePromotions clears the learner mark of replicas Dragonboat has
// promoted, so that a restart starts them as voters.
func (h *Host) notePromotions() {
	pending := h.roles.learners()
	if len(pending) == 0 {
		return
	}
	info := h.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	for _, si := range info.ShardInfoList {
		for _, s := range pending {
			if si.ShardID == s && !si.IsNonVoting && !si.Pending {
				if _, voter := si.Replicas[si.ReplicaID]; voter {
					h.roles.clear(s)
				}
			}
		}
	}
}

// watchCatchUp waits until a learner answers a linearizable read (it has
// applied everything its leader had committed, Dragonboat's test for a
// caught-up replica, #357), then reports it so the leader promotes it.
func (h *Host) watchCatchUp(ctx context.Context, shard, rid uint64) {
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := h.nh.SyncRead(rctx, shard, nil)
		cancel()
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = h.proposeMeta(pctx, &metaCmd{Op: "caught_up", Shard: shard, Replica: rid})
			cancel()
			if err == nil {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stepPartition makes one membership change of a moving partition; this
// node's replica (rid) leads it.
func (h *Host) stepPartition(ctx context.Context, v *partitionView, rid uint64) {
	pm, shard := &v.pm, v.pm.ShardID
	ctx, cancel := context.WithTimeout(ctx, 3*configChangeLimit)
	defer cancel()
	m, err := h.membership(ctx, shard)
	if err != nil {
		return
	}
	defer func() {
		if m2, err := h.membership(ctx, shard); err == nil {
			h.reportMembers(ctx, pm, m2)
		}
	}()
	cc := m.ConfigChangeID
	change := func(what string, f func(ctx context.Context) error) {
		cctx, cancel := context.WithTimeout(ctx, configChangeLimit)
		defer cancel()
		if err := f(cctx); err != nil {
			h.log.Debug("membership change", "shard", shard, "change", what, "err", err)
		} else {
			h.log.Info("membership change", "shard", shard, "change", what)
		}
	}
	// 1. Add every new target replica as a learner.
	for _, r := range sortedKeys(pm.Replicas) {
		_, voter := m.Nodes[r]
		_, learner := m.NonVotings[r]
		_, removed := m.Removed[r]
		if voter || learner || removed {
			continue
		}
		addr := v.addrs[pm.Replicas[r]]
		change("add learner", func(ctx context.Context) error {
			return h.nh.SyncRequestAddNonVoting(ctx, shard, r, addr, cc)
		})
		return
	}
	// 2. Promote the learners their nodes reported caught up.
	for _, r := range sortedKeys(pm.Replicas) {
		if _, learner := m.NonVotings[r]; learner && pm.caughtUp(r) {
			addr := v.addrs[pm.Replicas[r]]
			change("promote", func(ctx context.Context) error {
				return h.nh.SyncRequestAddReplica(ctx, shard, r, addr, cc)
			})
			return
		}
	}
	// 3. Once every target replica votes, delete the replaced voters.
	if h.dropReplacedVoter(pm, m, rid, change) {
		return
	}
	// 4. Delete learners no longer wanted.
	for _, r := range sortedKeys(m.NonVotings) {
		if _, keep := pm.Replicas[r]; !keep {
			change("delete learner", func(ctx context.Context) error {
				return h.nh.SyncRequestDeleteReplica(ctx, shard, r, cc)
			})
			return
		}
	}
}

// dropReplacedVoter is step 3 of stepPartition: once every target replica
// of pm votes, it deletes one voter that is not a target (or, when that is
// the leader itself, rid, hands leadership to a target voter). It reports
// whether the pass ends here.
func (h *Host) dropReplacedVoter(pm *PartitionMeta, m *dragonboat.Membership, rid uint64, change func(string, func(context.Context) error)) bool {
	for r := range pm.Replicas {
		if _, voter := m.Nodes[r]; !voter {
			return true
		}
	}
	for _, r := range sortedKeys(m.Nodes) {
		if _, keep := pm.Replicas[r]; keep {
			continue
		}
		if r == rid {
			// The leader itself goes: hand leadership to a target voter.
			to := uint64(0)
			for t, n := range pm.Replicas {
				if to == 0 || n == pm.Preferred {
					to = t
				}
			}
			if to != 0 {
				_ = h.nh.RequestLeaderTransfer(pm.ShardID, to)
			}
			return true
		}
		change("delete voter", func(ctx context.Context) error {
			return h.nh.SyncRequestDeleteReplica(ctx, pm.ShardID, r, m.ConfigChangeID)
		})
		return true
	}
	return false
}

func (h *Host) membership(ctx context.Context, shard uint64) (*dragonboat.Membership, error) {
	mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return h.nh.SyncGetShardMembership(mctx, shard)
}

// reportMembers records the shard's Raft membership in the metadata when it
// differs from what the metadata has.
func (h *Host) reportMembers(ctx context.Context, pm *PartitionMeta, m *dragonboat.Membership) {
	members, learners := map[uint64]uint64{}, map[uint64]uint64{}
	for r := range m.Nodes {
		if n, ok := pm.nodeOf(r); ok {
			members[r] = n
		}
	}
	for r := range m.NonVotings {
		if n, ok := pm.nodeOf(r); ok {
			learners[r] = n
		}
	}
	if sameKeys(members, pm.members()) && sameKeys(learners, pm.Learners) {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := h.proposeMeta(pctx, &metaCmd{Op: "partition_members", Shard: pm.ShardID, Members: members, Learners: learners}); err != nil {
		h.log.Debug("report membership", "shard", pm.ShardID, "err", err)
	}
}

// balanceLeaders asks this node's leaders to hand over to the partition's
// preferred node when that node is up and holds a voting replica.
func (h *Host) balanceLeaders(views []partitionView, local map[uint64]uint64) {
	self := h.cfg.NodeID
	now := time.Now()
	h.mu.Lock()
	last := h.moved[0] // key 0: time of the last pass
	if now.Sub(last) < balanceEvery {
		h.mu.Unlock()
		return
	}
	h.moved[0] = now
	h.mu.Unlock()
	n := 0
	for i := range views {
		pm := &views[i].pm
		rid, ok := local[pm.ShardID]
		if !ok || pm.moving() || pm.Preferred == 0 || pm.Preferred == self || !h.alive(pm.Preferred) {
			continue
		}
		var prid uint64
		for r, nid := range pm.members() {
			if nid == pm.Preferred {
				prid = r
			}
		}
		if prid == 0 {
			continue
		}
		lid, _, ok, err := h.nh.GetLeaderID(pm.ShardID)
		if err != nil || !ok || lid != rid {
			continue
		}
		h.mu.Lock()
		ls := h.lead[pm.ShardID]
		settled := ls != nil && now.Sub(ls.since) >= leaderSettle
		recent := now.Sub(h.moved[pm.ShardID]) < transferCooldown
		if settled && !recent {
			h.moved[pm.ShardID] = now
		}
		h.mu.Unlock()
		if !settled || recent {
			continue
		}
		if err := h.nh.RequestLeaderTransfer(pm.ShardID, prid); err == nil {
			n++
		}
		if n >= transfersPerPass {
			return
		}
	}
}

// controlMeta runs on the metadata leader: it adds joining nodes to the
// metadata shard as learners, keeps MetaVoters voters, reports roles, and
// finishes node removals. One membership change per pass.
func (h *Host) controlMeta(ctx context.Context) {
	m, err := h.membership(ctx, metaShardID)
	if err != nil {
		return
	}
	nodes, busy := h.metaNodes()
	h.reportMetaRoles(ctx, m, nodes)
	p := &metaPass{h: h, m: m, nodes: nodes}
	if p.admit(ctx) || p.promote(ctx) {
		return
	}
	p.finishRemoval(ctx, busy)
}

// metaNodes copies the nodes out of the metadata, with the nodes that
// hold or are to hold a partition replica (busy).
func (h *Host) metaNodes() (nodes map[uint64]NodeInfo, busy map[uint64]bool) {
	busy = map[uint64]bool{}
	h.meta.read(func(st *metaState) {
		nodes = make(map[uint64]NodeInfo, len(st.Nodes))
		for id, n := range st.Nodes {
			nodes[id] = *n
		}
		st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
			for _, mm := range []map[uint64]uint64{p.Replicas, p.members(), p.Learners} {
				for _, n := range mm {
					busy[n] = true
				}
			}
		})
	})
	return nodes, busy
}

// reportMetaRoles records the metadata shard's voters and learners in the
// metadata when a node's recorded role differs.
func (h *Host) reportMetaRoles(ctx context.Context, m *dragonboat.Membership, nodes map[uint64]NodeInfo) {
	roles := map[uint64]string{}
	for id := range m.Nodes {
		roles[id] = roleVoter
	}
	for id := range m.NonVotings {
		roles[id] = roleNonVoting
	}
	for id, n := range nodes {
		if n.MetaRole != roles[id] && n.State != nodeRemoved {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = h.proposeMeta(pctx, &metaCmd{Op: "meta_roles", Roles: roles})
			cancel()
			return
		}
	}
}

// metaPass is one pass of controlMeta over the metadata shard's
// membership m; each step makes at most one change and reports whether
// it did (or tried).
type metaPass struct {
	h     *Host
	m     *dragonboat.Membership
	nodes map[uint64]NodeInfo
}

// change runs one membership change f, bounded by configChangeLimit.
func (p *metaPass) change(ctx context.Context, what string, id uint64, f func(ctx context.Context) error) {
	cctx, cancel := context.WithTimeout(ctx, configChangeLimit)
	defer cancel()
	if err := f(cctx); err != nil {
		p.h.log.Debug("metadata membership change", "change", what, "node", id, "err", err)
	} else {
		p.h.log.Info("metadata membership change", "change", what, "node", id)
		p.h.kick()
	}
}

func (p *metaPass) inShard(id uint64) bool {
	_, v := p.m.Nodes[id]
	_, l := p.m.NonVotings[id]
	_, r := p.m.Removed[id]
	return v || l || r
}

// admit adds a joining node (or an initial peer beyond the voters) to the
// metadata shard as a learner.
func (p *metaPass) admit(ctx context.Context) bool {
	h, cc := p.h, p.m.ConfigChangeID
	for _, id := range sortedKeys(p.nodes) {
		n := p.nodes[id]
		if n.State != nodeRemoved && !p.inShard(id) {
			p.change(ctx, "add learner", id, func(ctx context.Context) error {
				return h.nh.SyncRequestAddNonVoting(ctx, metaShardID, id, n.RaftAddr, cc)
			})
			return true
		}
	}
	for _, id := range sortedKeys(h.cfg.Peers) {
		if _, known := p.nodes[id]; !known && !p.inShard(id) {
			addr := h.cfg.Peers[id]
			p.change(ctx, "add learner", id, func(ctx context.Context) error {
				return h.nh.SyncRequestAddNonVoting(ctx, metaShardID, id, addr, cc)
			})
			return true
		}
	}
	return false
}

// promote makes a live active learner a voter while fewer than MetaVoters
// active nodes vote.
func (p *metaPass) promote(ctx context.Context) bool {
	h, m := p.h, p.m
	active := 0
	for id := range m.Nodes {
		if n, ok := p.nodes[id]; !ok || n.State == nodeActive {
			active++
		}
	}
	if active >= h.cfg.MetaVoters {
		return false
	}
	for _, id := range sortedKeys(m.NonVotings) {
		n, ok := p.nodes[id]
		if ok && n.State == nodeActive && n.HTTPAddr != "" && h.alive(id) {
			addr := m.NonVotings[id]
			p.change(ctx, "promote", id, func(ctx context.Context) error {
				return h.nh.SyncRequestAddReplica(ctx, metaShardID, id, addr, m.ConfigChangeID)
			})
			return true
		}
	}
	return false
}

// finishRemoval drops the metadata replica of a drained node (one that is
// not busy), or records it removed once it has none.
func (p *metaPass) finishRemoval(ctx context.Context, busy map[uint64]bool) {
	h, m := p.h, p.m
	for _, id := range sortedKeys(p.nodes) {
		n := p.nodes[id]
		if n.State != nodeDraining || busy[id] {
			continue
		}
		_, voter := m.Nodes[id]
		_, learner := m.NonVotings[id]
		if !voter && !learner {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := h.proposeMeta(pctx, &metaCmd{Op: "node_removed", NodeID: id}); err == nil {
				h.log.Info("node removed from the cluster", "node", id)
			}
			cancel()
			return
		}
		if id == h.cfg.NodeID {
			for v := range m.Nodes {
				if v != id {
					_ = h.nh.RequestLeaderTransfer(metaShardID, v)
					return
				}
			}
			return
		}
		p.change(ctx, "delete", id, func(ctx context.Context) error {
			return h.nh.SyncRequestDeleteReplica(ctx, metaShardID, id, m.ConfigChangeID)
		})
		return
	}
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
