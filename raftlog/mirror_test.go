package raftlog

import (
	"fmt"
	"testing"

	"github.com/weir-broker/weir/core"
)

// A mirror partition starts where its source's log starts, takes an
// append only at its next offset (a second one at the same base is
// refused, so a retry or a second puller never duplicates), keeps the
// records' timestamps, and all of it survives a reopen.
func TestMirrorAppendConditional(t *testing.T) {
	t.Parallel()
	h := newSMHarness(t)
	mirror := func(base int64, n int) (byte, int64) {
		recs := make([]core.Record, n)
		for i := range recs {
			recs[i] = core.Record{Value: []byte(fmt.Sprintf("m%d", base+int64(i))), Timestamp: 777, Key: []byte("k"),
				Headers: []core.Header{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}}}
		}
		inner := core.AppendRecords(encodeAppend(nil, "", 0, 999, 999, n, nil), recs)
		r := h.apply(encodeMirrorAppend(base, inner))
		return r.Data[0], int64(r.Value)
	}
	if r := h.apply(encodeMirrorStart(50)); r.Value != 50 {
		t.Fatalf("start at 50: %+v", r)
	}
	if got := h.p.hwm.Load(); got != 50 || h.p.logStart.Load() != 50 {
		t.Fatalf("after start: hwm %d, log start %d; want 50, 50", got, h.p.logStart.Load())
	}
	if c, next := mirror(0, 1); c != resultBaseOffset || next != 50 {
		t.Fatalf("append at 0 of a log at 50: code %d next %d", c, next)
	}
	if c, base := mirror(50, 3); c != resultOK || base != 50 {
		t.Fatalf("append at 50: code %d base %d", c, base)
	}
	if c, next := mirror(50, 3); c != resultBaseOffset || next != 53 {
		t.Fatalf("a repeated append at 50: code %d next %d", c, next)
	}
	if r := h.apply(encodeMirrorStart(10)); r.Value != 53 {
		t.Fatalf("a start below the next offset must be a no-op: %+v", r)
	}
	check := func(when string) {
		t.Helper()
		if hwm, ls := h.p.hwm.Load(), h.p.logStart.Load(); hwm != 53 || ls != 50 {
			t.Fatalf("%s: hwm %d, log start %d; want 53, 50", when, hwm, ls)
		}
		recs, err := readRecords(h.p.seg, 50, 10, 1<<20)
		if err != nil || len(recs) != 3 {
			t.Fatalf("%s: read %d records, %v", when, len(recs), err)
		}
		for i, r := range recs {
			if r.Offset != 50+int64(i) || r.Timestamp != 777 || string(r.Value) != fmt.Sprintf("m%d", 50+i) ||
				len(r.Headers) != 2 || r.Headers[0].Key != "b" || r.Headers[1].Key != "a" {
				t.Fatalf("%s: record %d: %+v", when, i, r)
			}
		}
	}
	check("applied")
	h.p.Close()
	h.open()
	check("reopened")
	if c, base := mirror(53, 1); c != resultOK || base != 53 {
		t.Fatalf("append at 53 after reopen: code %d base %d", c, base)
	}
}
