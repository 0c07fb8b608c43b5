package raftlog

import (
	"fmt"
	"sort"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

// Placement runs inside the metadata state machine, so it is a pure function
// of the metadata: every replica of the metadata shard computes the same
// placement for the same entry. The controller and the partition leaders
// then carry the decisions out (see controller.go).

// activeNodes lists the nodes that take new replicas, sorted by id.
func (st *metaState) activeNodes() []uint64 {
	var ids []uint64
	for id, n := range st.Nodes {
		if n.State == nodeActive {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// placer keeps per-node replica and preferred-leader counts while placing.
type placer struct {
	nodes []uint64       // active nodes, sorted
	load  map[uint64]int // target replicas per node
	leads map[uint64]int // preferred leaderships per node
}

func (st *metaState) newPlacer() *placer {
	pl := &placer{nodes: st.activeNodes(), load: map[uint64]int{}, leads: map[uint64]int{}}
	st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
		for _, n := range p.Replicas {
			pl.load[n]++
		}
		if p.Preferred != 0 {
			pl.leads[p.Preferred]++
		}
	})
	return pl
}

// place chooses rf nodes with the fewest replicas (rotation breaks ties so
// that equal loads still spread) and, among them, the preferred leader with
// the fewest preferred leaderships.
func (pl *placer) place(rf int, rot uint64) ([]uint64, uint64) {
	n := len(pl.nodes)
	order := make([]uint64, n)
	for i := range pl.nodes {
		order[i] = pl.nodes[(int(rot%uint64(n))+i)%n]
	}
	sort.SliceStable(order, func(i, j int) bool { return pl.load[order[i]] < pl.load[order[j]] })
	chosen := order[:rf]
	pref := chosen[0]
	for _, c := range chosen[1:] {
		if pl.leads[c] < pl.leads[pref] {
			pref = c
		}
	}
	for _, c := range chosen {
		pl.load[c]++
	}
	pl.leads[pref]++
	return append([]uint64(nil), chosen...), pref
}

// target picks the least loaded active node that holds no replica of p.
func (pl *placer) target(p *PartitionMeta) (uint64, bool) {
	best, ok := uint64(0), false
	for _, n := range pl.nodes {
		if p.hasNode(n) {
			continue
		}
		if !ok || pl.load[n] < pl.load[best] {
			best, ok = n, true
		}
	}
	return best, ok
}

// eachPartition visits partitions in a deterministic order (topic name,
// partition index).
func (st *metaState) eachPartition(f func(topic string, idx int, p *PartitionMeta)) {
	names := make([]string, 0, len(st.Topics))
	for name := range st.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := st.Topics[name]
		for i := range t.Partitions {
			f(name, i, &t.Partitions[i])
		}
	}
}

func (st *metaState) partitionByShard(shard uint64) *PartitionMeta {
	var out *PartitionMeta
	st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
		if p.ShardID == shard {
			out = p
		}
	})
	return out
}

// moveReplica replaces the replica of p on node from with a new replica (a
// new, never used id) on the least loaded active node without one. The
// partition leader carries the move out.
func (st *metaState) moveReplica(pl *placer, p *PartitionMeta, from uint64) error {
	to, ok := pl.target(p)
	if !ok {
		return fmt.Errorf("no active node without a replica of shard %d to move it to", p.ShardID)
	}
	for rid, n := range p.Replicas {
		if n == from {
			delete(p.Replicas, rid)
		}
	}
	if p.Members == nil {
		p.Members = cloneMap(p.initial())
	}
	if p.Initial == nil {
		p.Initial = cloneMap(p.Members)
	}
	p.Replicas[st.NextReplicaID] = to
	st.NextReplicaID++
	pl.load[from]--
	pl.load[to]++
	if p.Preferred == from || p.Preferred == 0 {
		// The new replica is a learner for a while: prefer a remaining one.
		var best uint64
		for _, n := range p.Replicas {
			if n != to && (best == 0 || pl.leads[n] < pl.leads[best]) {
				best = n
			}
		}
		if best == 0 {
			best = to
		}
		pl.leads[p.Preferred]--
		pl.leads[best]++
		p.Preferred = best
	}
	return nil
}

