package server

import (
	"testing"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/weir-broker/weir/internal/faultnet"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// quietCluster starts three nodes whose idle partitions quiesce
// (raftlog.Config.Quiesce) with a Raft tick of tickMs, creates topic q of
// one partition with one record, and waits until its leader has told the
// followers the group is quiet. It returns the cluster, its network and
// the partition's leader.
func quietCluster(t *testing.T, tickMs uint64) (*testCluster, *faultnet.Net, uint64) {
	net := faultnet.New()
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.Raft.TransportFactory = net.Factory()
		cfg.Raft.Quiesce = true
		cfg.Raft.RTTMillisecond = tickMs
		// A group goes quiet after twenty election timeouts without traffic:
		// 6 s here instead of the default 20 s.
		cfg.Raft.ElectionRTT = 300 / tickMs
	})
	u := c.nodes[1].URL()
	if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "q", "partitions": 1}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/topics/q/records", map[string]any{"records": []map[string]any{{"value": "before"}}}); r.Status != 200 {
		t.Fatalf("produce: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u)) })
	// The metadata shard never quiesces, so every Quiesce message is q/0's:
	// a replica that goes quiet tells its two peers, so six mean all three
	// replicas went quiet.
	tu.Eventually(t, 2*time.Minute, "partition q/0 quiesced", func() bool { return net.Sent(pb.Quiesce) >= 6 })
	leader := tu.LeaderOf(t, u, "q", 0)
	if leader == 0 {
		t.Fatal("q/0 has no leader")
	}
	return c, net, leader
}

// writeThroughSurvivor waits until a write to q/0 through a node other
// than the lost leader is acknowledged, checks that another node now leads
// q/0 and returns that survivor's URL.
func writeThroughSurvivor(t *testing.T, c *testCluster, lost uint64) string {
	t.Helper()
	u := c.nodes[lost%3+1].URL()
	tu.Eventually(t, time.Minute, "a write through a survivor is acknowledged", func() bool {
		r := tu.Do(t, "POST", u+"/v1/topics/q/records", map[string]any{"records": []map[string]any{{"value": "after"}}})
		return r.Status == 200
	})
	if l := tu.LeaderOf(t, u, "q", 0); l == lost || l == 0 {
		t.Fatalf("q/0's leader is %d after node %d was lost", l, lost)
	}
	return u
}

// A quiet partition's followers do not time out their leader. When the
// leader's node dies while the partition is quiet, the survivors must
// still elect another leader and take writes (raftlog/quiesce.go).
func TestQuietPartitionLosesItsLeader(t *testing.T) {
	c, _, leader := quietCluster(t, 10)
	stop(t, c.nodes[leader])
	delete(c.nodes, leader)
	u := writeThroughSurvivor(t, c, leader)
	if got := tu.ReadPartition(t, u, "q", 0, true); len(got) < 2 || got[0] != "before" {
		t.Fatalf("q/0 after the failover: %q", got)
	}
}

// The same when only Raft traffic is cut (clients and nodes still reach
// each other over HTTP, so every node looks alive to the others and the
// liveness pings wake nothing): the writes that fail at the cut-off leader
// must end in a survivor's replica waking and taking over. With a long
// tick (100 ms, as --raft-tick for many partitions).
func TestQuietPartitionLeaderCutOff(t *testing.T) {
	c, net, leader := quietCluster(t, 100)
	net.Isolate(c.peers[leader])
	writeThroughSurvivor(t, c, leader)
	net.Heal()
}
