package server

import (
	"encoding/json"
	"fmt"
	"net/http"
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

// A fetch at the end of a replica cut off from the others must not answer
// "nothing there" for a record the leader has acknowledged meanwhile
// (docs/guarantees.md, "Reads"): it answers the record or an error.
func TestFetchAtTheEndOfACutOffReplica(t *testing.T) {
	net := faultnet.New()
	c := startCluster(t, 3, func(cfg *Config) { cfg.Raft.TransportFactory = net.Factory() })
	u := func(id uint64) string { return c.nodes[id].URL() }
	if r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "r", "partitions": 1}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	leader := tu.LeaderOf(t, u(1), "r", 0)
	if leader == 0 {
		t.Fatal("partition 0 has no leader")
	}
	follower := leader%3 + 1
	// fetch reads offset 0 through the follower, as a client sends it or
	// as another node forwards it (Weir-Hops: 1: not proxied again).
	fetch := func(forwarded bool, offset int) (status int, values []string) {
		req, err := http.NewRequest("GET", fmt.Sprintf("%s/v1/topics/r/partitions/0/records?offset=%d", u(follower), offset), nil)
		if err != nil {
			t.Fatal(err)
		}
		if forwarded {
			req.Header.Set("Weir-Hops", "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		defer resp.Body.Close()
		var f struct {
			Records []struct {
				Value string `json:"value"`
			} `json:"records"`
		}
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
				t.Fatalf("fetch answer: %v", err)
			}
		}
		for _, rec := range f.Records {
			values = append(values, rec.Value)
		}
		return resp.StatusCode, values
	}
	// The follower's replica serves reads itself once it has caught up.
	if status, values := fetch(true, 0); status != 200 || len(values) != 0 {
		t.Fatalf("fetch of the empty partition through the follower: %d %q", status, values)
	}
	net.Isolate(c.peers[follower])
	if r := tu.Do(t, "POST", u(leader)+"/v1/topics/r/records", map[string]any{"records": []map[string]any{{"value": "acked"}, {"value": "second"}}}); r.Status != 200 {
		t.Fatalf("produce at the leader: %d %s", r.Status, r.Body)
	}
	// Cut off, the follower cannot confirm its end with a quorum; the read
	// goes to the leader (clients and nodes still reach each other over
	// HTTP: only Raft is cut), which has the records. Offset 1 is past the
	// follower's end but inside the log: not "out of range" (a Kafka
	// consumer whose partition moved to a lagging replica would reset to
	// its reset policy on that answer and read everything again).
	for _, forwarded := range []bool{true, false} {
		if status, values := fetch(forwarded, 0); status != 200 || len(values) != 2 || values[0] != "acked" {
			t.Errorf("fetch through the cut-off follower (Weir-Hops %v): %d %q, want the acknowledged records", forwarded, status, values)
		}
		if status, values := fetch(forwarded, 1); status != 200 || len(values) != 1 || values[0] != "second" {
			t.Errorf("fetch of offset 1 through the cut-off follower (Weir-Hops %v): %d %q, want the acknowledged record", forwarded, status, values)
		}
	}
	net.Heal()
	tu.Eventually(t, 60*time.Second, "the follower serves the record after the heal", func() bool {
		status, values := fetch(true, 0)
		if status == 200 && len(values) == 0 {
			t.Fatal("the follower answered nothing at offset 0 after the record was acknowledged")
		}
		return status == 200 && len(values) == 2 && values[0] == "acked"
	})
}
