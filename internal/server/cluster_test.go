package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
	"github.com/weir-broker/weir/raftlog"
)

// testCluster is n in-process nodes formed with --peers semantics.
type testCluster struct {
	t     *testing.T
	dirs  map[uint64]string
	peers map[uint64]string
	nodes map[uint64]*Server
	mod   func(*Config)
}

func startCluster(t *testing.T, n int, mod func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, dirs: map[uint64]string{}, peers: map[uint64]string{}, nodes: map[uint64]*Server{}, mod: mod}
	for i := uint64(1); i <= uint64(n); i++ {
		c.dirs[i] = t.TempDir()
		c.peers[i] = tu.FreeAddr(t)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for id := range c.dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := c.start(id, "")
			mu.Lock()
			c.nodes[id] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Cleanup(c.stopAll)
	c.waitReady(n)
	return c
}

func (c *testCluster) start(id uint64, join string) *Server {
	c.t.Helper()
	cfg := Config{NodeID: id, DataDir: c.dirs[id], HTTPAddr: "127.0.0.1:0", RaftAddr: c.peers[id], Join: join}
	if join == "" {
		cfg.Peers = c.peers
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		c.t.Error(err)
		return nil
	}
	return s
}

// join starts a new node that joins through node via.
func (c *testCluster) join(id, via uint64) *Server {
	c.t.Helper()
	c.dirs[id] = c.t.TempDir()
	c.peers[id] = tu.FreeAddr(c.t)
	s := c.start(id, c.nodes[via].Addr())
	if s == nil {
		c.t.FailNow()
	}
	c.nodes[id] = s
	return s
}

func (c *testCluster) waitReady(n int) {
	c.t.Helper()
	for _, s := range c.nodes {
		if s == nil {
			c.t.FailNow()
		}
		tu.Eventually(c.t, 60*time.Second, "node ready", func() bool { return s.Host.Ready() && s.Host.NodeCount() == n })
	}
}

func (c *testCluster) stopAll() {
	var wg sync.WaitGroup
	for id, s := range c.nodes {
		if s == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); stop(c.t, s) }()
		delete(c.nodes, id)
	}
	wg.Wait()
}

// produceSeq produces n records one request at a time with an idempotent
// producer to one partition through url; it returns the acked offsets.
func produceSeq(t *testing.T, url, topic string, partition int, producer string, from, n int) []int64 {
	t.Helper()
	var offs []int64
	for i := from; i < from+n; i++ {
		body := map[string]any{"producer_id": producer, "sequence": i,
			"records": []map[string]any{{"value": fmt.Sprintf("%s-%d", producer, i), "partition": partition}}}
		r := tu.Do(t, "POST", url+"/v1/topics/"+topic+"/records", body)
		if r.Status != 200 {
			t.Fatalf("produce %s/%d via %s: %d %s", topic, partition, url, r.Status, r.Body)
		}
		var o offsetsResp
		r.JSON(t, &o)
		offs = append(offs, o.Offsets[0].Offset)
	}
	return offs
}

