package segment

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// snapshotBytes captures l and returns its stream.
func snapshotBytes(t testing.TB, l *Log) []byte {
	t.Helper()
	s, err := l.Capture()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v (wrote %d)", n, err, buf.Len())
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		build  func(t *testing.T, l *Log)
		target func(t *testing.T, l *Log)
	}{
		{"several segments into empty",
			func(t *testing.T, l *Log) { writeBatches(t, l, 40, 60) },
			func(t *testing.T, l *Log) {}},
		{"after retention into a longer log",
			func(t *testing.T, l *Log) {
				writeBatches(t, l, 40, 60)
				if _, err := l.DeleteBefore(l.Segments()[3].NextOffset); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, l *Log) { writeBatches(t, l, 100, 80) }},
		{"everything deleted",
			func(t *testing.T, l *Log) {
				writeBatches(t, l, 20, 60)
				if _, err := l.DeleteBefore(l.NextOffset()); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, l *Log) { writeBatches(t, l, 5, 10) }},
		{"new empty log",
			func(t *testing.T, l *Log) {},
			func(t *testing.T, l *Log) { writeBatches(t, l, 5, 10) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := openLog(t, Config{SegmentBytes: 500})
			tt.build(t, src)
			want := scanAll(t, src, 0)
			wl, wn, ws := src.LastIndex(), src.NextOffset(), src.StartOffset()

			s, err := src.Capture()
			if err != nil {
				t.Fatal(err)
			}
			if s.LastIndex() != wl || s.NextOffset() != wn {
				t.Fatalf("snapshot bounds %d %d", s.LastIndex(), s.NextOffset())
			}
			// Appends and deletions after Capture are not in the stream.
			more := writeBatches(t, src, 15, 60)
			if _, err := src.DeleteBefore(src.NextOffset()); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := s.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if err := s.Release(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.WriteTo(&buf); err == nil {
				t.Fatal("WriteTo after Release succeeded")
			}

			dst := openLog(t, Config{SegmentBytes: 500})
			tt.target(t, dst)
			// A reader of the old content keeps working across the swap.
			stream := buf.Bytes()
			r := bytes.NewReader(append(append([]byte(nil), stream...), "trailing"...))
			if err := dst.Restore(r); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if rest, _ := io.ReadAll(r); string(rest) != "trailing" {
				t.Fatalf("Restore read past the stream: %q left", rest)
			}
			sameBatches(t, "restored", scanAll(t, dst, 0), want)
			if dst.LastIndex() != wl || dst.NextOffset() != wn || dst.StartOffset() != ws {
				t.Fatalf("restored bounds %d %d %d, want %d %d %d", dst.LastIndex(), dst.NextOffset(), dst.StartOffset(), wl, wn, ws)
			}
			// The same *Log keeps working: append the batches src got later.
			for _, b := range more {
				if err := dst.Append(b); err != nil {
					t.Fatal(err)
				}
			}
			sameBatches(t, "restored then appended", scanAll(t, dst, 0), append(want, more...))
			dst = reopen(t, dst)
			sameBatches(t, "after reopen", scanAll(t, dst, 0), append(want, more...))
			if ents, _ := os.ReadDir(filepath.Dir(dst.cfg.Dir)); len(ents) != 1 {
				t.Fatalf("scratch directories left: %v", ents)
			}
		})
	}
}

