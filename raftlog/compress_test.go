package raftlog

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	tu "github.com/weir-broker/weir/internal/testutil"
	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// An append that asks for compression is stored compressed when that saves
// enough, plain otherwise; either way reads give back the records as sent,
// and a reopen replays the producer table from compressed batches.
func TestCompressedAppends(t *testing.T) {
	t.Parallel()
	h := newSMHarness(t)
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	recs := func(val func(i int) []byte) []core.Record {
		out := make([]core.Record, 20)
		for i := range out {
			out[i] = core.Record{Key: []byte{'k', byte('0' + i%10)}, Value: val(i), Timestamp: int64(1000 + i),
				Headers: []core.Header{{Key: "traceparent", Value: "00-x"}}}
		}
		return out
	}
	repetitive := func(i int) []byte { return bytes.Repeat([]byte{'x'}, 1000+i) }
	random := func(int) []byte { return noise(1000) }
	batches := []struct {
		b        core.AppendBatch
		wantKind uint8
	}{
		{core.AppendBatch{ProducerID: "p", Sequence: 0, Timestamp: 1, Records: recs(repetitive), Compress: true}, kindRecordsS2},
		{core.AppendBatch{Timestamp: 1, Records: recs(random), Compress: true}, kindRecords},
		{core.AppendBatch{Timestamp: 1, Records: recs(repetitive)}, kindRecords},
		{core.AppendBatch{ProducerID: "p", Sequence: 20, Timestamp: 1, Records: recs(repetitive), Compress: true}, kindRecordsS2},
	}
	var want []core.Record
	var cmds [][]byte
	for i := range batches {
		b := &batches[i].b
		cmd, err := appendCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		if compressed := cmd[1] == cmdAppendS2; compressed != (batches[i].wantKind == kindRecordsS2) {
			t.Fatalf("batch %d: compressed command %v, want kind %d", i, compressed, batches[i].wantKind)
		}
		if res := h.apply(cmd); res.Data[0] != resultOK || res.Value != uint64(len(want)) {
			t.Fatalf("batch %d: result %v at %d, want OK at %d", i, res.Data, res.Value, len(want))
		}
		cmds = append(cmds, cmd)
		want = append(want, b.Records...)
	}
	var kinds []uint8
	err := h.p.seg.Read(0, 1<<30, func(b segment.Batch) bool {
		kinds = append(kinds, b.Kind)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range batches {
		if kinds[i] != batches[i].wantKind {
			t.Fatalf("segment batch %d has kind %d, want %d (kinds %v)", i, kinds[i], batches[i].wantKind, kinds)
		}
	}
	check := func() {
		t.Helper()
		for _, from := range []int64{0, 5, 25, 70} {
			got, err := readRecords(h.p.seg, from, 1000, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want)-int(from) {
				t.Fatalf("read from %d: %d records, want %d", from, len(got), len(want)-int(from))
			}
			for i, r := range got {
				w := want[int(from)+i]
				if r.Offset != from+int64(i) || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) ||
					r.Timestamp != w.Timestamp || len(r.Headers) != 1 || r.Headers[0] != w.Headers[0] {
					t.Fatalf("offset %d: got %+v", from+int64(i), r)
				}
			}
		}
	}
	check()

	// The producer table comes back from the compressed batches: a retry of
	// either is a duplicate at its original offset, the next sequence is 40.
	h.p.Close()
	h.open()
	check()
	if res := h.apply(cmds[3]); res.Data[0] != resultDuplicate || res.Value != 60 {
		t.Fatalf("retry after reopen: result %v at %d, want a duplicate at 60", res.Data, res.Value)
	}
	next, err := appendCommand(&core.AppendBatch{ProducerID: "p", Sequence: 41, Timestamp: 1, Records: recs(repetitive), Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	if res := h.apply(next); res.Data[0] != resultSequence {
		t.Fatalf("sequence 41 after 40: result %v, want a sequence error", res.Data)
	}
}

// A corrupt compressed records part is an error on read, not a panic or a
// huge allocation.
func TestDecompressRecordsRejectsCorruptInput(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{
		nil,
		{0xff, 0xff, 0xff, 0xff, 0x7f},    // claims ~34 GB
		{0x10, 0x00, 0x01, 0x02},          // claims 16 bytes, holds a broken literal
		{0x80, 0x80, 0x80, 0x80, 0x02, 0}, // claims 512 MiB, above the bound
	} {
		if _, err := decompressRecords(in); err == nil {
			t.Fatalf("decompressRecords(%x) succeeded", in)
		}
	}
}

// The topic's compression setting decides over the batch's own wish: s2
// compresses every batch, uncompressed none, producer what asks for it.
func TestTopicCompressionSetting(t *testing.T) {
	h := startHost(t, t.TempDir(), tu.FreeAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	val := bytes.Repeat([]byte("compressible "), 80)
	stored := func(setting string, ask bool) int64 {
		t.Helper()
		name := fmt.Sprintf("c-%s-%v", setting, ask)
		if _, err := h.CreateTopic(ctx, core.TopicConfig{Name: name, Partitions: 1, ReplicationFactor: 1, Compression: setting}); err != nil {
			t.Fatal(err)
		}
		pl, err := h.Partition(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		tu.Eventually(t, 20*time.Second, "a leader for "+name, pl.IsLeader)
		recs := make([]core.Record, 50)
		for i := range recs {
			recs[i] = core.Record{Value: val}
		}
		if _, err := pl.Append(ctx, &core.AppendBatch{Timestamp: 1, Records: recs, Compress: ask}); err != nil {
			t.Fatal(err)
		}
		// Queued appends follow the setting too.
		w, err := pl.(core.AppendProposer).ProposeAppend(&core.AppendBatch{Timestamp: 1, Records: recs, Compress: ask})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := pl.Read(ctx, 0, 1000, 1<<24)
		if err != nil || len(got) != 100 || !bytes.Equal(got[99].Value, val) {
			t.Fatalf("%s: read %d records, %v", name, len(got), err)
		}
		var n int64
		for _, s := range pl.Segments() {
			n += s.Bytes
		}
		return n
	}
	plain := int64(100 * len(val))
	for _, c := range []struct {
		setting    string
		ask, small bool
	}{
		{core.CompressionProducer, true, true},
		{core.CompressionProducer, false, false},
		{"", true, true}, // a topic from before the setting: producer
		{core.CompressionS2, false, true},
		{core.CompressionUncompressed, true, false},
	} {
		n := stored(c.setting, c.ask)
		if small := n < plain/4; small != c.small {
			t.Fatalf("compression %q, batch asks %v: %d bytes stored for %d bytes of values", c.setting, c.ask, n, plain)
		}
	}
}
