package segment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// --- helpers ---

func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "log")
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func reopen(t testing.TB, l *Log) *Log {
	t.Helper()
	cfg := l.cfg
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openLog(t, cfg)
}

// payloadFor is a deterministic payload of n bytes for Raft index idx.
func payloadFor(idx uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(idx*31 + uint64(i)*7)
	}
	return p
}

// recBatch is a record batch of count records with timestamp ts.
func recBatch(idx uint64, base int64, count uint32, ts int64, n int) Batch {
	return Batch{RaftIndex: idx, BaseOffset: base, Count: count, MaxTimestamp: ts, Payload: payloadFor(idx, n)}
}

// writeBatches appends n record batches of 1..3 records after what l holds;
// every fifth batch is a control batch. It returns what it appended.
func writeBatches(t testing.TB, l *Log, n, payload int) []Batch {
	t.Helper()
	var out []Batch
	idx, next := l.LastIndex(), l.NextOffset()
	for i := range n {
		idx += uint64(1 + i%2) // Raft indexes have gaps
		var b Batch
		if i%5 == 4 {
			b = Batch{RaftIndex: idx, Kind: 7, BaseOffset: next, Payload: payloadFor(idx, 9)}
		} else {
			b = recBatch(idx, next, uint32(1+i%3), 1000+int64(idx)*10, payload+i%4)
		}
		if err := l.Append(b); err != nil {
			t.Fatalf("Append %d: %v", idx, err)
		}
		out = append(out, b)
		next = b.NextOffset()
	}
	return out
}

// clone copies b and its payload.
func clone(b Batch) Batch {
	b.Payload = slices.Clone(b.Payload)
	return b
}

func readAll(t testing.TB, l *Log) []Batch {
	t.Helper()
	var out []Batch
	if err := l.Read(l.StartOffset(), 0, func(b Batch) bool { out = append(out, b); return true }); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out
}

func scanAll(t testing.TB, l *Log, after uint64) []Batch {
	t.Helper()
	var out []Batch
	if err := l.Scan(after, func(b Batch) error { out = append(out, clone(b)); return nil }); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return out
}

func sameBatches(t testing.TB, what string, got, want []Batch) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !sameBatch(got[i], want[i]) {
			t.Fatalf("%s: batch %d = %+v, want %+v", what, i, head(got[i]), head(want[i]))
		}
	}
}

func sameBatch(a, b Batch) bool {
	return a.RaftIndex == b.RaftIndex && a.Kind == b.Kind && a.BaseOffset == b.BaseOffset &&
		a.Count == b.Count && a.MaxTimestamp == b.MaxTimestamp && bytes.Equal(a.Payload, b.Payload)
}

func head(b Batch) string {
	return fmt.Sprintf("{idx %d kind %d base %d count %d ts %d len %d}", b.RaftIndex, b.Kind, b.BaseOffset, b.Count, b.MaxTimestamp, len(b.Payload))
}

// --- tests ---

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero but dir", Config{Dir: "x"}, true},
		{"no dir", Config{}, false},
		{"negative segment", Config{Dir: "x", SegmentBytes: -1}, false},
		{"negative interval", Config{Dir: "x", IndexIntervalBytes: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		segBytes int64
		interval int
		batches  int
		payload  int
		minSegs  int
	}{
		{"one segment", 0, 0, 40, 100, 1},
		{"many rolls", 700, 64, 60, 100, 6},
		{"index every batch", 2000, 1, 50, 300, 5},
		{"big batches", 256 << 10, 0, 12, 100 << 10, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := openLog(t, Config{SegmentBytes: tt.segBytes, IndexIntervalBytes: tt.interval})
			want := writeBatches(t, l, tt.batches, tt.payload)
			if n := len(l.Segments()); n < tt.minSegs {
				t.Fatalf("%d segments, want at least %d", n, tt.minSegs)
			}
			check := func(l *Log) {
				t.Helper()
				sameBatches(t, "Read all", readAll(t, l), want)
				sameBatches(t, "Scan all", scanAll(t, l, 0), want)
				last := want[len(want)-1]
				if l.LastIndex() != last.RaftIndex || l.NextOffset() != last.NextOffset() || l.StartOffset() != 0 {
					t.Fatalf("LastIndex %d NextOffset %d StartOffset %d, want %d %d 0",
						l.LastIndex(), l.NextOffset(), l.StartOffset(), last.RaftIndex, last.NextOffset())
				}
				// Read from every offset starts at the batch holding it, or the first after it.
				for off := int64(0); off < l.NextOffset(); off++ {
					var got []Batch
					err := l.Read(off, 1, func(b Batch) bool { got = append(got, b); return true })
					if err != nil || len(got) != 1 {
						t.Fatalf("Read(%d, 1) = %d batches, %v", off, len(got), err)
					}
					if w := firstAfter(want, off); !sameBatch(got[0], w) {
						t.Fatalf("Read(%d) started at %s, want %s", off, head(got[0]), head(w))
					}
				}
				// Scan after every index.
				for i, b := range want {
					sameBatches(t, fmt.Sprintf("Scan(%d)", b.RaftIndex), scanAll(t, l, b.RaftIndex), want[i+1:])
					sameBatches(t, fmt.Sprintf("Scan(%d)", b.RaftIndex-1), scanAll(t, l, b.RaftIndex-1), want[i:])
				}
			}
			check(l)
			check(reopen(t, l))
		})
	}
}