// applyCluster applies the cluster-membership commands.
func (st *metaState) applyCluster(c *metaCmd) sm.Result {
	switch c.Op {
	case "join_node":
		return st.joinNode(c.Node)
	case "remove_node":
		return st.removeNode(c.NodeID)
	case "node_removed":
		return st.nodeRemoved(c.NodeID)
	case "meta_roles":
		for id, n := range st.Nodes {
			n.MetaRole = c.Roles[id]
		}
	case "partition_members":
		return st.partitionMembers(c.Shard, c.Members, c.Learners)
	case "caught_up":
		p := st.partitionByShard(c.Shard)
		if p == nil {
			return sm.Result{Value: metaNotFound}
		}
		if !p.caughtUp(c.Replica) {
			p.CaughtUp = append(p.CaughtUp, c.Replica)
		}
	case "rebalance":
		return sm.Result{Value: metaOK, Data: []byte(fmt.Sprint(st.rebalance()))}
	}
	return sm.Result{Value: metaOK}
}

// invalidCmd is the result of a command the state refuses, with why.
func invalidCmd(format string, a ...any) sm.Result {
	return sm.Result{Value: metaInvalid, Data: []byte(fmt.Sprintf(format, a...))}
}

// joinNode adds node as an active member, or updates the HTTP address of
// the member it already is.
func (st *metaState) joinNode(node *NodeInfo) sm.Result {
	if node == nil || node.ID == 0 || node.RaftAddr == "" {
		return invalidCmd("a joining node needs an id and a Raft address")
	}
	n := *node
	for id, o := range st.Nodes {
		if id != n.ID && o.RaftAddr == n.RaftAddr && o.State != nodeRemoved {
			return invalidCmd("node %d already uses the Raft address %s", id, n.RaftAddr)
		}
	}
	if cur := st.Nodes[n.ID]; cur != nil {
		switch {
		case cur.State == nodeRemoved:
			return invalidCmd("node %d was removed from the cluster; node ids are never reused", n.ID)
		case cur.RaftAddr != n.RaftAddr:
			return sm.Result{Value: metaExists, Data: []byte(fmt.Sprintf("node %d is already a member with Raft address %s", n.ID, cur.RaftAddr))}
		}
		if n.HTTPAddr != "" {
			cur.HTTPAddr = n.HTTPAddr
		}
		return sm.Result{Value: metaOK}
	}
	n.State, n.MetaRole = nodeActive, ""
	st.Nodes[n.ID] = &n
	return sm.Result{Value: metaOK}
}

// removeNode starts draining node id: every replica it holds moves to
// another active node, or nothing changes when one cannot.
func (st *metaState) removeNode(id uint64) sm.Result {
	n := st.Nodes[id]
	if n == nil {
		return sm.Result{Value: metaNotFound, Data: []byte(fmt.Sprintf("node %d is not a member", id))}
	}
	if n.State == nodeRemoved {
		return sm.Result{Value: metaOK}
	}
	active := st.activeNodes()
	if n.State == nodeActive && len(active) <= 1 {
		return invalidCmd("node %d is the last active node", id)
	}
	// Check every partition can move before changing anything.
	others := len(active)
	if n.State == nodeActive {
		others--
	}
	var bad string
	st.eachPartition(func(topic string, idx int, p *PartitionMeta) {
		for _, nid := range p.Replicas {
			if nid == id && len(p.Replicas) > others && bad == "" {
				bad = fmt.Sprintf("%s/%d has %d replicas and only %d other active nodes remain", topic, idx, len(p.Replicas), others)
			}
		}
	})
	if bad != "" {
		return invalidCmd("cannot remove node %d: partition %s", id, bad)
	}
	n.State = nodeDraining
	pl := st.newPlacer()
	var err error
	st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
		for _, nid := range p.Replicas {
			if nid == id && err == nil {
				err = st.moveReplica(pl, p, id)
			}
		}
	})
	if err != nil { // cannot happen after the check above
		return invalidCmd("%v", err)
	}
	return sm.Result{Value: metaOK}
}

