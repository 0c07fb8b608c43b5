package raftlog

import (
	"testing"

	"github.com/weir-broker/weir/core"
)

// A topic grown on three nodes gets new shards, each with the topic's
// replication factor of distinct active nodes; the old partitions keep
// their shards; a smaller count, a missing topic and a replication factor
// the active nodes no longer fit are refused without a change.
func TestMetaAddPartitions(t *testing.T) {
	st := newMetaState()
	for id := uint64(1); id <= 3; id++ {
		if r := st.registerNode(&NodeInfo{ID: id}); r.Value != metaOK {
			t.Fatalf("register node %d: %+v", id, r)
		}
	}
	if r := st.createTopic(&core.TopicConfig{Name: "t", Partitions: 2, ReplicationFactor: 3}, 1); r.Value != metaOK {
		t.Fatalf("create: %+v", r)
	}
	before := append([]PartitionMeta(nil), st.Topics["t"].Partitions...)
	if r := st.addPartitions("t", 5); r.Value != metaOK {
		t.Fatalf("add to 5: %+v", r)
	}
	tm := st.Topics["t"]
	if tm.Config.Partitions != 5 || len(tm.Partitions) != 5 {
		t.Fatalf("after growth: config %d partitions, %d placed; want 5", tm.Config.Partitions, len(tm.Partitions))
	}
	shards := map[uint64]bool{}
	for i, p := range tm.Partitions {
		if shards[p.ShardID] {
			t.Fatalf("partition %d reuses shard %d", i, p.ShardID)
		}
		shards[p.ShardID] = true
		if i < len(before) && p.ShardID != before[i].ShardID {
			t.Fatalf("partition %d moved from shard %d to %d", i, before[i].ShardID, p.ShardID)
		}
		nodes := map[uint64]bool{}
		for _, n := range p.Replicas {
			nodes[n] = true
		}
		if len(p.Replicas) != 3 || len(nodes) != 3 || len(p.Members) != 3 {
			t.Fatalf("partition %d: replicas %v members %v, want 3 on distinct nodes", i, p.Replicas, p.Members)
		}
	}
	for _, c := range []struct {
		name  string
		count int
		want  uint64
	}{{"t", 5, metaInvalid}, {"t", 4, metaInvalid}, {"missing", 3, metaNotFound}} {
		if r := st.addPartitions(c.name, c.count); r.Value != c.want {
			t.Fatalf("add %s to %d: %+v, want %d", c.name, c.count, r, c.want)
		}
	}
	st.Nodes[3].State = nodeRemoved
	if r := st.addPartitions("t", 6); r.Value != metaInvalid || len(st.Topics["t"].Partitions) != 5 {
		t.Fatalf("add with 2 active nodes for factor 3: %+v, %d partitions", r, len(st.Topics["t"].Partitions))
	}
}