// firstAfter is the first batch of want whose NextOffset is above off.
func firstAfter(want []Batch, off int64) Batch {
	for _, b := range want {
		if b.NextOffset() > off {
			return b
		}
	}
	return Batch{}
}

func TestReadSemantics(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{SegmentBytes: 400})
	// offsets: [0,3) ctrl@3 [3,5) gap [10,12) ctrl@12
	in := []Batch{
		recBatch(1, 0, 3, 100, 50),
		{RaftIndex: 2, Kind: 1, BaseOffset: 3, Payload: []byte("c")},
		recBatch(4, 3, 2, 90, 60),
		recBatch(5, 10, 2, 300, 70),
		{RaftIndex: 9, Kind: 2, BaseOffset: 12, Payload: []byte("d")},
	}
	for _, b := range in {
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	idx := func(bs []Batch) []uint64 {
		var out []uint64
		for _, b := range bs {
			out = append(out, b.RaftIndex)
		}
		return out
	}
	tests := []struct {
		from     int64
		maxBytes int
		want     []uint64
		err      error
	}{
		{0, 0, []uint64{1, 2, 4, 5, 9}, nil},
		{1, 0, []uint64{1, 2, 4, 5, 9}, nil},
		{3, 0, []uint64{4, 5, 9}, nil}, // the control batch at 3 holds no offset
		{4, 0, []uint64{4, 5, 9}, nil},
		{5, 0, []uint64{5, 9}, nil}, // in the gap: the first batch after it
		{9, 0, []uint64{5, 9}, nil},
		{11, 0, []uint64{5, 9}, nil},
		{12, 0, nil, nil},
		{13, 0, nil, ErrOutOfRange},
		{-1, 0, nil, ErrOutOfRange},
		{0, 1, []uint64{1}, nil},      // the first batch always
		{0, 50, []uint64{1}, nil},     // 50 + 1 > 50
		{0, 51, []uint64{1, 2}, nil},  // exactly 51
		{0, 110, []uint64{1, 2}, nil}, // 51 + 60 > 110
		{0, 111, []uint64{1, 2, 4}, nil},
		{4, 60, []uint64{4}, nil},
	}
	for _, r := range []*Log{l, nil} {
		if r == nil {
			r = reopen(t, l)
		}
		for _, tt := range tests {
			var got []Batch
			err := r.Read(tt.from, tt.maxBytes, func(b Batch) bool { got = append(got, b); return true })
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Read(%d, %d) error %v, want %v", tt.from, tt.maxBytes, err, tt.err)
			}
			if !slices.Equal(idx(got), tt.want) {
				t.Fatalf("Read(%d, %d) = %v, want %v", tt.from, tt.maxBytes, idx(got), tt.want)
			}
		}
		// fn returning false stops at once.
		n := 0
		if err := r.Read(0, 0, func(Batch) bool { n++; return n < 2 }); err != nil || n != 2 {
			t.Fatalf("stop: n %d err %v", n, err)
		}
	}
}

