package server

import (
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/faultnet"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// A network partition isolates a partition's leader from the other nodes
// (Raft traffic only; clients still reach every node, as in Jepsen's
// partition nemesis) under a steady idempotent produce load.
func TestClusterIsolatedLeader(t *testing.T) {
	net := faultnet.New()
	c := startCluster(t, 3, func(cfg *Config) { cfg.Raft.TransportFactory = net.Factory() })
	u := func(id uint64) string { return c.nodes[id].URL() }
	if r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "f", "partitions": 3}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	load := tu.StartLoad(t, []string{u(1), u(2), u(3)}, "f", 3, 6)
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2) // the load flows before the cut
	victim := tu.LeaderOf(t, u(1), "f", 0)
	if victim == 0 {
		t.Fatal("partition 0 has no leader")
	}
	cut := time.Now()
	net.Isolate(c.peers[victim])
	tu.Eventually(t, 30*time.Second, "writes to partition 0 resume during the partition", func() bool {
		_, ok := load.Ledger.FirstAckAfter(0, cut.Add(500*time.Millisecond))
		return ok
	})
	first, _ := load.Ledger.FirstAckAfter(0, cut)
	load.AwaitAcks(t, 50, 60*time.Second, 0) // writes go on while cut
	net.Heal()
	healed := time.Now()
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2) // and after the heal
	load.Stop(t)
	t.Logf("isolated node %d (leader of f/0); first ack after the cut %v later, longest gap while cut %v, %d records acknowledged",
		victim, first.Sub(cut), load.Ledger.MaxGap(0, cut, healed), load.Ledger.Count())
	tu.Eventually(t, 60*time.Second, "settled after heal", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	tu.CheckTopic(t, load.Ledger, "f", u(2), u)
}
