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

// TestChaos runs client workloads against three `weir serve` processes
// while faults follow one another at random, then heals everything, drains
// every partition from every replica, and checks the recorded history
// (internal/history) and the idempotent producers' ledger.
//
// The run has two phases of chaos.time/2, each on a cluster of its own
// whose nodes run in the test-fault mode (weir serve --test-faults,
// internal/server/testfaults.go):
//
//   - disk: the nodes keep their data on disk (under the fault wrapper).
//     Faults: kill -9 and restart, SIGSTOP/SIGCONT, kill -9 of every node,
//     network partitions, black holes and delays, clock skew, and a full
//     or failing disk (ENOSPC, EIO; Dragonboat stops a node whose log
//     write fails, and the harness starts it again as after a kill).
//   - mem: the nodes keep their data in a strict in-memory filesystem that
//     drops every write no fsync made durable. Faults: power loss of every
//     node at once (the coordinated power failure of Jepsen's NATS
//     analysis) and of one node, in-process crashes (every write kept, as
//     kill -9 keeps the page cache), SIGSTOP, partitions and clock skew.
//     A real kill -9 would take the node's whole disk with it here.
//
// Workloads: producers of unique values to h, a consumer group on h, an
// idempotent producer ledger on f, a franz-go idempotent producer, consumer
// and consumer group on k (chaos_kafka_test.go), queue consumers of a
// subscription of h
// (ack and nack), and an exactly-once pipeline (examples/count) from pin to
// pout whose per-key output counts must equal the inputs.
//
// It prints one "fault kind=…" line per fault, one "anomaly class=…
// count=…" line per class (summed over the phases), and last "chaos:
// ops=… acknowledged=… anomalies=… seed=…". Run: make chaos
// (CHAOS_TIME=3m, CHAOS_SEED=n to replay a schedule).
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
	fmt.Printf("chaos: seed=%d time=%v\n", seed, *chaosTime)
	wasm := tu.BuildWasm(t, "examples/count")

	phases := []chaosPhase{
		{name: "disk", storage: "disk", kinds: []string{"kill", "kill", "kill", "pause", "pause", "restart-all",
			"clock-skew", "clock-skew", "disk-full", "disk-full", "disk-full"}},
		{name: "mem", storage: "mem", kinds: []string{"power-loss-all", "power-loss-all", "power-loss-all",
			"power-loss-one", "power-loss-one", "crash", "crash", "crash-all", "pause", "clock-skew", "clock-skew"}},
	}
	var total chaosResult
	for i, ph := range phases {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		fmt.Printf("chaos: phase %s (%s storage)\n", ph.name, ph.storage)
		total.add(runChaosPhase(t, ph, *chaosTime/time.Duration(len(phases)), rng, seed, wasm))
	}

	if out := total.report.String(); out != "" {
		fmt.Println(strings.TrimRight(out, "\n"))
	}
	fmt.Printf("anomaly class=%s count=%d\n", ledgerClass, total.ledgerBad)
	fmt.Printf("anomaly class=%s count=%d\n", drainClass, total.drainBad)
	fmt.Printf("anomaly class=%s count=%d\n", linClass, total.lin.illegal)
	fmt.Printf("chaos: linearizability %s\n", total.lin)
	anomalies := total.report.Total() + total.ledgerBad + total.drainBad + total.lin.illegal
	if total.report.Total() > 0 {
		t.Errorf("the histories have %d anomalies (seed %d)", total.report.Total(), seed)
	}
	if total.lin.illegal > 0 {
		t.Errorf("%d linearizability windows are not linearizable (seed %d)", total.lin.illegal, seed)
	}
	if total.acked == 0 {
		t.Error("no produce was acknowledged")
	}
	fmt.Printf("chaos: faults=%d\n", total.faults)
	fmt.Printf("chaos: ops=%d acknowledged=%d anomalies=%d seed=%d\n", total.ops, total.acked, anomalies, seed)
}

