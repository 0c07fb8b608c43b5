package raftlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/vfs"

	"github.com/weir-broker/weir/core"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestPowerLossKeepsAcknowledgedRecords cuts the power of a whole
// three-node cluster at once and checks that nothing acknowledged is lost.
//
// Every file of every node — Dragonboat's NodeHost directory, its tan LogDB
// and snapshots, and Weir's segments, checkpoints and roles.json — lives in
// one strict in-memory filesystem (vfs.NewStrictMem, through Config.FS), each
// node under a directory of its own. The strict filesystem keeps, beside
// each file's content, the content it had at its last fsync, and beside each
// directory's entries, those it had at its last directory fsync.
//
// Load: one producer per partition (3 partitions, 3 replicas each) sends
// single records and batches of up to 7, each request through the next
// node (a follower proposes to the leader inside Raft); every tenth request
// is a state transaction (records plus a key); a committer moves a consumer
// group's offset up (the metadata shard). An operation counts as
// acknowledged when it returned success before the power failed. Half-way,
// every replica of every shard takes a snapshot and compacts its Raft log
// up to it, so the records acknowledged before then survive only in the
// segment files and checkpoints, not in the Raft log.
//
// The power failure: at one instant (SetIgnoreSyncs(true), which takes the
// lock every fsync takes) no fsync of any node takes effect any more. The
// nodes are then closed — whatever they write meanwhile, or during the
// close, is lost with the rest — and ResetToSyncedState drops every write,
// file creation, rename and removal that no fsync made durable, on every
// node. Acknowledgements that arrive after the instant do not count (the
// flag is set before the syncs stop, so a counted acknowledgement had all its
// fsyncs done before). All three nodes restart on what is left.
//
// Checked, on every replica after it caught up (a ReadIndex round): every
// acknowledged record at its acknowledged offset, once; the high watermark
// at or above the highest acknowledged offset + 1; the replicas equal; each
// partition's state key at or above its last acknowledged value; the
// group's committed offset at or above the last acknowledged commit.
//
// The test fails when an fsync is missing. Verified by hand, each mutation
// applied alone and reverted, three runs each:
//   - segment.Log.Sync without its f.Sync (the fsync the snapshot relies on
//     before Dragonboat compacts the Raft log): every run failed, e.g.
//     "node 1 pl/1: high watermark 20 below the acknowledged 129", and
//     acknowledged records missing or replaced at their offsets;
//   - the LogDB's fsyncs dropped (a wrapper vfs.FS whose files under
//     <node>/raft/ ignore Sync): every run failed; the metadata shard's
//     Raft log lost the topic, and "node 1 hosts pl/0" timed out;
//   - segment.Open creating its directory without fsyncing the parents (as
//     it did before this test): every run failed; a restarted replica's
//     partition directory was gone and Dragonboat panicked with
//     "ss.OnDiskIndex (71) > s.onDiskInitIndex (0)".
//
// Not covered: retention (segment.Log.DeleteBefore). The in-memory
// filesystem refuses to remove an open file (Windows semantics), and a
// segment is still open when retention unlinks it.
func TestPowerLossKeepsAcknowledgedRecords(t *testing.T) {
	const (
		topic      = "pl"
		partitions = 3
		phase1     = 200 // acknowledged appends and transactions before the snapshots
		phase2     = 15  // more of them before the power fails
	)
	fs := vfs.NewStrictMem()
	addrs := map[uint64]string{1: tu.FreeAddr(t), 2: tu.FreeAddr(t), 3: tu.FreeAddr(t)}
	dataDir := func(id uint64) string { return fmt.Sprintf("/node%d", id) }
	// The machines as installed: each node's data directory exists, durably.
	for id := range addrs {
		if err := fs.MkdirAll(dataDir(id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	syncDir(t, fs, "/")

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() []*Host {
		var hosts []*Host
		for id := uint64(1); id <= 3; id++ {
			h, err := New(Config{
				NodeID: id, DataDir: dataDir(id), RaftAddr: addrs[id], HTTPAddr: "127.0.0.1:1",
				Peers: addrs, FS: fs, SegmentBytes: 4 << 10, Logger: quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			hosts = append(hosts, h)
		}
		for _, h := range hosts {
			tu.Eventually(t, 30*time.Second, fmt.Sprintf("node %d ready", h.NodeID()), h.Ready)
		}
		return hosts
	}
	hosts := start()
	closeAll := func() {
		for _, h := range hosts {
			h.Close()
		}
	}
	defer func() { closeAll() }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := hosts[0].CreateTopic(ctx, core.TopicConfig{Name: topic, Partitions: partitions, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	awaitReplicas := func() {
		for _, h := range hosts {
			for p := range partitions {
				tu.Eventually(t, 30*time.Second, fmt.Sprintf("node %d hosts %s/%d", h.NodeID(), topic, p),
					func() bool { return h.HostsReplica(topic, p) })
			}
		}
	}
	awaitReplicas()

	// The load. powerOff is set before the syncs stop: an acknowledgement
	// seen while it is clear had all its fsyncs done.
	var (
		powerOff atomic.Bool
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		acks     atomic.Int64 // acknowledged appends and transactions
		led      = newPowerLedger(partitions)
	)
	counted := func() bool { return !powerOff.Load() }
	for p := range partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h := hosts[i%len(hosts)]
				pl, err := h.Partition(topic, p)
				if err != nil {
					continue // not hosted yet; the stop channel bounds the loop
				}
				actx, acancel := context.WithTimeout(ctx, 10*time.Second)
				if i%10 == 9 {
					val := fmt.Sprintf("p%d-%d-t", p, i)
					res, err := pl.ApplyTxn(actx, &core.StateTxn{
						Ops:    []core.StateOp{{Key: "n", Value: []byte(strconv.Itoa(i))}},
						Append: &core.AppendBatch{Timestamp: 1, Records: []core.Record{{Value: []byte(val)}}},
					})
					if err == nil && res.Applied && counted() {
						led.ack(p, res.BaseOffset, []string{val})
						led.state(p, i)
						acks.Add(1)
					}
				} else {
					n := 1
					if i%2 == 1 {
						n = 1 + i%7
					}
					vals := make([]string, n)
					recs := make([]core.Record, n)
					for j := range n {
						vals[j] = fmt.Sprintf("p%d-%d-%d", p, i, j)
						recs[j] = core.Record{Value: []byte(vals[j])}
					}
					res, err := pl.Append(actx, &core.AppendBatch{Timestamp: 1, Records: recs})
					if err == nil && counted() {
						led.ack(p, res.BaseOffset, vals)
						acks.Add(1)
					}
				}
				acancel()
			}
		}()
	}
	wg.Add(1)
	go func() { // the group committer
		defer wg.Done()
		for k := int64(1); ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			err := hosts[k%3].CommitOffsets(cctx, "g", []core.GroupOffset{{Topic: topic, Partition: 0, Offset: k}})
			ccancel()
			if err == nil && counted() {
				led.commit(k)
			}
		}
	}()
	stopLoad := func() {
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); done <- struct{}{} }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("the load did not stop")
		}
	}
	awaitAcks := func(n int64) {
		tu.Eventually(t, 60*time.Second, fmt.Sprintf("%d acknowledgements", n), func() bool { return acks.Load() >= n })
	}

	// Phase 1, then a snapshot of every replica of every shard with its Raft
	// log compacted up to it: from here the records acknowledged so far
	// live in the segment files and checkpoints only.
	awaitAcks(phase1)
	shards := []uint64{metaShardID}
	for p := range partitions {
		pm, err := hosts[0].partitionMeta(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		shards = append(shards, pm.ShardID)
	}
	for _, h := range hosts {
		for _, s := range shards {
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := h.nh.SyncRequestSnapshot(sctx, s, dragonboat.SnapshotOption{OverrideCompactionOverhead: true, CompactionOverhead: 0})
			scancel()
			if err != nil && !errors.Is(err, dragonboat.ErrRejected) {
				t.Fatalf("snapshot of shard %d on node %d: %v", s, h.NodeID(), err)
			}
		}
	}

	// Phase 2, then the power fails on every node at once, with requests in
	// flight.
	awaitAcks(acks.Load() + phase2)
	powerOff.Store(true)
	fs.SetIgnoreSyncs(true)
	before := make([]int64, partitions)
	for p := range partitions {
		pl, _ := hosts[0].Partition(topic, p)
		before[p] = pl.HighWatermark()
	}
	stopLoad()
	closeAll()
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	t.Logf("power lost after %d acknowledged appends and transactions; high watermarks seen on node 1 %v", acks.Load(), before)

	hosts = start()
	awaitReplicas()
	for p := range partitions {
		want := led.partition(p)
		var logs [][]string
		for _, h := range hosts {
			pl, err := h.Partition(topic, p)
			if err != nil {
				t.Fatalf("node %d: %v", h.NodeID(), err)
			}
			vals := readAll(t, ctx, pl) // catches up first (a ReadIndex round)
			logs = append(logs, vals)
			seen := map[string]int{}
			for _, v := range vals {
				seen[v]++
			}
			for off, v := range want.records {
				if off >= int64(len(vals)) || vals[off] != v {
					got := "nothing"
					if off < int64(len(vals)) {
						got = strconv.Quote(vals[off])
					}
					t.Errorf("node %d %s/%d: acknowledged %q at offset %d, found %s (high watermark %d)",
						h.NodeID(), topic, p, v, off, got, len(vals))
				} else if seen[v] != 1 {
					t.Errorf("node %d %s/%d: %q is in the log %d times", h.NodeID(), topic, p, v, seen[v])
				}
			}
			if hwm := pl.HighWatermark(); hwm < want.maxEnd {
				t.Errorf("node %d %s/%d: high watermark %d below the acknowledged %d", h.NodeID(), topic, p, hwm, want.maxEnd)
			}
			if v, _ := pl.StateGet("n"); want.state >= 0 && atoiOr(string(v), -1) < want.state {
				t.Errorf("node %d %s/%d: state n = %q, acknowledged %d", h.NodeID(), topic, p, v, want.state)
			}
		}
		for i := 1; i < len(logs); i++ {
			if fmt.Sprint(logs[i]) != fmt.Sprint(logs[0]) {
				t.Errorf("%s/%d: node %d's log (%d records) differs from node %d's (%d)",
					topic, p, hosts[i].NodeID(), len(logs[i]), hosts[0].NodeID(), len(logs[0]))
			}
		}
		t.Logf("%s/%d: %d acknowledged records, high watermark %d before the power loss and %d after",
			topic, p, len(want.records), before[p], len(logs[0]))
	}
	if c := led.committed(); c > 0 {
		for _, h := range hosts {
			tu.Eventually(t, 30*time.Second, fmt.Sprintf("node %d's group offset ≥ %d", h.NodeID(), c), func() bool {
				for _, o := range h.GroupOffsets("g") {
					if o.Topic == topic && o.Partition == 0 && o.Offset >= c {
						return true
					}
				}
				return false
			})
		}
	}
}

// powerLedger is what the power-loss test's clients were told.
type powerLedger struct {
	mu     sync.Mutex
	parts  []powerPartition
	offset int64
}

type powerPartition struct {
	records map[int64]string // offset → value acknowledged there
	maxEnd  int64            // highest acknowledged offset + 1
	state   int              // last acknowledged value of key "n", -1 none
}

func newPowerLedger(n int) *powerLedger {
	l := &powerLedger{parts: make([]powerPartition, n)}
	for i := range l.parts {
		l.parts[i] = powerPartition{records: map[int64]string{}, state: -1}
	}
	return l
}

func (l *powerLedger) ack(p int, base int64, vals []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for j, v := range vals {
		l.parts[p].records[base+int64(j)] = v
	}
	l.parts[p].maxEnd = max(l.parts[p].maxEnd, base+int64(len(vals)))
}

func (l *powerLedger) state(p, v int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parts[p].state = max(l.parts[p].state, v)
}

func (l *powerLedger) commit(k int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.offset = max(l.offset, k)
}

func (l *powerLedger) committed() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.offset
}

func (l *powerLedger) partition(p int) powerPartition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parts[p]
}

// readAll reads a partition from offset 0 to its high watermark.
func readAll(t *testing.T, ctx context.Context, pl core.PartitionLog) []string {
	t.Helper()
	var vals []string
	// After the restart the shards elect leaders; on a loaded machine that
	// may outlast one read's catch-up wait (5 s): retry, within a deadline.
	deadline := time.Now().Add(90 * time.Second)
	for {
		recs, err := pl.Read(ctx, int64(len(vals)), 1000, 1<<20)
		if errors.Is(err, core.ErrUnavailable) && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			t.Fatalf("read from %d: %v", len(vals), err)
		}
		if len(recs) == 0 {
			return vals
		}
		for _, r := range recs {
			if r.Offset != int64(len(vals)) {
				t.Fatalf("read from %d: record at offset %d", len(vals), r.Offset)
			}
			vals = append(vals, string(r.Value))
		}
	}
}

func syncDir(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	d, err := fs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