// nodeRemoved records draining node id removed once no partition has it.
func (st *metaState) nodeRemoved(id uint64) sm.Result {
	n := st.Nodes[id]
	if n == nil || n.State != nodeDraining {
		return sm.Result{Value: metaNotFound}
	}
	busy := false
	st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
		busy = busy || p.hasNode(id)
	})
	if busy {
		return sm.Result{Value: metaExists}
	}
	n.State, n.MetaRole = nodeRemoved, ""
	return sm.Result{Value: metaOK}
}

// partitionMembers records the voters and learners of shard's Raft group,
// keeping the caught-up marks of learners that remain.
func (st *metaState) partitionMembers(shard uint64, members, learners map[uint64]uint64) sm.Result {
	p := st.partitionByShard(shard)
	if p == nil || len(members) == 0 {
		return sm.Result{Value: metaNotFound}
	}
	if p.Initial == nil {
		p.Initial = cloneMap(p.initial())
	}
	p.Members = cloneMap(members)
	p.Learners = nil
	if len(learners) > 0 {
		p.Learners = cloneMap(learners)
	}
	var keep []uint64
	for _, r := range p.CaughtUp {
		if _, ok := p.Learners[r]; ok {
			keep = append(keep, r)
		}
	}
	p.CaughtUp = keep
	return sm.Result{Value: metaOK}
}

// rebalance moves replicas from the most to the least loaded active nodes
// until their counts differ by at most one, then spreads preferred leaders
// evenly. Partitions already moving are left alone. It returns the number of
// replicas moved.
func (st *metaState) rebalance() int {
	pl := st.newPlacer()
	if len(pl.nodes) < 2 {
		return 0
	}
	// Replicas on draining nodes are already moving away: count only
	// active nodes.
	moves := 0
	for guard := 0; guard < 100000; guard++ {
		hi, lo := pl.nodes[0], pl.nodes[0]
		for _, n := range pl.nodes {
			if pl.load[n] > pl.load[hi] {
				hi = n
			}
			if pl.load[n] < pl.load[lo] {
				lo = n
			}
		}
		if pl.load[hi]-pl.load[lo] <= 1 {
			break
		}
		var cand *PartitionMeta
		st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
			if cand != nil || p.moving() || p.hasNode(lo) {
				return
			}
			for _, n := range p.Replicas {
				if n == hi {
					cand = p
				}
			}
		})
		if cand == nil {
			break
		}
		for rid, n := range cand.Replicas {
			if n == hi {
				delete(cand.Replicas, rid)
			}
		}
		if cand.Initial == nil {
			cand.Initial = cloneMap(cand.initial())
		}
		if cand.Members == nil {
			cand.Members = cloneMap(cand.Initial)
		}
		cand.Replicas[st.NextReplicaID] = lo
		st.NextReplicaID++
		pl.load[hi]--
		pl.load[lo]++
		moves++
	}
	// Preferred leaders, spread evenly.
	st.spreadPreferred(pl.nodes)
	return moves
}

// spreadPreferred sets each partition's preferred leader to the node among
// its target replicas on active (the active nodes) with the fewest
// preferred leaderships so far, keeping the current one on ties so that
// few leaders move.
func (st *metaState) spreadPreferred(activeNodes []uint64) {
	leads := map[uint64]int{}
	active := map[uint64]bool{}
	for _, n := range activeNodes {
		active[n] = true
	}
	st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
		var nodes []uint64
		for _, n := range p.Replicas {
			if active[n] {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) == 0 {
			return
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i] < nodes[j] })
		best := nodes[0]
		for _, n := range nodes {
			if leads[n] < leads[best] || (leads[n] == leads[best] && n == p.Preferred) {
				best = n
			}
		}
		p.Preferred = best
		leads[best]++
	})
}
