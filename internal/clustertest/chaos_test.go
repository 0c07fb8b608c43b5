//go:build chaos

package clustertest

import (
	"flag"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

var chaosTime = flag.Duration("chaos.time", 10*time.Minute, "how long the randomized fault run lasts")

// TestChaos runs the produce load for chaos.time while faults follow one
// another at random: kill -9 and restart of a node (often a leader), SIGSTOP
// and SIGCONT, and kill -9 of every node with a restart. It then checks the
// same invariants as the short fault tests. Run: make chaos.
func TestChaos(t *testing.T) {
	c := newCluster(t)
	load := tu.StartLoad(t, c.urls(0), "f", 3, 9)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)
	end := time.Now().Add(*chaosTime)
	for i := 0; time.Now().Before(end); i++ {
		time.Sleep(time.Duration(2+rng.IntN(5)) * time.Second)
		victim := uint64(1 + rng.IntN(3))
		if rng.IntN(2) == 0 {
			if l := tu.LeaderOf(t, c.url(1+victim%3), "f", rng.IntN(3)); l != 0 {
				victim = l
			}
		}
		p := c.procs[victim-1]
		switch f := rng.IntN(10); {
		case f < 5:
			t.Logf("fault %d: kill -9 node %d", i, victim)
			p.Kill()
			load.SetURLs(c.urls(victim))
			time.Sleep(time.Duration(1+rng.IntN(8)) * time.Second)
			p.Restarted()
			p.WaitReady(90 * time.Second)
			load.SetURLs(c.urls(0))
		case f < 9:
			d := time.Duration(1+rng.IntN(10)) * time.Second
			t.Logf("fault %d: SIGSTOP node %d for %v", i, victim, d)
			p.Signal(syscall.SIGSTOP)
			time.Sleep(d)
			p.Signal(syscall.SIGCONT)
		default:
			t.Logf("fault %d: kill -9 of every node", i)
			for _, q := range c.procs {
				q.Kill()
			}
			for _, q := range c.procs {
				q.Restarted()
			}
			for _, q := range c.procs {
				q.WaitReady(90 * time.Second)
			}
		}
	}
	load.Stop(t)
	c.waitSettled(c.url(1))
	c.check(load.Ledger)
	t.Logf("%d records acknowledged", load.Ledger.Count())
}
