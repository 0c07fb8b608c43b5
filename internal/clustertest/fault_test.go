package clustertest

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// cluster is three weir processes with a topic "f" of 3 partitions (RF 3)
// whose leaders are spread.
type cluster struct {
	t     *testing.T
	procs []*tu.Proc
}

func newCluster(t *testing.T) *cluster { return newClusterWith(t, nil) }

// newClusterWith is newCluster with flags of each node's own (see
// tu.StartWeirClusterWith).
func newClusterWith(t *testing.T, nodeArgs func(node int) []string) *cluster {
	c := &cluster{t: t, procs: tu.StartWeirClusterWith(t, 3, nodeArgs)}
	c.waitUp()
	if r := tu.Do(t, "POST", c.url(1)+"/v1/topics", map[string]any{"name": "f", "partitions": 3}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	c.waitSettled(c.url(1))
	return c
}

// waitUp waits until node 1 sees every node up.
func (c *cluster) waitUp() {
	c.t.Helper()
	tu.Eventually(c.t, 60*time.Second, fmt.Sprintf("%d nodes up", len(c.procs)), func() bool {
		st := tu.ClusterStatus(c.t, c.url(1))
		up := 0
		for _, n := range st.Nodes {
			if n.Health == "up" {
				up++
			}
		}
		return up == len(c.procs)
	})
}

func (c *cluster) url(node uint64) string { return c.procs[node-1].URL() }

func (c *cluster) urls(except uint64) []string {
	var out []string
	for i := range c.procs {
		if uint64(i+1) != except {
			out = append(out, c.url(uint64(i+1)))
		}
	}
	return out
}

func (c *cluster) waitSettled(url string) {
	c.t.Helper()
	tu.Eventually(c.t, 90*time.Second, "cluster settled (leaders everywhere, no lagging replica)", func() bool {
		r, err := tu.TryDo("GET", url+"/v1/cluster?partitions=true", nil)
		if err != nil || r.Status != 200 {
			return false
		}
		return tu.Settled(tu.ClusterStatus(c.t, url))
	})
}

// check verifies topic f on every replica against the ledger.
func (c *cluster) check(l *tu.Ledger) {
	c.t.Helper()
	tu.CheckTopic(c.t, l, "f", c.url(1), c.url)
	if l.Count() == 0 {
		c.t.Fatal("no record was acknowledged")
	}
}

func TestKillLeaderUnderLoad(t *testing.T) {
	c := newCluster(t)
	load := tu.StartLoad(t, c.urls(0), "f", 3, 6)
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2) // the load flows before the fault
	victim := tu.LeaderOf(t, c.url(1), "f", 0)
	if victim == 0 {
		t.Fatal("no leader for f/0")
	}
	killed := time.Now()
	c.procs[victim-1].Kill()
	load.SetURLs(c.urls(victim))
	tu.Eventually(t, 30*time.Second, "writes to f/0 resume", func() bool {
		_, ok := load.Ledger.FirstAckAfter(0, killed.Add(100*time.Millisecond))
		return ok
	})
	load.AwaitAcks(t, 50, 60*time.Second, 0) // writes go on with the node down
	t.Logf("kill -9 of node %d (leader of f/0): longest write gap on f/0 %v", victim, load.Ledger.MaxGap(0, killed, time.Now()))
	c.procs[victim-1].Restarted()
	c.procs[victim-1].WaitReady(60 * time.Second)
	load.SetURLs(c.urls(0))
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2) // and with it back
	load.Stop(t)
	c.waitSettled(c.url(victim)) // the restarted node caught up
	c.check(load.Ledger)
	t.Logf("%d records acknowledged", load.Ledger.Count())
}

func TestPauseLeader(t *testing.T) {
	c := newCluster(t)
	load := tu.StartLoad(t, c.urls(0), "f", 3, 6)
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2)
	victim := tu.LeaderOf(t, c.url(1), "f", 1)
	if victim == 0 {
		t.Fatal("no leader for f/1")
	}
	paused := time.Now()
	if err := c.procs[victim-1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 30*time.Second, "writes to f/1 resume while its leader is stopped", func() bool {
		_, ok := load.Ledger.FirstAckAfter(1, paused.Add(100*time.Millisecond))
		return ok
	})
	load.AwaitAcks(t, 50, 60*time.Second, 1) // writes go on while the old leader is stopped
	gap := load.Ledger.MaxGap(1, paused, time.Now())
	if err := c.procs[victim-1].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGSTOP of node %d (leader of f/1) for %v: longest write gap on f/1 %v", victim, time.Since(paused), gap)
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2) // and after it resumes
	load.Stop(t)
	c.waitSettled(c.url(victim))
	c.check(load.Ledger)
}

func TestWholeClusterRestart(t *testing.T) {
	c := newCluster(t)
	load := tu.StartLoad(t, c.urls(0), "f", 3, 6)
	load.AwaitAcks(t, 100, 60*time.Second, 0, 1, 2) // kill with writes acknowledged everywhere
	for _, p := range c.procs {                     // kill -9 everything under load
		p.Signal(syscall.SIGKILL)
	}
	load.Stop(t)
	for _, p := range c.procs {
		p.Kill() // waits for the exit
	}
	acked := load.Ledger.Count()
	for _, p := range c.procs {
		p.Restarted()
	}
	for _, p := range c.procs {
		p.WaitReady(90 * time.Second)
	}
	c.waitSettled(c.url(2))
	c.check(load.Ledger)
	t.Logf("%d records acknowledged before kill -9 of all nodes, all present after the restart", acked)
}