func TestClusterJoinRebalanceRemove(t *testing.T) {
	c := startCluster(t, 3, nil)
	u := func(id uint64) string { return c.nodes[id].URL() }
	r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "a", "partitions": 6, "replication_factor": 2})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	want := map[int][]string{}
	produce := func(via uint64, round int) {
		for p := 0; p < 6; p++ {
			pid := fmt.Sprintf("p%d", p)
			produceSeq(t, u(via), "a", p, pid, round*2, 2)
			want[p] = append(want[p], fmt.Sprintf("%s-%d", pid, round*2), fmt.Sprintf("%s-%d", pid, round*2+1))
		}
	}
	checkReplicas := func() {
		t.Helper()
		tu.Eventually(t, 30*time.Second, "replicas agree", func() bool {
			st := tu.ClusterStatus(t, u(2))
			for _, cp := range st.PartitionsL {
				for _, n := range cp.Members {
					if fmt.Sprint(tu.ReadPartition(t, u(n), "a", cp.Partition, true)) != fmt.Sprint(want[cp.Partition]) {
						return false
					}
				}
			}
			return true
		})
	}
	produce(1, 0)

	// Join node 4 through node 2: it gets a non-voting metadata replica.
	c.join(4, 2)
	c.waitReady(4)
	tu.Eventually(t, 30*time.Second, "node 4 admitted", func() bool {
		for _, n := range tu.ClusterStatus(t, u(4)).Nodes {
			if n.ID == 4 {
				return n.Health == "up" && n.MetaRole == "non_voting"
			}
		}
		return false
	})
	// Rebalance: 12 replicas over 4 nodes, 3 each.
	r = tu.Do(t, "POST", u(4)+"/v1/cluster/rebalance", nil)
	if r.Status != 202 {
		t.Fatalf("rebalance: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 90*time.Second, "rebalanced", func() bool {
		st := tu.ClusterStatus(t, u(3))
		if !tu.Settled(st) {
			return false
		}
		for _, n := range st.Nodes {
			if n.Placed != 3 || n.Replicas != 3 {
				return false
			}
		}
		return true
	})
	produce(4, 1)
	checkReplicas()
	// A new topic uses the new node too.
	r = tu.Do(t, "POST", u(3)+"/v1/topics", map[string]any{"name": "b", "partitions": 4, "replication_factor": 2})
	if r.Status != 201 {
		t.Fatalf("create b: %d %s", r.Status, r.Body)
	}
	st := tu.ClusterStatus(t, u(3))
	for _, n := range st.Nodes {
		if n.Placed != 5 {
			t.Fatalf("after topic b, node %d holds %d replicas, want 5", n.ID, n.Placed)
		}
	}

	// Remove node 1 (a metadata voter): its replicas move, node 4 becomes
	// a voter, node 1 ends removed.
	r = tu.Do(t, "POST", u(2)+"/v1/cluster/nodes/1/remove", nil)
	if r.Status != 202 {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 120*time.Second, "node 1 removed", func() bool {
		st := tu.ClusterStatus(t, u(2))
		if !tu.Settled(st) {
			return false
		}
		for _, n := range st.Nodes {
			switch {
			case n.ID == 1 && (n.State != "removed" || n.Placed != 0):
				return false
			case n.ID == 4 && n.MetaRole != "voter":
				return false
			}
		}
		for _, cp := range st.PartitionsL {
			for _, n := range append(cp.Members, cp.Learners...) {
				if n == 1 {
					return false
				}
			}
		}
		return true
	})
	stop(t, c.nodes[1])
	delete(c.nodes, 1)
	produce(3, 2)
	checkReplicas()
	// A removed node's id cannot come back.
	r = tu.Do(t, "POST", u(2)+"/v1/cluster/join", map[string]any{"node_id": 1, "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"})
	if r.Status != 400 {
		t.Fatalf("rejoin of a removed id: %d %s", r.Status, r.Body)
	}
}

func TestClusterPlacementForwardingAndStatus(t *testing.T) {
	c := startCluster(t, 3, nil)
	u1 := c.nodes[1].URL()
	r := tu.Do(t, "POST", u1+"/v1/topics", map[string]any{"name": "orders", "partitions": 6})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var topic struct {
		ReplicationFactor int `json:"replication_factor"`
	}
	r.JSON(t, &topic)
	if topic.ReplicationFactor != 3 {
		t.Fatalf("default replication factor %d, want 3", topic.ReplicationFactor)
	}
	// Leaders spread evenly once the balancer has moved them to the
	// preferred nodes: 2 per node.
	tu.Eventually(t, 60*time.Second, "leaders spread evenly", func() bool {
		st := tu.ClusterStatus(t, u1)
		if !tu.Settled(st) || len(st.Nodes) != 3 {
			return false
		}
		for _, n := range st.Nodes {
			if n.Health != "up" || n.Replicas != 6 || n.Leaders != 2 || n.MetaRole != "voter" {
				return false
			}
		}
		return true
	})
	// Every node takes produces for every partition (forwarding to the
	// leader) and serves fetches of every partition.
	want := map[int][]string{}
	for id := uint64(1); id <= 3; id++ {
		u := c.nodes[id].URL()
		for p := 0; p < 6; p++ {
			pid := fmt.Sprintf("n%d-p%d", id, p)
			offs := produceSeq(t, u, "orders", p, pid, 0, 3)
			for i, off := range offs {
				if off != int64(len(want[p])+i) {
					t.Fatalf("partition %d: offset %d, want %d", p, off, len(want[p])+i)
				}
			}
			for i := 0; i < 3; i++ {
				want[p] = append(want[p], fmt.Sprintf("%s-%d", pid, i))
			}
		}
	}
	// A retried idempotent batch answers duplicate with its first offsets.
	r = tu.Do(t, "POST", c.nodes[2].URL()+"/v1/topics/orders/records", map[string]any{"producer_id": "n1-p0", "sequence": 2,
		"records": []map[string]any{{"value": "n1-p0-2", "partition": 0}}})
	var o offsetsResp
	r.JSON(t, &o)
	if r.Status != 200 || !o.Duplicate || o.Offsets[0].Offset != 2 {
		t.Fatalf("retry: %d %s", r.Status, r.Body)
	}
	for id := uint64(1); id <= 3; id++ {
		for p := 0; p < 6; p++ {
			got := tu.ReadPartition(t, c.nodes[id].URL(), "orders", p, false)
			if fmt.Sprint(got) != fmt.Sprint(want[p]) {
				t.Fatalf("node %d partition %d: %v, want %v", id, p, got, want[p])
			}
		}
	}
	// Every replica holds the same records at the same offsets.
	tu.Eventually(t, 20*time.Second, "replicas agree", func() bool {
		for p := 0; p < 6; p++ {
			for id := uint64(1); id <= 3; id++ {
				if fmt.Sprint(tu.ReadPartition(t, c.nodes[id].URL(), "orders", p, true)) != fmt.Sprint(want[p]) {
					return false
				}
			}
		}
		return true
	})
	// Describe through any node reports leaders and offsets.
	var d struct {
		Partitions []struct {
			Leader        uint64 `json:"leader"`
			HighWatermark int64  `json:"high_watermark"`
		} `json:"partitions"`
	}
	tu.Do(t, "GET", c.nodes[3].URL()+"/v1/topics/orders", nil).JSON(t, &d)
	for p, pi := range d.Partitions {
		if pi.Leader == 0 || pi.HighWatermark != 9 {
			t.Fatalf("partition %d described as %+v", p, pi)
		}
	}
	// Admin and group calls work through any node.
	r = tu.Do(t, "POST", c.nodes[3].URL()+"/v1/groups/g/offsets", map[string]any{"offsets": []map[string]any{{"topic": "orders", "partition": 1, "offset": 4}}})
	if r.Status != 204 {
		t.Fatalf("commit: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 10*time.Second, "group offsets everywhere", func() bool {
		var g struct {
			Offsets []struct {
				Offset int64 `json:"offset"`
				Lag    int64 `json:"lag"`
			} `json:"offsets"`
		}
		tu.Do(t, "GET", c.nodes[1].URL()+"/v1/groups/g/offsets", nil).JSON(t, &g)
		return len(g.Offsets) == 1 && g.Offsets[0].Offset == 4 && g.Offsets[0].Lag == 5
	})
}