// chaosPhase is one part of the run: a cluster with its storage, and the
// faults drawn there (network faults are added when namespaces work).
type chaosPhase struct {
	name, storage string
	kinds         []string
}

// chaosResult is what a phase counted.
type chaosResult struct {
	report              history.Report
	ledgerBad, drainBad int
	lin                 linResult
	ops, acked, faults  int
}

func (r *chaosResult) add(o chaosResult) {
	if r.report.Anomalies == nil {
		r.report.Anomalies = append([]history.Anomaly(nil), o.report.Anomalies...)
		for i := range r.report.Anomalies {
			r.report.Anomalies[i].Examples = nil
		}
	} else {
		for i := range r.report.Anomalies {
			a, b := &r.report.Anomalies[i], o.report.Anomalies[i]
			a.Count += b.Count // the examples were printed with their phase
			a.Examples = nil
		}
	}
	r.ledgerBad += o.ledgerBad
	r.lin.windows += o.lin.windows
	r.lin.ok += o.lin.ok
	r.lin.illegal += o.lin.illegal
	r.lin.unknown += o.lin.unknown
	r.lin.ops += o.lin.ops
	r.drainBad += o.drainBad
	r.ops += o.ops
	r.acked += o.acked
	r.faults += o.faults
}

func runChaosPhase(t *testing.T, ph chaosPhase, length time.Duration, rng *rand.Rand, seed uint64, wasm []byte) chaosResult {
	var kafkaSeeds []string
	c := &cluster{t: t, procs: tu.StartWeirClusterWith(t, 3, func(int) []string {
		kafka := tu.FreeAddr(t)
		kafkaSeeds = append(kafkaSeeds, kafka)
		return []string{"--test-faults", tu.FreeAddr(t), "--test-faults-storage", ph.storage,
			"--kafka-addr", kafka, "--kafka-advertised-addr", kafka}
	})}
	c.waitUp()
	// Namespaces first: moving the nodes kills them, and a node with its
	// data in memory comes back empty (here, before anything was written).
	net, err := isolateCluster(t, c)
	if err != nil {
		fmt.Printf("chaos: no network partitions: %v\n", err)
		net = nil
	}
	c.waitUp()
	for _, tp := range []string{"f", "h", kafkaTopic, pipeIn, pipeOut} {
		if r := tu.Do(t, "POST", c.url(1)+"/v1/topics", map[string]any{"name": tp, "partitions": 3}); r.Status != 201 {
			t.Fatalf("create %s: %d %s", tp, r.Status, r.Body)
		}
	}
	if r := tu.Do(t, "POST", c.url(1)+"/v1/topics/h/subscriptions", map[string]any{"name": chaosSub,
		"visibility_timeout_ms": 10000, "backoff": map[string]any{"initial_ms": 0, "max_ms": 0, "multiplier": 1}}); r.Status != 201 {
		t.Fatalf("create subscription: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "PUT", c.url(1)+"/v1/modules/count", wasm, "application/wasm"); r.Status != 201 {
		t.Fatalf("upload count: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", c.url(1)+"/v1/pipelines", map[string]any{"name": chaosPipeline, "module": "count",
		"inputs": []string{pipeIn}, "outputs": []string{pipeOut}, "guarantee": "exactly_once",
		"on_error": map[string]any{"max_attempts": 100, "max_backoff_ms": 1000},
		"limits":   map[string]any{"batch_timeout_ms": 60000}}); r.Status != 201 {
		t.Fatalf("create pipeline: %d %s", r.Status, r.Body)
	}
	c.waitSettled(c.url(1))
	restart := restarter(net, c)
	if ph.storage == "mem" {
		restart = func(node int) { // a real kill took the node's disk: the run cannot go on
			t.Fatalf("node %d exited with its data in memory: %s", node, lastLine(c.procs[node-1]))
		}
	}
	ctl := newFaultCtl(c, net)

	rec := history.NewRecorder(nil)
	load := tu.StartLoad(t, c.urls(0), "f", 3, 3) // the idempotent producers of the short fault tests
	w := startWorkload(rec, c.urls(0), "h", 3, 4, 2, seed)
	kw := startKafkaWorkload(t, rec, kafkaSeeds, kafkaTopic, 3)
	lin := startLinWindows(c.urls(0), ph.name, seed)

	kinds := ph.kinds
	if net != nil {
		kinds = append(kinds, "partition", "partition", "partition-oneway", "blackhole", "delay")
	}
	mustCtl := func(err error) {
		if err != nil {
			t.Fatalf("fault control: %v", err)
		}
	}
	waitAll := func() {
		for _, p := range c.procs {
			p.WaitReady(90 * time.Second)
		}
	}
	faults := 0
	end := time.Now().Add(length)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(2+rng.IntN(4)) * time.Second)
		reviveDead(c, restart)
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
		switch kind := kinds[rng.IntN(len(kinds))]; kind {
		case "kill":
			fmt.Printf("fault kind=kill node=%d target=%s down=%v\n", victim, target, hold)
			p.Kill()
			load.SetURLs(c.urls(uint64(victim)))
			time.Sleep(hold)
			restart(victim)
			p.WaitReady(90 * time.Second)
			load.SetURLs(c.urls(0))
		case "crash":
			fmt.Printf("fault kind=kill mode=in-process node=%d target=%s\n", victim, target)
			mustCtl(ctl.post(victim, "/crash"))
			p.WaitReady(90 * time.Second)
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
			waitAll()
		case "crash-all":
			fmt.Printf("fault kind=restart-all mode=in-process\n")
			mustCtl(ctl.each("/crash"))
			waitAll()
		case "power-loss-all":
			fmt.Printf("fault kind=power-loss nodes=all\n")
			mustCtl(ctl.powerLossAll())
			waitAll()
		case "power-loss-one":
			fmt.Printf("fault kind=power-loss nodes=%d target=%s\n", victim, target)
			mustCtl(ctl.post(victim, "/power-loss"))
			p.WaitReady(90 * time.Second)
		case "clock-skew":
			off := time.Duration(5+rng.IntN(296)) * time.Second
			if rng.IntN(2) == 0 {
				off = -off
			}
			fmt.Printf("fault kind=clock-skew node=%d target=%s offset=%v for=%v\n", victim, target, off, hold)
			mustCtl(ctl.post(victim, "/clock?offset="+off.String()))
			time.Sleep(hold)
			mustCtl(ctl.post(victim, "/clock?offset=0s"))
		case "disk-full":
			fault := "full"
			if rng.IntN(3) == 0 {
				fault = "eio"
			}
			fmt.Printf("fault kind=disk-full node=%d target=%s error=%s for=%v\n", victim, target, fault, hold)
			// A node whose log write fails stops (Dragonboat), and it may
			// do so before it answers: an error is the fault taking effect
			// when the process ends.
			if err := ctl.post(victim, "/disk?fault="+fault); err != nil && !p.Exited(30*time.Second) {
				t.Fatalf("fault control: %v", err)
			}
			time.Sleep(hold)
			if err := ctl.post(victim, "/disk?fault=none"); err != nil && p.Alive() {
				t.Fatalf("fault control: %v", err)
			}
			reviveDead(c, restart)
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

	linHist := lin.Stop() // the windows end with the faults

	// Heal, then fence: every node up and ready and the cluster settled
	// before the clients stop and the drain starts.
	if net != nil {
		net.heal()
	}
	reviveDead(c, restart)
	for i := range c.procs {
		ctl.post(i+1, "/clock?offset=0s")
	}
	waitAll()
	c.waitSettled(c.url(1))
	w.Stop()
	kw.Stop(t)
	load.Stop(t)
	c.waitSettled(c.url(1))

	// The final drain: every partition of h and pin from every replica, up
	// to the high watermark the leader reports.
	drainBad := 0
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pinHW := make([]int64, 3)
	for _, topic := range []string{"h", kafkaTopic, pipeIn} {
		for part := 0; part < 3; part++ {
			var hw int64
			tu.Eventually(t, 60*time.Second, fmt.Sprintf("the high watermark of %s/%d", topic, part), func() bool {
				v, err := highWatermark(ctx, c.url(1), topic, part)
				hw = v
				return err == nil
			})
			if topic == pipeIn {
				pinHW[part] = hw
			}
			for node := 1; node <= len(c.procs); node++ {
				got, err := drain(ctx, rec, c.url(uint64(node)), fmt.Sprintf("drain-n%d", node), topic, part, hw)
				if err != nil {
					drainBad++
					t.Errorf("drain of %s/%d on node %d: %v (reached %d of %d)", topic, part, node, err, got, hw)
				}
			}
		}
	}

	drainBad += drainLinWindows(ctx, t, c.url(1), linHist)

	// The pipeline: once its position reached the input's end with no
	// output pending (a fence), count inputs and outputs per key.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		ok, why := pipelineCaughtUp(ctx, c.url(1), pinHW)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline did not catch up with its input: %s", why)
		}
		time.Sleep(200 * time.Millisecond) // polling the fence; the deadline bounds it
	}
	var in, out []kv
	for part := 0; part < 3; part++ {
		r, err := readKV(ctx, c.url(1), pipeIn, part, pinHW[part])
		if err != nil {
			t.Fatalf("read the pipeline's input: %v", err)
		}
		in = append(in, r...)
		hw, err := highWatermark(ctx, c.url(1), pipeOut, part)
		if err != nil {
			t.Fatalf("high watermark of %s/%d: %v", pipeOut, part, err)
		}
		r, err = readKV(ctx, c.url(1), pipeOut, part, hw)
		if err != nil {
			t.Fatalf("read the pipeline's output: %v", err)
		}
		out = append(out, r...)
	}
	recordPipelineCounts(rec, in, out)

	h := rec.History()
	path := *chaosHistory
	if path == "" {
		path = filepath.Join(os.TempDir(), fmt.Sprintf("weir-chaos-%d.jsonl", seed))
	}
	path = strings.TrimSuffix(path, ".jsonl") + "-" + ph.name + ".jsonl"
	if f, err := os.Create(path); err == nil {
		h.WriteTo(f)
		f.Close()
		fmt.Printf("chaos: history of phase %s in %s\n", ph.name, path)
	}
	rep := history.Check(h, history.Config{Drained: true})
	linRes := checkLinWindows(ph.name, strings.TrimSuffix(path, ".jsonl"), linHist)
	fmt.Printf("chaos: phase %s: linearizability %s\n", ph.name, linRes)
	ledgerBad := 0
	tu.CheckTopic(countingTB{TB: t, n: &ledgerBad}, load.Ledger, "f", c.url(1), c.url)
	for _, a := range rep.Anomalies {
		if a.Count > 0 {
			fmt.Printf("chaos: phase %s: anomaly class=%s count=%d\n", ph.name, a.Class, a.Count)
			for _, e := range a.Examples {
				fmt.Printf("  %s\n", e)
			}
		}
	}
	fmt.Printf("chaos: phase %s: faults=%d history-ops=%d acknowledged=%d ledger-acks=%d anomalies=%d pipeline inputs=%d outputs=%d\n",
		ph.name, faults, len(h.Calls()), countOK(h), load.Ledger.Count(), rep.Total()+ledgerBad+drainBad+linRes.illegal, len(in), len(out))
	return chaosResult{report: rep, ledgerBad: ledgerBad, drainBad: drainBad, lin: linRes, faults: faults,
		ops: len(h.Calls()) + load.Ledger.Count() + linRes.ops, acked: countOK(h) + load.Ledger.Count()}
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
