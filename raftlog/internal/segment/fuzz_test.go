package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

const fuzzSegBytes = 600

// fuzzTemplate writes a log of n batches into a fresh directory and returns
// the directory, the batches, and the batches' frame end positions in the
// active segment (-1 for batches in sealed segments).
func fuzzTemplate(f *testing.F, n int) (dir string, all []Batch, ends []int64) {
	dir = filepath.Join(f.TempDir(), "tmpl")
	l := openLog(f, Config{Dir: dir, SegmentBytes: fuzzSegBytes})
	all = writeBatches(f, l, n, 30)
	segs := l.Segments()
	act := segs[len(segs)-1]
	pos := int64(segHeaderSize)
	for _, b := range all {
		if b.RaftIndex <= segs[len(segs)-1].LastIndex && b.RaftIndex > prevIndexOf(segs) {
			pos += int64(frameHeaderSize + len(b.Payload))
			ends = append(ends, pos)
		} else {
			ends = append(ends, -1)
		}
	}
	if pos != act.Bytes {
		f.Fatalf("template: frames end at %d, active segment holds %d", pos, act.Bytes)
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	return dir, all, ends
}

// prevIndexOf is the index before the active segment's first batch.
func prevIndexOf(segs []Info) uint64 {
	if len(segs) < 2 {
		return 0
	}
	return segs[len(segs)-2].LastIndex
}

// checkConsistent checks that Read, Scan and the bounds agree, that an
// append works, and that a reopen sees the same log; it returns the batches.
func checkConsistent(t *testing.T, l *Log) []Batch {
	t.Helper()
	got := scanAll(t, l, 0)
	read := readAll(t, l)
	sameBatches(t, "read vs scan", read, got[len(got)-len(read):])
	last, next := l.StartIndex(), l.StartOffset()
	if len(got) > 0 {
		last, next = got[len(got)-1].RaftIndex, got[len(got)-1].NextOffset()
	}
	if l.LastIndex() != last || l.NextOffset() != next {
		t.Fatalf("bounds %d %d, batches end at %d %d", l.LastIndex(), l.NextOffset(), last, next)
	}
	nb := recBatch(last+1, next, 1, 1, 7)
	if err := l.Append(nb); err != nil {
		t.Fatalf("Append after recovery: %v", err)
	}
	l2 := reopen(t, l)
	sameBatches(t, "after reopen", scanAll(t, l2, 0), append(got, nb))
	return got
}

// FuzzOpenCorruptTail overwrites, or cuts and extends, the active segment
// after its header with arbitrary bytes. Open must succeed, keep every batch
// whose frame was untouched, and leave a consistent, appendable log.
func FuzzOpenCorruptTail(f *testing.F) {
	tmpl, all, ends := fuzzTemplate(f, 14)
	files := segFiles(f, tmpl)
	active := files[len(files)-1]
	orig, err := os.ReadFile(filepath.Join(tmpl, active))
	if err != nil {
		f.Fatal(err)
	}
	// A valid frame from the log itself makes a good seed for splicing.
	frame := appendFrame(nil, &all[len(all)-1])
	f.Add([]byte{}, uint16(0), false)
	f.Add([]byte{0}, uint16(len(orig)-segHeaderSize-1), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(0), true)
	f.Add(bytes.Repeat([]byte{0}, 64), uint16(40), false)
	f.Add(frame, uint16(len(orig)-segHeaderSize), false)
	f.Add(frame[:len(frame)-1], uint16(len(orig)-segHeaderSize), false)
	f.Add(frame, uint16(5), true)
	f.Fuzz(func(t *testing.T, data []byte, at uint16, overwrite bool) {
		p := segHeaderSize + int(at)%(len(orig)-segHeaderSize+1)
		var b []byte
		if overwrite {
			b = append([]byte(nil), orig...)
			if end := p + len(data); end > len(b) {
				b = append(b, make([]byte, end-len(b))...)
			}
			copy(b[p:], data)
		} else {
			b = append(append([]byte(nil), orig[:p]...), data...)
		}
		dir := filepath.Join(t.TempDir(), "log")
		copyDir(t, tmpl, dir)
		if err := os.WriteFile(filepath.Join(dir, active), b, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(Config{Dir: dir, SegmentBytes: fuzzSegBytes})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		got := checkConsistent(t, l)
		// Every batch whose frame lies wholly before p survives unchanged.
		keep := 0
		for i := range all {
			if ends[i] <= int64(p) {
				keep = i + 1
			}
		}
		if len(got) < keep {
			t.Fatalf("recovered %d batches, %d were untouched", len(got), keep)
		}
		sameBatches(t, "untouched prefix", got[:keep], all[:keep])
		// Batches after that are the originals or frames the fuzzer wrote
		// whole, with valid CRCs: checkConsistent saw them chain correctly.
	})
}

// FuzzRestore feeds arbitrary streams to Restore. It must never panic; when
// it fails the old log must be intact, and when it succeeds the result must
// be a consistent log.
func FuzzRestore(f *testing.F) {
	tmpl, before, _ := fuzzTemplate(f, 12)

	src := openLog(f, Config{Dir: filepath.Join(f.TempDir(), "src"), SegmentBytes: 300})
	writeBatches(f, src, 10, 20)
	if _, err := src.DeleteBefore(src.Segments()[1].NextOffset); err != nil {
		f.Fatal(err)
	}
	good := snapshotBytes(f, src)
	empty := openLog(f, Config{Dir: filepath.Join(f.TempDir(), "empty")})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:snapFixedSize+3])
	f.Add(snapshotBytes(f, empty))
	f.Add([]byte{})
	f.Add([]byte(snapMagic))
	f.Fuzz(func(t *testing.T, stream []byte) {
		dir := filepath.Join(t.TempDir(), "log")
		copyDir(t, tmpl, dir)
		l, err := Open(Config{Dir: dir, SegmentBytes: fuzzSegBytes})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Restore(bytes.NewReader(stream)); err != nil {
			sameBatches(t, "after a failed restore", scanAll(t, l, 0), before)
			l2 := reopen(t, l)
			sameBatches(t, "reopened after a failed restore", scanAll(t, l2, 0), before)
			return
		}
		checkConsistent(t, l)
	})
}
