//go:build chaos && linux

package clustertest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/history"
	"github.com/weir-broker/weir/internal/netfault"
	tu "github.com/weir-broker/weir/internal/testutil"
)

var (
	chaosTime    = flag.Duration("chaos.time", 10*time.Minute, "how long the randomized fault run lasts")
	chaosSeed    = flag.Uint64("chaos.seed", 0, "seed of the fault schedule and the workload's choices (0: $CHAOS_SEED, else the clock); replays the schedule, not the timing")
	chaosHistory = flag.String("chaos.history", "", "file for the run's history (JSON lines; default in $TMPDIR, named for the seed)")
)

// ledgerClass is the harness's own check beside history.Check: the
// idempotent producers of testutil.Load (retrying one sequence until
// acknowledged) must find every acknowledged record exactly once at its
// offset, on every replica, and the replicas must agree.
const ledgerClass = "ledger-exactly-once"

// drainClass counts replicas whose final drain did not reach the
// partition's high watermark before the deadline.
const drainClass = "drain-incomplete"

// TestChaos runs client workloads against three `weir serve` processes for
// chaos.time while faults follow one another at random (kill -9 and
// restart, SIGSTOP/SIGCONT, kill -9 of every node, network partitions,
// black holes and delays between nodes), then heals everything, drains
// every partition from every replica, and checks the recorded history
// (internal/history) and the idempotent producers' ledger. It prints one
// "fault kind=…" line per fault, one "anomaly class=… count=…" line per
// class, and last "chaos: ops=… acknowledged=… anomalies=… seed=…".
// Run: make chaos (CHAOS_TIME=1m, CHAOS_SEED=n to replay a schedule).
func TestChaos(t *testing.T) {
	seed := *chaosSeed
	if seed == 0 {
		if s, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
			seed = s
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	fmt.Printf("chaos: seed=%d time=%v\n", seed, *chaosTime)

	c := newCluster(t)
	if r := tu.Do(t, "POST", c.url(1)+"/v1/topics", map[string]any{"name": "h", "partitions": 3}); r.Status != 201 {
		t.Fatalf("create h: %d %s", r.Status, r.Body)
	}
	net, err := isolateCluster(t, c)
	if err != nil {
		fmt.Printf("chaos: no network partitions: %v\n", err)
		net = nil
	}
	c.waitSettled(c.url(1))
	restart := restarter(net, c)

	rec := history.NewRecorder(nil)
	load := tu.StartLoad(t, c.urls(0), "f", 3, 3) // the idempotent producers of the short fault tests
	w := startWorkload(rec, c.urls(0), "h", 3, 4, 2, seed)

	faults := 0
	end := time.Now().Add(*chaosTime)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(2+rng.IntN(4)) * time.Second)
		victim := 1 + rng.IntN(3)
		target := "any"
		if rng.IntN(2) == 0 {
			if l := leaderOf(c.url(uint64(1+victim%3)), "h", rng.IntN(3)); l != 0 {
				victim, target = l, "leader"
			}
		}
		p := c.procs[victim-1]
		hold := time.Duration(1+rng.IntN(8)) * time.Second
		faults++
		kinds := []string{"kill", "kill", "kill", "pause", "pause", "pause", "restart-all"}
		if net != nil {
			kinds = append(kinds, "partition", "partition", "partition", "partition-oneway", "partition-oneway", "blackhole", "blackhole", "delay")
		}
		switch kind := kinds[rng.IntN(len(kinds))]; kind {
		case "kill":
			fmt.Printf("fault kind=kill node=%d target=%s down=%v\n", victim, target, hold)
			p.Kill()
			load.SetURLs(c.urls(uint64(victim)))
			time.Sleep(hold)
			restart(victim)
			p.WaitReady(90 * time.Second)
			load.SetURLs(c.urls(0))
		case "pause":
			fmt.Printf("fault kind=pause node=%d target=%s for=%v\n", victim, target, hold)
			p.Signal(syscall.SIGSTOP)
			time.Sleep(hold)
			p.Signal(syscall.SIGCONT)
		case "restart-all":
			fmt.Printf("fault kind=restart-all\n")
			for _, q := range c.procs {
				q.Kill()
			}
			for i := range c.procs {
				restart(i + 1)
			}
			for _, q := range c.procs {
				q.WaitReady(90 * time.Second)
			}
		case "partition", "partition-oneway", "blackhole", "delay":
			var links []*netfault.Proxy
			var desc string
			switch kind {
			case "partition": // the node alone on one side, Raft and HTTP, both ways
				links, desc = net.links(victim, true, true), "mode=isolate"
				for _, l := range links {
					l.Cut()
				}
			case "partition-oneway": // the node cannot send to the others; they reach it
				links, desc = net.links(victim, true, false), "mode=oneway-out"
				for _, l := range links {
					l.Cut()
				}
			case "blackhole": // the node's links swallow everything, connections stay open
				links, desc = net.links(victim, true, true), "mode=blackhole"
				for _, l := range links {
					l.Drop(netfault.Both)
				}
			case "delay":
				d := time.Duration(20+rng.IntN(180)) * time.Millisecond
				links, desc = net.links(victim, true, true), fmt.Sprintf("mode=delay delay=%v", d)
				for _, l := range links {
					l.Delay(netfault.Both, d)
				}
			}
			fmt.Printf("fault kind=partition %s node=%d target=%s links=%d for=%v\n", desc, victim, target, len(links), hold)
			time.Sleep(hold)
			net.heal()
		}
	}

	// Heal, then fence: every node ready and the cluster settled before the
	// clients stop and the drain starts.
	if net != nil {
		net.heal()
	}
	for _, p := range c.procs {
		p.WaitReady(90 * time.Second)
	}
	c.waitSettled(c.url(1))
	w.Stop()
	load.Stop(t)
	c.waitSettled(c.url(1))

	// The final drain: every partition of h from every replica, up to the
	// high watermark the leader reports.
	drainBad := 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for part := 0; part < 3; part++ {
		var hw int64
		tu.Eventually(t, 60*time.Second, fmt.Sprintf("the high watermark of h/%d", part), func() bool {
			v, err := highWatermark(ctx, c.url(1), "h", part)
			hw = v
			return err == nil
		})
		for node := 1; node <= len(c.procs); node++ {
			got, err := drain(ctx, rec, c.url(uint64(node)), fmt.Sprintf("drain-n%d", node), "h", part, hw)
			if err != nil {
				drainBad++
				t.Errorf("drain of h/%d on node %d: %v (reached %d of %d)", part, node, err, got, hw)
			}
		}
	}

	h := rec.History()
	path := *chaosHistory
	if path == "" {
		path = filepath.Join(os.TempDir(), fmt.Sprintf("weir-chaos-%d.jsonl", seed))
	}
	if f, err := os.Create(path); err == nil {
		h.WriteTo(f)
		f.Close()
		fmt.Printf("chaos: history in %s\n", path)
	}
	rep := history.Check(h, history.Config{Drained: true})

	ledgerBad := 0
	tu.CheckTopic(countingTB{TB: t, n: &ledgerBad}, load.Ledger, "f", c.url(1), c.url)

	if out := rep.String(); out != "" {
		fmt.Println(strings.TrimRight(out, "\n"))
	}
	fmt.Printf("anomaly class=%s count=%d\n", ledgerClass, ledgerBad)
	fmt.Printf("anomaly class=%s count=%d\n", drainClass, drainBad)

	// Operations: the history's, and the ledger producers' acknowledged
	// writes (their retries are not counted).
	ops, acked := len(h.Calls())+load.Ledger.Count(), countOK(h)+load.Ledger.Count()
	anomalies := rep.Total() + ledgerBad + drainBad
	if rep.Total() > 0 {
		t.Errorf("the history has %d anomalies (history in %s, seed %d)", rep.Total(), path, seed)
	}
	if acked == 0 {
		t.Error("no produce was acknowledged")
	}
	fmt.Printf("chaos: faults=%d history-ops=%d ledger-acks=%d\n", faults, len(h.Calls()), load.Ledger.Count())
	fmt.Printf("chaos: ops=%d acknowledged=%d anomalies=%d seed=%d\n", ops, acked, anomalies, seed)
}

