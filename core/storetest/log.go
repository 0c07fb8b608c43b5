package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/weir-broker/weir/core"
)

func testAppendOffsets(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	in := []core.Record{
		{Key: []byte("k1"), Value: []byte("v1"), Headers: []core.Header{{Key: "h", Value: "1"}, {Key: "h", Value: "2"}}},
		{Value: []byte("v2"), Timestamp: 77},
		{Key: []byte{}, Value: nil},
	}
	b := &core.AppendBatch{Timestamp: 5000, Records: in}
	if res := appendOK(t, pl, b); res.BaseOffset != 0 || res.Duplicate {
		t.Fatalf("first append = %+v", res)
	}
	if res := appendOK(t, pl, &core.AppendBatch{Timestamp: 6000, Records: recs("v3", "v4")}); res.BaseOffset != 3 {
		t.Fatalf("second append = %+v, want base 3", res)
	}
	eq(t, "high watermark", pl.HighWatermark(), 5)
	eq(t, "log start", pl.LogStart(), 0)
	got := readAll(t, pl, 0)
	eqSlice(t, "values", values(got), []string{"v1", "v2", "", "v3", "v4"})
	r0 := got[0]
	if string(r0.Key) != "k1" || r0.Timestamp != 5000 || len(r0.Headers) != 2 || r0.Headers[1] != (core.Header{Key: "h", Value: "2"}) {
		t.Fatalf("record 0 = %+v: key, batch timestamp and headers (in order) must survive", r0)
	}
	eq(t, "a producer's timestamp", got[1].Timestamp, 77)
	if got[1].Key != nil || got[2].Key == nil || got[2].Value == nil || len(got[2].Value) != 0 {
		t.Fatalf("no key must read as nil, an empty key as empty, an empty value as empty: %+v %+v", got[1], got[2])
	}
	if pi, err := st.PartitionInfo(name(t, ""), 0); err != nil || pi.HighWatermark != 5 {
		t.Fatalf("PartitionInfo = %+v, %v; want high watermark 5", pi, err)
	}
	_, err := pl.Append(ctxFor(t), &core.AppendBatch{Timestamp: 1})
	wantErr(t, err, core.ErrBadRequest, "an append without records")
	eq(t, "high watermark after a refused append", pl.HighWatermark(), 5)
	// Reads are the caller's: changing them changes nothing stored.
	got[3].Value[0] = 'X'
	eq(t, "value after the caller changed its copy", string(readAll(t, pl, 3)[0].Value), "v3")
}