func TestRestoreBadStreamKeepsLog(t *testing.T) {
	t.Parallel()
	src := openLog(t, Config{SegmentBytes: 400})
	writeBatches(t, src, 20, 40)
	stream := snapshotBytes(t, src)

	dst := openLog(t, Config{SegmentBytes: 400})
	writeBatches(t, dst, 30, 50)
	before := scanAll(t, dst, 0)
	bl, bn := dst.LastIndex(), dst.NextOffset()

	type bad struct {
		name string
		b    []byte
	}
	var cases []bad
	// Every cut in the manifest and around segment boundaries, then a spread.
	for cut := 0; cut < len(stream); cut++ {
		if cut < 200 || cut%97 == 0 || cut > len(stream)-60 {
			cases = append(cases, bad{"cut", stream[:cut]})
		}
	}
	for i := 0; i < len(stream); i += 53 {
		b := append([]byte(nil), stream...)
		b[i] ^= 1
		cases = append(cases, bad{"flip", b})
	}
	cases = append(cases, bad{"empty", nil}, bad{"junk", bytes.Repeat([]byte("x"), 1000)})

	for _, c := range cases {
		err := dst.Restore(bytes.NewReader(c.b))
		if err == nil {
			t.Fatalf("%s (%d bytes): Restore succeeded", c.name, len(c.b))
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: error %v does not wrap ErrCorrupt", c.name, err)
		}
		if dst.LastIndex() != bl || dst.NextOffset() != bn {
			t.Fatalf("%s: bounds changed", c.name)
		}
	}
	sameBatches(t, "after bad restores", scanAll(t, dst, 0), before)
	dst = reopen(t, dst)
	sameBatches(t, "after reopen", scanAll(t, dst, 0), before)
	if ents, _ := os.ReadDir(filepath.Dir(dst.cfg.Dir)); len(ents) != 1 {
		t.Fatalf("scratch directories left: %v", ents)
	}
	// A reader error is passed through and changes nothing either.
	boom := errors.New("boom")
	if err := dst.Restore(io.MultiReader(bytes.NewReader(stream[:100]), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("Restore = %v, want boom", err)
	}
	sameBatches(t, "after reader error", scanAll(t, dst, 0), before)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestSnapshotPinsDeletedSegments(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{SegmentBytes: 300})
	writeBatches(t, l, 30, 40)
	want := scanAll(t, l, 0)
	s, err := l.Capture()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if n, err := l.DeleteBefore(l.NextOffset()); err != nil || n < 3 {
		t.Fatalf("DeleteBefore = %d, %v", n, err)
	}
	if err := l.Close(); err != nil { // even closing the log keeps pinned files open
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	dst := openLog(t, Config{})
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	sameBatches(t, "restored", scanAll(t, dst, 0), want)
}

func TestRestoreSwapRecovery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		crash func(t *testing.T, dir string) // leaves the state a crash during Restore would
	}{
		{"between the renames", func(t *testing.T, dir string) {
			_, prefix, old := restoreNames(dir)
			mkScratch(t, filepath.Join(filepath.Dir(dir), prefix+"123"))
			if err := os.Rename(dir, old); err != nil {
				t.Fatal(err)
			}
		}},
		{"before removing the old log", func(t *testing.T, dir string) {
			_, _, old := restoreNames(dir)
			mkScratch(t, old)
		}},
		{"while writing the scratch dir", func(t *testing.T, dir string) {
			_, prefix, _ := restoreNames(dir)
			mkScratch(t, filepath.Join(filepath.Dir(dir), prefix+"456"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := openLog(t, Config{SegmentBytes: 400})
			want := writeBatches(t, l, 20, 30)
			dir := l.cfg.Dir
			l.Close()
			tt.crash(t, dir)
			l = openLog(t, Config{Dir: dir})
			sameBatches(t, "recovered", scanAll(t, l, 0), want)
			if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
				t.Fatalf("leftovers: %v", ents)
			}
		})
	}
}

func mkScratch(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, segName(0, 0)), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadAcrossRestore(t *testing.T) {
	t.Parallel()
	src := openLog(t, Config{SegmentBytes: 300})
	writeBatches(t, src, 10, 20)
	stream := snapshotBytes(t, src)

	l := openLog(t, Config{SegmentBytes: 300})
	old := writeBatches(t, l, 30, 40)
	n := 0
	err := l.Read(0, 0, func(b Batch) bool {
		if !sameBatch(b, old[n]) {
			t.Fatalf("batch %d differs", n)
		}
		n++
		if n == 3 {
			if err := l.Restore(bytes.NewReader(stream)); err != nil {
				t.Fatal(err)
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	// The reader finished its segment from the old files and then stopped.
	if n < 3 || n >= len(old) {
		t.Fatalf("read %d batches across a restore", n)
	}
}