// countOK counts the history's acknowledged produces.
func countOK(h history.History) int {
	n := 0
	for _, call := range h.Calls() {
		if call.Op.Kind == history.Produce && call.Status == history.OK {
			n++
		}
	}
	return n
}

// countingTB counts the errors a check reports, passing them on.
type countingTB struct {
	testing.TB
	n *int
}

func (c countingTB) Errorf(format string, args ...any) {
	c.TB.Helper()
	*c.n++
	c.TB.Errorf(format, args...)
}

func (c countingTB) Error(args ...any) {
	c.TB.Helper()
	*c.n++
	c.TB.Error(args...)
}

// leaderOf is the leader of topic/partition as the node at url sees it,
// 0 if none or if the node does not answer (it may be down).
func leaderOf(url, topic string, part int) int {
	a := newHClient().do(context.Background(), "GET", url+"/v1/cluster?partitions=true", nil, nil)
	if a.err != nil || a.status != 200 {
		return 0
	}
	var st struct {
		Partitions []struct { // core.ClusterStatus.PartitionsL
			Topic     string `json:"topic"`
			Partition int    `json:"partition"`
			Leader    uint64 `json:"leader"`
		} `json:"partition_list"`
	}
	if json.Unmarshal(a.body, &st) != nil {
		return 0
	}
	for _, p := range st.Partitions {
		if p.Topic == topic && p.Partition == part && p.Leader >= 1 && p.Leader <= 3 {
			return int(p.Leader)
		}
	}
	return 0
}