// A node holding a follower replica takes writes through either path
// (raftlog.Config.FollowerWrites) across a leader change: an idempotent
// producer on the follower loses nothing and duplicates nothing, and the
// path taken is the one configured.
func TestClusterFollowerWritesUnderLeaderChange(t *testing.T) {
	for _, mode := range []string{raftlog.FollowerPropose, raftlog.FollowerForward} {
		t.Run(mode, func(t *testing.T) {
			c := startCluster(t, 3, func(cfg *Config) { cfg.Raft.FollowerWrites = mode })
			r := tu.Do(t, "POST", c.nodes[1].URL()+"/v1/topics", map[string]any{"name": "fw", "partitions": 1})
			if r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			leader := func(via uint64) uint64 { return tu.LeaderOf(t, c.nodes[via].URL(), "fw", 0) }
			// The leader balancer moves the leadership to the preferred
			// node; wait for it, so that no transfer happens mid-test.
			var lead uint64
			tu.Eventually(t, 60*time.Second, "fw/0 led by its preferred node", func() bool {
				for _, cp := range tu.ClusterStatus(t, c.nodes[1].URL()).PartitionsL {
					if cp.Topic == "fw" && cp.Leader != 0 && cp.Leader == cp.Preferred {
						lead = cp.Leader
						return true
					}
				}
				return false
			})
			var follower uint64
			for id := range c.nodes {
				if id != lead {
					follower = id
					break
				}
			}
			// Every node holds a replica (RF 3 on 3 nodes): with a leader up,
			// the follower's writes never need the forwarder in propose mode.
			fwdBefore := c.nodes[follower].Host.ForwardedWrites()
			const n, stopAt = 60, 20
			url := c.nodes[follower].URL()
			var want []string
			var fwd int64 // writes forwarded over HTTP while the leader was up
			for i := 0; i < n; i++ {
				if i == stopAt { // the leader goes away mid-stream
					fwd = c.nodes[follower].Host.ForwardedWrites() - fwdBefore
					stop(t, c.nodes[lead])
					delete(c.nodes, lead)
				}
				v := fmt.Sprintf("v-%d", i)
				body := map[string]any{"producer_id": "fw-producer", "sequence": i,
					"records": []map[string]any{{"value": v, "partition": 0}}}
				deadline := time.Now().Add(60 * time.Second)
				for { // the same sequence again after an unknown outcome: idempotent
					r := tu.Do(t, "POST", url+"/v1/topics/fw/records", body)
					if r.Status == 200 {
						break
					}
					if r.Status != 503 && r.Status != 504 || time.Now().After(deadline) {
						t.Fatalf("produce %d via node %d: %d %s", i, follower, r.Status, r.Body)
					}
				}
				want = append(want, v)
			}
			if newLead := leader(follower); newLead == lead {
				t.Fatalf("node %d still named leader after it stopped", lead)
			}
			for _, s := range c.nodes {
				tu.Eventually(t, 30*time.Second, "every replica has every record once, in order", func() bool {
					return fmt.Sprint(tu.ReadPartition(t, s.URL(), "fw", 0, true)) == fmt.Sprint(want)
				})
			}
			// While there is no leader, a follower may also ask the other
			// replicas' nodes (route.go); with a live leader it must not.
			switch {
			case mode == raftlog.FollowerPropose && fwd != 0:
				t.Fatalf("propose mode: the follower forwarded %d writes over HTTP to a live leader", fwd)
			case mode == raftlog.FollowerForward && fwd < stopAt: // a retried forward counts twice
				t.Fatalf("forward mode: the follower forwarded %d writes to the live leader, want ≥ %d", fwd, stopAt)
			}
		})
	}
}

