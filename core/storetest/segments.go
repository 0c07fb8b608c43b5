package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core"
)

// fillSegments appends batches of about 2 KiB (timestamps ts, ts+1, ...)
// until the log has at least n segments.
func fillSegments(t *testing.T, pl core.PartitionLog, n int, ts int64) {
	t.Helper()
	pad := strings.Repeat("x", 1000)
	for i := 0; len(pl.Segments()) < n; i++ {
		if i > n*MaxSegmentBytes/2000+10 {
			t.Fatalf("%d appends of 2 KiB made %d segments: segments must roll at %d bytes or less", i, len(pl.Segments()), MaxSegmentBytes)
		}
		appendOK(t, pl, &core.AppendBatch{Timestamp: ts + int64(i), Records: recs(pad, pad)})
	}
}

// checkSegments checks the invariants of a partition's segment list.
func checkSegments(t *testing.T, pl core.PartitionLog) []core.SegmentInfo {
	t.Helper()
	segs := pl.Segments()
	if len(segs) == 0 {
		t.Fatal("no segments: the active segment always exists")
	}
	eq(t, "first segment's base offset (the log start)", segs[0].BaseOffset, pl.LogStart())
	eq(t, "last segment's next offset (the high watermark)", segs[len(segs)-1].NextOffset, pl.HighWatermark())
	for i, s := range segs {
		if s.Active != (i == len(segs)-1) {
			t.Fatalf("segment %d of %d: Active %v; only the last is active", i, len(segs), s.Active)
		}
		if s.Bytes <= 0 || s.NextOffset < s.BaseOffset {
			t.Fatalf("segment %d: %+v", i, s)
		}
		if i > 0 && segs[i-1].NextOffset != s.BaseOffset {
			t.Fatalf("segments %d and %d are not contiguous: %+v %+v", i-1, i, segs[i-1], s)
		}
	}
	return segs
}

func testSegmentsAndTrim(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	ctx := ctxFor(t)
	fillSegments(t, pl, 5, 10000)
	segs := checkSegments(t, pl)
	for i, s := range segs[:len(segs)-1] {
		if s.MaxTimestamp < 10000 || i > 0 && s.MaxTimestamp < segs[i-1].MaxTimestamp {
			t.Fatalf("segment %d's MaxTimestamp %d: the largest record timestamp in it", i, s.MaxTimestamp)
		}
	}
	hwm := pl.HighWatermark()
	// A trim inside the first segment deletes nothing.
	if err := pl.TrimTo(ctx, segs[0].NextOffset-1); err != nil {
		t.Fatal(err)
	}
	eq(t, "log start after a trim inside the first segment", pl.LogStart(), 0)
	// A trim at the end of segment 1 deletes segments 0 and 1.
	if err := pl.TrimTo(ctx, segs[1].NextOffset); err != nil {
		t.Fatal(err)
	}
	eq(t, "log start after a trim of two segments", pl.LogStart(), segs[2].BaseOffset)
	eq(t, "high watermark after a trim", pl.HighWatermark(), hwm)
	after := checkSegments(t, pl)
	eq(t, "first segment after the trim", after[0], segs[2])
	_, err := pl.Read(ctx, segs[2].BaseOffset-1, 10, 0)
	var re *core.OffsetRangeError
	if !errors.As(err, &re) || re.LogStart != segs[2].BaseOffset {
		t.Fatalf("read below the log start = %v, want *OffsetRangeError with the new log start %d", err, segs[2].BaseOffset)
	}
	if rs := readAll(t, pl, pl.LogStart()); int64(len(rs)) != hwm-segs[2].BaseOffset {
		t.Fatalf("read %d records after the trim, want %d", len(rs), hwm-segs[2].BaseOffset)
	}
	// A trim past the end empties the log; offsets go on from there.
	if err := pl.TrimTo(ctx, hwm); err != nil {
		t.Fatal(err)
	}
	eq(t, "log start after trimming everything", pl.LogStart(), hwm)
	checkSegments(t, pl)
	if rs, err := pl.Read(ctx, hwm, 10, 0); err != nil || len(rs) != 0 {
		t.Fatalf("read of the emptied log = %v, %v", rs, err)
	}
	if res := appendOK(t, pl, &core.AppendBatch{Records: recs("next")}); res.BaseOffset != hwm {
		t.Fatalf("append after trimming everything at %d, want %d", res.BaseOffset, hwm)
	}
	eq(t, "offset for time 0 after the trims", must(t)(pl.OffsetForTime(ctx, 0)), hwm)
}

func must(t *testing.T) func(int64, error) int64 {
	return func(v int64, err error) int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// testRetentionByBytes runs core.RetentionPoint on the store's segments, as
// the broker does, and checks the outcome.
func testRetentionByBytes(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	fillSegments(t, pl, 6, 1)
	segs := checkSegments(t, pl)
	var total int64
	for _, s := range segs {
		total += s.Bytes
	}
	limit := total - segs[0].Bytes - segs[1].Bytes/2 // two segments must go
	cfg := core.TopicConfig{RetentionMs: -1, RetentionBytes: limit}
	off, ok := core.RetentionPoint(segs, cfg, 0)
	if !ok || off != segs[1].NextOffset {
		t.Fatalf("RetentionPoint = %d %v, want %d", off, ok, segs[1].NextOffset)
	}
	if err := pl.TrimTo(ctxFor(t), off); err != nil {
		t.Fatal(err)
	}
	after := checkSegments(t, pl)
	var left int64
	for _, s := range after {
		left += s.Bytes
	}
	if left > limit+int64(MaxSegmentBytes) || pl.LogStart() != off {
		t.Fatalf("after the trim: %d bytes (limit %d), log start %d (want %d)", left, limit, pl.LogStart(), off)
	}
	if _, ok := core.RetentionPoint(after, core.TopicConfig{RetentionMs: -1, RetentionBytes: -1}, 0); ok {
		t.Fatal("no limits must trim nothing")
	}
}
