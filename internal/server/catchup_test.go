package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/faultnet"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// Issue 16: a fetch sent to a node whose replica restarted and has not
// caught up yet is served by another replica instead of failing. Once its
// replica is open, the restarted node (the partition's former leader) is
// cut off from the other nodes' Raft traffic, so the replica can neither
// catch up nor learn the records written after the cut: the outcome
// depends on no timing. Clients still reach every node.
func TestClusterReadWhileReplicaCatchesUp(t *testing.T) {
	net := faultnet.New()
	c := startCluster(t, 3, func(cfg *Config) { cfg.Raft.TransportFactory = net.Factory() })
	u := func(id uint64) string { return c.nodes[id].URL() }
	if r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "c", "partitions": 1}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	victim := tu.LeaderOf(t, u(1), "c", 0)
	if victim == 0 {
		t.Fatal("c/0 has no leader")
	}
	other := victim%3 + 1
	newLeader := func() {
		t.Helper()
		tu.Eventually(t, 60*time.Second, "a leader of c/0 other than the restarted node", func() bool {
			l := tu.LeaderOf(t, u(other), "c", 0)
			return l != 0 && l != victim
		})
	}
	produceSeq(t, u(victim), "c", 0, "p", 0, 10)

	// The leader stops; the others elect a new one and take more records.
	stop(t, c.nodes[victim])
	delete(c.nodes, victim)
	newLeader()
	produceSeq(t, u(other), "c", 0, "p", 10, 10)

	// It restarts; once its replica is open it is cut off, and the others
	// take the last records: the replica cannot hold them.
	s := c.start(victim, "")
	if s == nil {
		t.FailNow()
	}
	c.nodes[victim] = s
	tu.Eventually(t, 60*time.Second, "the restarted node hosts its replica of c/0", func() bool {
		return s.Host.HostsReplica("c", 0)
	})
	net.Isolate(c.peers[victim])
	newLeader()
	produceSeq(t, u(other), "c", 0, "p", 20, 10)
	for _, rs := range s.Host.LocalStatus().Replicas {
		if rs.Topic == "c" && rs.HighWatermark >= 30 {
			t.Fatalf("the cut-off replica holds %d records: the test proves nothing", rs.HighWatermark)
		}
	}

	// A client's fetch at the restarted node answers every acknowledged
	// record and the acknowledged high watermark.
	r := tu.Do(t, "GET", u(victim)+"/v1/topics/c/partitions/0/records?offset=0&max_records=100", nil)
	if r.Status != 200 {
		t.Fatalf("fetch at the restarted node: %d %s", r.Status, r.Body)
	}
	var f struct {
		Records []struct {
			Offset int64  `json:"offset"`
			Value  string `json:"value"`
		} `json:"records"`
		HighWatermark int64 `json:"high_watermark"`
	}
	r.JSON(t, &f)
	if len(f.Records) != 30 || f.HighWatermark != 30 {
		t.Fatalf("fetch at the restarted node: %d records, high watermark %d; want 30 and 30", len(f.Records), f.HighWatermark)
	}
	for i, rec := range f.Records {
		if want := fmt.Sprintf("p-%d", i); rec.Offset != int64(i) || rec.Value != want {
			t.Fatalf("record %d: offset %d value %q; want offset %d value %q", i, rec.Offset, rec.Value, i, want)
		}
	}

	// Healed, the replica catches up and serves the same records itself.
	net.Heal()
	tu.Eventually(t, 60*time.Second, "the restarted replica holds every record", func() bool {
		for _, rs := range s.Host.LocalStatus().Replicas {
			if rs.Topic == "c" {
				return rs.HighWatermark == 30
			}
		}
		return false
	})
	got := tu.ReadPartition(t, u(victim), "c", 0, true)
	if len(got) != 30 || got[29] != "p-29" {
		t.Fatalf("the restarted replica after the heal: %d records %v", len(got), got)
	}
}