// A topic grown through one node gets new partitions replicated on every
// node, each with a leader and the topic's replication factor; they take
// produces through any node; a restarted node replays the growth.
func TestClusterAddPartitions(t *testing.T) {
	c := startCluster(t, 3, nil)
	for id := uint64(1); id <= 3; id++ {
		tu.Eventually(t, 30*time.Second, fmt.Sprintf("node %d to see every node up", id), func() bool {
			st := tu.ClusterStatus(t, c.nodes[id].URL())
			for _, n := range st.Nodes {
				if n.Health != "up" {
					return false
				}
			}
			return len(st.Nodes) == 3
		})
	}
	// The create and the growth answer once the new partitions are led by
	// their preferred nodes (no leader move right after, under the first
	// producers), as the answering node sees them.
	preferred := func(via uint64, from int) {
		t.Helper()
		n := 0
		for _, p := range tu.ClusterStatus(t, c.nodes[via].URL()).PartitionsL {
			if p.Topic == "grow" && p.Partition >= from {
				n++
				if p.Leader != p.Preferred {
					t.Fatalf("partition %d is led by node %d when the answer came, its preferred node is %d", p.Partition, p.Leader, p.Preferred)
				}
			}
		}
		if n == 0 {
			t.Fatalf("node %d lists no partition of grow from %d", via, from)
		}
	}
	if r := tu.Do(t, "POST", c.nodes[1].URL()+"/v1/topics", map[string]any{"name": "grow", "partitions": 2}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	preferred(1, 0)
	if r := tu.Do(t, "POST", c.nodes[2].URL()+"/v1/topics/grow/partitions", map[string]any{"partitions": 4}); r.Status != 200 {
		t.Fatalf("grow: %d %s", r.Status, r.Body)
	}
	preferred(2, 2)
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, c.nodes[1].URL())) })
	described := func(id uint64) bool {
		var d struct {
			Partitions []struct {
				Leader   uint64   `json:"leader"`
				Replicas []uint64 `json:"replicas"`
			} `json:"partitions"`
		}
		tu.Do(t, "GET", c.nodes[id].URL()+"/v1/topics/grow", nil).JSON(t, &d)
		if len(d.Partitions) != 4 {
			return false
		}
		for _, p := range d.Partitions {
			if p.Leader == 0 || len(p.Replicas) != 3 {
				return false
			}
		}
		return true
	}
	for id := uint64(1); id <= 3; id++ {
		tu.Eventually(t, 30*time.Second, fmt.Sprintf("node %d to describe 4 replicated partitions with leaders", id), func() bool { return described(id) })
	}
	produceSeq(t, c.nodes[3].URL(), "grow", 3, "p3", 0, 3)
	produceSeq(t, c.nodes[1].URL(), "grow", 2, "p2", 0, 2)

	stop(t, c.nodes[1])
	c.nodes[1] = c.start(1, "")
	if c.nodes[1] == nil {
		t.FailNow()
	}
	c.waitReady(3)
	tu.Eventually(t, 30*time.Second, "the restarted node to describe the grown topic", func() bool { return described(1) })
	tu.Eventually(t, 30*time.Second, "the restarted node's replica of partition 3", func() bool {
		return fmt.Sprint(tu.ReadPartition(t, c.nodes[1].URL(), "grow", 3, true)) == "[p3-0 p3-1 p3-2]"
	})
}