func testIdempotent(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	ctx := ctxFor(t)
	send := func(pid string, seq int64, vals ...string) (core.AppendResult, error) {
		return pl.Append(ctx, &core.AppendBatch{ProducerID: pid, Sequence: seq, Timestamp: 1000, Records: recs(vals...)})
	}
	must := func(res core.AppendResult, err error) core.AppendResult {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// A new producer may start at any sequence.
	if r := must(send("p", 10, "a", "b", "c")); r.BaseOffset != 0 || r.Duplicate {
		t.Fatalf("first batch %+v", r)
	}
	if r := must(send("p", 10, "a", "b", "c")); r.BaseOffset != 0 || !r.Duplicate {
		t.Fatalf("a retry must answer the original offsets as a duplicate: %+v", r)
	}
	if r := must(send("p", 13, "d")); r.BaseOffset != 3 || r.Duplicate {
		t.Fatalf("next batch %+v", r)
	}
	_, err := send("p", 20, "gap")
	var se *core.SequenceError
	if !errors.As(err, &se) || se.ProducerID != "p" || se.Expected != 14 || se.Got != 20 || !errors.Is(err, core.ErrOutOfOrderSequence) {
		t.Fatalf("a gap = %v, want *SequenceError{p, expected 14, got 20}", err)
	}
	_, err = send("p", 10, "a", "b")
	if !errors.As(err, &se) || se.Expected != 14 {
		t.Fatalf("a repeat with another record count = %v, want a sequence error", err)
	}
	must(send("q", 0, "other")) // producers are independent
	for i := int64(0); i < 5; i++ {
		must(send("p", 14+i, fmt.Sprint("e", i)))
	}
	// Only the last five batches are remembered.
	if r := must(send("p", 14, "e0")); !r.Duplicate || r.BaseOffset != 5 {
		t.Fatalf("a retry of the oldest remembered batch = %+v, want base 5", r)
	}
	_, err = send("p", 13, "d")
	if !errors.As(err, &se) || se.Expected != 19 {
		t.Fatalf("a retry of a forgotten batch = %v, want a sequence error expecting 19", err)
	}
	eq(t, "high watermark", pl.HighWatermark(), 10)
	eqSlice(t, "log", values(readAll(t, pl, 0)), []string{"a", "b", "c", "d", "other", "e0", "e1", "e2", "e3", "e4"})
}

// testReadLimits appends 3 batches of 10 records and reads with limits.
func testReadLimits(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	for b := 0; b < 3; b++ {
		var vals []string
		for i := 0; i < 10; i++ {
			vals = append(vals, fmt.Sprintf("%02d-%s", b*10+i, strings.Repeat("x", 70)))
		}
		appendOK(t, pl, &core.AppendBatch{Records: recs(vals...)})
	}
	ctx := ctxFor(t)
	size := readAll(t, pl, 0)[0].Size()
	for _, c := range []struct {
		from             int64
		maxRecs, maxByte int
		want             int // exact count; -1: between 1 and the byte limit
	}{
		{0, 5, 0, 5},
		{7, 5, 0, 5},    // across a batch boundary
		{25, 100, 0, 5}, // to the end
		{0, 0, 0, 30},   // maxRecords ≤ 0: the store's default (at least 30)
		{3, 100, 1, 1},  // at least one record, whatever maxBytes says
		{3, 100, size, 1},
		{3, 100, 5 * size, -1},
		{12, 100, 12 * size, -1},
	} {
		rs, err := pl.Read(ctx, c.from, c.maxRecs, c.maxByte)
		if err != nil {
			t.Fatalf("read(%d, %d, %d): %v", c.from, c.maxRecs, c.maxByte, err)
		}
		checkContiguous(t, rs, c.from)
		total := 0
		for _, r := range rs {
			total += r.Size()
		}
		switch {
		case c.want >= 0 && len(rs) != c.want:
			t.Fatalf("read(%d, %d, %d) returned %d records, want %d", c.from, c.maxRecs, c.maxByte, len(rs), c.want)
		case len(rs) == 0:
			t.Fatalf("read(%d, %d, %d) returned nothing", c.from, c.maxRecs, c.maxByte)
		case c.maxByte > 0 && len(rs) > 1 && total > c.maxByte:
			t.Fatalf("read(%d, %d, %d) returned %d bytes", c.from, c.maxRecs, c.maxByte, total)
		}
	}
}

func testReadRange(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	ctx := ctxFor(t)
	rs, err := pl.Read(ctx, 0, 10, 0)
	if err != nil || len(rs) != 0 {
		t.Fatalf("read of an empty log = %v, %v; want nothing and no error", rs, err)
	}
	appendOK(t, pl, &core.AppendBatch{Records: recs("a", "b")})
	rs, err = pl.Read(ctx, 2, 10, 0)
	if err != nil || len(rs) != 0 {
		t.Fatalf("read at the high watermark = %v, %v; want nothing and no error", rs, err)
	}
	for _, from := range []int64{3, -1} {
		_, err = pl.Read(ctx, from, 10, 0)
		var re *core.OffsetRangeError
		if !errors.As(err, &re) || re.Offset != from || re.LogStart != 0 || re.HighWatermark != 2 || !errors.Is(err, core.ErrOffsetOutOfRange) {
			t.Fatalf("read at %d = %v, want *OffsetRangeError{%d, 0, 2}", from, err, from)
		}
	}
}

func testOffsetForTime(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	ctx := ctxFor(t)
	at := func(ts int64) int64 {
		t.Helper()
		off, err := pl.OffsetForTime(ctx, ts)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	eq(t, "offset for a time in an empty log", at(5), 0)
	// Producer timestamps need not grow: the answer is the first record
	// (in offset order) at or after the time.
	appendOK(t, pl, &core.AppendBatch{Timestamp: 100, Records: recs("a", "b")})                                                      // 0, 1 at 100
	appendOK(t, pl, &core.AppendBatch{Timestamp: 400, Records: []core.Record{{Timestamp: 150}, {Timestamp: 300}, {Timestamp: 200}}}) // 2, 3, 4
	appendOK(t, pl, &core.AppendBatch{Timestamp: 500, Records: recs("c")})                                                           // 5 at 500
	for _, c := range []struct{ ts, want int64 }{{0, 0}, {100, 0}, {101, 2}, {150, 2}, {151, 3}, {250, 3}, {301, 5}, {500, 5}, {501, 6}} {
		eq(t, fmt.Sprintf("OffsetForTime(%d)", c.ts), at(c.ts), c.want)
	}
}

func testChanged(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	ch := pl.Changed()
	if isClosed(ch) {
		t.Fatal("Changed is closed before any change")
	}
	appendOK(t, pl, &core.AppendBatch{Records: recs("a")})
	closed(t, ch, "Changed after an append")
	ch = pl.Changed()
	if _, err := pl.ApplyTxn(ctxFor(t), &core.StateTxn{Append: &core.AppendBatch{Timestamp: 1, Records: recs("b")}}); err != nil {
		t.Fatal(err)
	}
	closed(t, ch, "Changed after a transaction with records")
	ch = pl.Changed()
	if err := pl.TrimTo(ctxFor(t), 1); err != nil {
		t.Fatal(err)
	}
	closed(t, ch, "Changed after a trim")
}

func testConcurrentAppends(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := pl.Append(ctxFor(t), &core.AppendBatch{ProducerID: fmt.Sprint("w", w), Sequence: int64(2 * i), Timestamp: 1,
					Records: recs(fmt.Sprintf("w%d-%d", w, i), "pad")})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := readAll(t, pl, 0)
	eq(t, "records", len(all), writers*each*2)
	next := map[string]int{}
	for i := 0; i < len(all); i += 2 {
		var w, n int
		fmt.Sscanf(string(all[i].Value), "w%d-%d", &w, &n)
		if string(all[i+1].Value) != "pad" || n != next[fmt.Sprint(w)] {
			t.Fatalf("offset %d: %q %q; a batch's records must be adjacent and each producer's batches in order", i, all[i].Value, all[i+1].Value)
		}
		next[fmt.Sprint(w)]++
	}
}
