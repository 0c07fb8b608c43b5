package raftlog

import (
	"bytes"
	"fmt"
	"testing"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// smHarness applies entries to a partition state machine directly.
type smHarness struct {
	t     *testing.T
	dir   string
	p     *partitionSM
	index uint64
}

func newSMHarness(t *testing.T) *smHarness {
	h := &smHarness{t: t, dir: t.TempDir()}
	h.open()
	return h
}

func (h *smHarness) open() {
	h.p = newPartitionSM(100, h.dir, segment.Config{SegmentBytes: 1024, FS: newFS(nil)}, nil)
	idx, err := h.p.Open(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index = max(h.index, idx)
	h.t.Cleanup(func() { h.p.Close() })
}

func (h *smHarness) apply(cmd []byte) sm.Result {
	h.t.Helper()
	h.index++
	out, err := h.p.Update([]sm.Entry{{Index: h.index, Cmd: cmd}})
	if err != nil {
		h.t.Fatal(err)
	}
	return out[0].Result
}

func (h *smHarness) produce(n int) {
	for i := 0; i < n; i++ {
		recs := []core.Record{{Value: []byte(fmt.Sprintf("record %d with some padding to fill segments", i)), Timestamp: 1000}}
		cmd := encodeAppend(nil, "", 0, 1000, 1000, 1, nil)
		h.apply(core.AppendRecords(cmd, recs))
	}
}

// The manifest takes uploads that continue it and nothing else, local
// retention never drops what is not uploaded, the topic's retention drops
// remote entries, and all of it survives a reopen.
func TestTierManifestRules(t *testing.T) {
	t.Parallel()
	h := newSMHarness(t)
	h.produce(100)
	segs := h.p.seg.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	code := func(r sm.Result) byte { return r.Data[0] }
	add := func(base, next int64, key string) byte {
		return code(h.apply(encodeTierAdd(remoteSeg{Base: base, Next: next, MaxTs: 1000, Bytes: 10, Key: key})))
	}
	s0, s1, s2 := segs[0], segs[1], segs[2]
	if c := add(s1.BaseOffset, s1.NextOffset, "k1"); c != resultStale {
		t.Fatalf("an add with a gap before it: %d", c)
	}
	if c := add(s0.BaseOffset, s0.NextOffset, "k0"); c != resultOK {
		t.Fatalf("the first add: %d", c)
	}
	if c := add(s0.BaseOffset, s0.NextOffset, "k0-again"); c != resultStale {
		t.Fatalf("a second leader's add of the same range: %d", c)
	}
	if c := add(s1.BaseOffset, h.p.seg.NextOffset()+1, "k-future"); c != resultStale {
		t.Fatalf("an add past the applied log: %d", c)
	}
	if c := add(s1.BaseOffset, s1.NextOffset, "k1"); c != resultOK {
		t.Fatalf("the second add: %d", c)
	}
	// Reopen: the adds come back from their batches (no checkpoint yet).
	h.p.Close()
	h.open()
	if v := h.p.tier(); len(v.remote) != 2 || v.remote[1].Key != "k1" || h.p.remoteEnd.Load() != s1.NextOffset {
		t.Fatalf("after reopen the manifest is %+v", v.remote)
	}
	// Local retention asks past the uploads: only uploaded segments go.
	h.apply(encodeLocalTrim(s2.NextOffset))
	if got := h.p.localStart.Load(); got != s1.NextOffset {
		t.Fatalf("local start %d, want %d (the remote end)", got, s1.NextOffset)
	}
	if h.p.logStart.Load() != 0 || h.p.remoteEnd.Load() != s1.NextOffset {
		t.Fatalf("log start %d remote end %d", h.p.logStart.Load(), h.p.remoteEnd.Load())
	}
	// Reopen without a later checkpoint: the manifest is durable.
	h.p.Close()
	h.open()
	if h.p.logStart.Load() != 0 || h.p.remoteEnd.Load() != s1.NextOffset || h.p.localStart.Load() != s1.NextOffset {
		t.Fatalf("after reopen: start %d remote end %d local start %d", h.p.logStart.Load(), h.p.remoteEnd.Load(), h.p.localStart.Load())
	}
	// The topic's retention drops remote entries below it.
	h.apply(encodeTrim(s0.NextOffset))
	if v := h.p.tier(); len(v.remote) != 1 || v.remote[0].Key != "k1" || h.p.logStart.Load() != s1.BaseOffset {
		t.Fatalf("after trim: %+v, log start %d", v.remote, h.p.logStart.Load())
	}
	// An add right after the uploads goes on from there.
	if c := add(s1.NextOffset, s2.NextOffset, "k2"); c != resultOK {
		t.Fatalf("the third add: %d", c)
	}
}

// A replica recovered from a snapshot gets the manifest with the segments.
func TestTierManifestInSnapshot(t *testing.T) {
	t.Parallel()
	src := newSMHarness(t)
	src.produce(60)
	s0 := src.p.seg.Segments()[0]
	src.apply(encodeTierAdd(remoteSeg{Base: 0, Next: s0.NextOffset, MaxTs: 1000, Bytes: 10, Key: "k0"}))
	src.apply(encodeLocalTrim(s0.NextOffset))
	snap, err := src.p.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.p.SaveSnapshot(snap, &buf, nil); err != nil {
		t.Fatal(err)
	}
	dst := newSMHarness(t)
	if err := dst.p.RecoverFromSnapshot(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if v := dst.p.tier(); len(v.remote) != 1 || v.remote[0].Key != "k0" || v.uploadedEnd != s0.NextOffset {
		t.Fatalf("recovered manifest %+v", v)
	}
	if dst.p.logStart.Load() != 0 || dst.p.localStart.Load() != s0.NextOffset || dst.p.hwm.Load() != src.p.hwm.Load() {
		t.Fatalf("recovered offsets: start %d local %d hwm %d", dst.p.logStart.Load(), dst.p.localStart.Load(), dst.p.hwm.Load())
	}
}