func TestOffsetForTime(t *testing.T) {
	t.Parallel()
	for _, interval := range []int{1, 4096} {
		t.Run(fmt.Sprint("interval ", interval), func(t *testing.T) {
			t.Parallel()
			l := openLog(t, Config{SegmentBytes: 300, IndexIntervalBytes: interval})
			// Timestamps are not monotonic across batches.
			ts := []int64{10, 30, 20, 50, 40, 40, 70}
			next := int64(0)
			for i, tsi := range ts {
				if err := l.Append(recBatch(uint64(i+1)*2, next, 2, tsi, 40)); err != nil {
					t.Fatal(err)
				}
				next += 2
				if i == 2 { // a control batch with timestamp 0 never matches
					if err := l.Append(Batch{RaftIndex: uint64(i+1)*2 + 1, Kind: 3, BaseOffset: next}); err != nil {
						t.Fatal(err)
					}
				}
			}
			tests := []struct{ ts, want int64 }{
				{-5, 0}, {0, 0}, {10, 0}, {11, 2}, {30, 2}, {31, 6}, {45, 6}, {50, 6}, {51, 12}, {70, 12}, {71, 14},
			}
			for _, r := range []*Log{l, nil} {
				if r == nil {
					r = reopen(t, l)
				}
				for _, tt := range tests {
					if got := r.OffsetForTime(tt.ts); got != tt.want {
						t.Errorf("OffsetForTime(%d) = %d, want %d", tt.ts, got, tt.want)
					}
				}
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{})
	if err := l.Append(recBatch(5, 10, 2, 1, 3)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    Batch
	}{
		{"same index", recBatch(5, 12, 1, 1, 3)},
		{"lower index", recBatch(4, 12, 1, 1, 3)},
		{"offset going back", recBatch(6, 11, 1, 1, 3)},
		{"records without records", Batch{RaftIndex: 6, BaseOffset: 12}},
		{"offset overflow", Batch{RaftIndex: 6, BaseOffset: 1<<63 - 1, Count: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Append(tt.b); !errors.Is(err, ErrBadBatch) {
				t.Fatalf("Append = %v, want ErrBadBatch", err)
			}
		})
	}
	if l.LastIndex() != 5 || l.NextOffset() != 12 || l.StartOffset() != 0 {
		t.Fatalf("state changed: %d %d %d", l.LastIndex(), l.NextOffset(), l.StartOffset())
	}
	if err := l.Append(Batch{RaftIndex: 6, Kind: 1, BaseOffset: 12}); err != nil {
		t.Fatal(err)
	}
	// Record batches may carry a kind of the caller's.
	if err := l.Append(Batch{RaftIndex: 7, Kind: 3, BaseOffset: 12, Count: 2}); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteBeforeAndRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		deleteTo   func(segs []Info) int64
		wantActive bool // only the (empty) active segment stays
	}{
		{"everything", func(s []Info) int64 { return s[len(s)-1].NextOffset }, true},
		{"far beyond", func(s []Info) int64 { return 1 << 40 }, true},
		{"middle", func(s []Info) int64 { return s[2].NextOffset }, false},
		{"inside the oldest", func(s []Info) int64 { return s[0].NextOffset - 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := openLog(t, Config{SegmentBytes: 500})
			all := writeBatches(t, l, 40, 60)
			segs := l.Segments()
			to := tt.deleteTo(segs)
			wantDel := 0
			for _, s := range segs {
				if s.NextOffset <= to && (!s.Active || s.NextOffset > s.BaseOffset) {
					wantDel++
				}
			}
			n, err := l.DeleteBefore(to)
			if err != nil || n != wantDel {
				t.Fatalf("DeleteBefore(%d) = %d, %v; want %d", to, n, err, wantDel)
			}
			last := all[len(all)-1]
			check := func(l *Log) {
				t.Helper()
				if l.LastIndex() != last.RaftIndex || l.NextOffset() != last.NextOffset() {
					t.Fatalf("LastIndex %d NextOffset %d, want %d %d", l.LastIndex(), l.NextOffset(), last.RaftIndex, last.NextOffset())
				}
				// What is left is a suffix that holds every batch ending after to.
				kept := scanAll(t, l, 0)
				sameBatches(t, "kept", kept, all[len(all)-len(kept):])
				for _, b := range all[:len(all)-len(kept)] {
					if b.NextOffset() > to {
						t.Fatalf("deleted %s, which ends after %d", head(b), to)
					}
				}
				read := readAll(t, l)
				sameBatches(t, "read", read, kept[len(kept)-len(read):])
				if tt.wantActive {
					if len(l.Segments()) != 1 || l.StartOffset() != l.NextOffset() || len(kept) != 0 {
						t.Fatalf("segments %+v, start %d, %d batches", l.Segments(), l.StartOffset(), len(kept))
					}
					if l.StartIndex() != last.RaftIndex {
						t.Fatalf("StartIndex %d", l.StartIndex())
					}
				} else if l.StartOffset() > to {
					t.Fatalf("StartOffset %d above %d", l.StartOffset(), to)
				}
				if err := l.Read(l.StartOffset()-1, 0, func(Batch) bool { return true }); !errors.Is(err, ErrOutOfRange) {
					t.Fatalf("Read below start: %v", err)
				}
			}
			check(l)
			l = reopen(t, l)
			check(l)
			more := writeBatches(t, l, 5, 60)
			if more[0].BaseOffset != last.NextOffset() || l.LastIndex() != more[4].RaftIndex {
				t.Fatal("append after restart does not continue the log")
			}
			l = reopen(t, l)
			if l.LastIndex() != more[4].RaftIndex || l.NextOffset() != more[4].NextOffset() {
				t.Fatal("state lost on the second restart")
			}
		})
	}
}

func TestScanWithDeleteInCallback(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{SegmentBytes: 400})
	all := writeBatches(t, l, 30, 50)
	var got []Batch
	err := l.Scan(0, func(b Batch) error {
		got = append(got, clone(b))
		if len(got) == 10 {
			if _, err := l.DeleteBefore(b.NextOffset()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameBatches(t, "scan", got, all)
	// After retention, Scan from 0 starts at the oldest retained batch.
	got = scanAll(t, l, 0)
	if len(got) == 0 || len(got) >= len(all) || got[0].RaftIndex <= l.StartIndex() {
		t.Fatalf("scan after delete: %d batches, StartIndex %d", len(got), l.StartIndex())
	}
	sameBatches(t, "scan after delete", got, all[len(all)-len(got):])
	stop := errors.New("stop")
	if err := l.Scan(0, func(Batch) error { return stop }); err != stop {
		t.Fatalf("Scan error %v", err)
	}
}

func TestOpenRejectsCorruptSealedSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string, segs []string)
	}{
		{"frame length", func(t *testing.T, dir string, segs []string) {
			patch(t, filepath.Join(dir, segs[1]), segHeaderSize, []byte{0xff, 0xff, 0, 0})
		}},
		{"segment header", func(t *testing.T, dir string, segs []string) {
			patch(t, filepath.Join(dir, segs[1]), 9, []byte{0x55})
		}},
		{"sealed tail cut", func(t *testing.T, dir string, segs []string) {
			p := filepath.Join(dir, segs[1])
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()-3); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing middle segment", func(t *testing.T, dir string, segs []string) {
			if err := os.Remove(filepath.Join(dir, segs[2])); err != nil {
				t.Fatal(err)
			}
		}},
		{"active header", func(t *testing.T, dir string, segs []string) {
			patch(t, filepath.Join(dir, segs[len(segs)-1]), 0, []byte("XXXX"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := openLog(t, Config{SegmentBytes: 400})
			writeBatches(t, l, 30, 50)
			dir := l.cfg.Dir
			l.Close()
			tt.damage(t, dir, segFiles(t, dir))
			if _, err := Open(Config{Dir: dir, SegmentBytes: 400}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestReadDetectsCorruptPayload(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{SegmentBytes: 400})
	writeBatches(t, l, 30, 50)
	dir := l.cfg.Dir
	l.Close()
	patch(t, filepath.Join(dir, segFiles(t, dir)[0]), segHeaderSize+frameHeaderSize+3, []byte{0})
	l = openLog(t, Config{Dir: dir, SegmentBytes: 400}) // sealed payloads are not checked on open
	if err := l.Read(0, 0, func(Batch) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read = %v, want ErrCorrupt", err)
	}
	if err := l.Scan(0, func(Batch) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Scan = %v, want ErrCorrupt", err)
	}
}

func TestLeftoverTempSegmentRemoved(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{})
	writeBatches(t, l, 3, 10)
	dir := l.cfg.Dir
	l.Close()
	junk := filepath.Join(dir, segName(99, 99)+tmpSuffix)
	if err := os.WriteFile(junk, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, Config{Dir: dir})
	if _, err := os.Stat(junk); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover still there: %v", err)
	}
	if len(readAll(t, l)) != 3 {
		t.Fatal("log changed")
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{})
	writeBatches(t, l, 3, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := l.Append(recBatch(100, 100, 1, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := l.Read(0, 0, func(Batch) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := l.Capture(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// patch overwrites bytes of a file at off.
func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// segFiles lists the segment files of dir in log order.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if _, _, ok := parseSegName(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	return out
}
