package raftlog

import (
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
)

// Quiescing idle partitions (Config.Quiesce; docs/cluster.md, "Many
// partitions").
//
// A Raft group ticks and its leader sends heartbeats whether or not anyone
// writes: with 1,000 partitions of three replicas that idle work cost about
// a third of a core per node. Dragonboat's quiesce mode stops it for a
// group that has seen no traffic for twenty election timeouts: the leader
// tells the followers, and every replica then stops heartbeats and
// election timers until a message, a proposal or a read reaches it.
//
// What quiescing gives up is the followers noticing that the leader is
// gone: a leader that dies or is cut off while its group is quiet is not
// replaced until something wakes a follower. wakeOrphans does that from
// this node's side: twice a second (with the liveness pings) it looks at
// every local replica, and one whose leader is unknown or lives on a node
// that has not answered a ping within aliveWindow gets a ReadIndex request.
// Any request takes a replica out of quiescence; its election timer has
// run out while it was quiet, so it starts an election (a pre-vote first)
// at its next tick, and the other replicas it asks wake up to answer. A
// request that reaches a quiet group with a dead leader thus waits for
// aliveWindow plus one election round, as a write does after a kill -9
// of an active leader.

// wakeTimeout bounds the ReadIndex request that wakes a replica; its answer
// is not used, only its arrival at the replica.
const wakeTimeout = 2 * time.Second

// waker remembers the wake request in flight per shard, so that a replica
// whose election takes a while is not sent one request per round.
type waker struct {
	mu      sync.Mutex
	pending map[uint64]*dragonboat.RequestState
}

// wakeOrphans sends a ReadIndex request to each local replica whose leader
// is unknown or on a node not seen up.
func (h *Host) wakeOrphans() {
	type replica struct {
		shard uint64
		pm    PartitionMeta
	}
	var all []replica
	h.meta.read(func(st *metaState) {
		st.eachPartition(func(_ string, _ int, pm *PartitionMeta) {
			all = append(all, replica{shard: pm.ShardID, pm: *pm})
		})
	})
	for _, r := range all {
		if h.localSM(r.shard) == nil { // outside meta.read: never both locks at once
			continue
		}
		lid, _, ok, err := h.nh.GetLeaderID(r.shard)
		if err != nil {
			continue // not running here (any more)
		}
		if ok {
			if node, known := r.pm.nodeOf(lid); known && h.alive(node) {
				continue
			}
		}
		h.wake(r.shard)
	}
}

// wake sends a ReadIndex request to the local replica of shard unless the
// last one sent is still in flight. Its outcome is not used: the request
// only has to reach the replica. Without Config.Quiesce it does nothing.
func (h *Host) wake(shard uint64) {
	if !h.cfg.Quiesce {
		return
	}
	h.waker.mu.Lock()
	defer h.waker.mu.Unlock()
	if rs, ok := h.waker.pending[shard]; ok {
		select {
		case <-rs.ResultC():
			rs.Release()
			delete(h.waker.pending, shard)
		default:
			return // still in flight (it ends within wakeTimeout)
		}
	}
	rs, err := h.nh.ReadIndex(shard, wakeTimeout)
	if err != nil {
		return // busy, not here or stopping: the next round tries again
	}
	if h.waker.pending == nil {
		h.waker.pending = map[uint64]*dragonboat.RequestState{}
	}
	h.waker.pending[shard] = rs
}
