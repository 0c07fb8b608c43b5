package segment

import "testing"

// BenchmarkAppend appends batches of 100 records of 1 KiB (the target load
// is 100k records/s, i.e. 1,000 of these per second).
func BenchmarkAppend(b *testing.B) {
	l := openLog(b, Config{})
	payload := payloadFor(1, 100<<10)
	b.SetBytes(int64(len(payload)))
	next := int64(0)
	idx := uint64(0)
	for b.Loop() {
		idx++
		if err := l.Append(Batch{RaftIndex: idx, BaseOffset: next, Count: 100, MaxTimestamp: int64(idx), Payload: payload}); err != nil {
			b.Fatal(err)
		}
		next += 100
	}
}

// BenchmarkRead reads 1 MiB at a time from a log of 100 KiB batches.
func BenchmarkRead(b *testing.B) {
	l := openLog(b, Config{SegmentBytes: 8 << 20})
	payload := payloadFor(1, 100<<10)
	const batches = 300
	for i := range batches {
		if err := l.Append(Batch{RaftIndex: uint64(i + 1), BaseOffset: int64(i) * 100, Count: 100, Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(1 << 20)
	from := int64(0)
	for b.Loop() {
		var last int64
		err := l.Read(from, 1<<20, func(bt Batch) bool { last = bt.NextOffset(); return true })
		if err != nil {
			b.Fatal(err)
		}
		from = last
		if from >= l.NextOffset() {
			from = 0
		}
	}
}
