package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestTornTail cuts the last batch at every byte, and flips every byte of it,
// and checks that Open recovers exactly the batches before it.
func TestTornTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		segBytes int64
		batches  int
	}{
		{"only segment", 0, 4},
		{"after rolls", 300, 12},
		{"first in its segment", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := openLog(t, Config{SegmentBytes: tt.segBytes})
			all := writeBatches(t, src, tt.batches, 20)
			segs := src.Segments()
			act := segs[len(segs)-1]
			if act.NextOffset == act.BaseOffset {
				t.Fatal("the active segment is empty; the test needs its last batch in it")
			}
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
			files := segFiles(t, src.cfg.Dir)
			activeFile := files[len(files)-1]
			orig, err := os.ReadFile(filepath.Join(src.cfg.Dir, activeFile))
			if err != nil {
				t.Fatal(err)
			}
			lastSize := int(frameHeaderSize + len(all[len(all)-1].Payload))
			start := len(orig) - lastSize
			prev := Batch{}
			if len(all) > 1 {
				prev = all[len(all)-2]
			}

			type damage struct {
				name string
				file []byte
			}
			var cases []damage
			for cut := start; cut < len(orig); cut++ {
				cases = append(cases, damage{fmt.Sprintf("cut at %d", cut-start), orig[:cut]})
			}
			for i := start; i < len(orig); i++ {
				b := append([]byte(nil), orig...)
				b[i] ^= 0x5a
				cases = append(cases, damage{fmt.Sprintf("flip at %d", i-start), b})
			}
			// Garbage after a whole last batch is cut, keeping all N.
			cases = append(cases, damage{"zeros after", append(append([]byte(nil), orig...), make([]byte, 50)...)})

			for _, d := range cases {
				dir := filepath.Join(t.TempDir(), "log")
				copyDir(t, src.cfg.Dir, dir)
				if err := os.WriteFile(filepath.Join(dir, activeFile), d.file, 0o644); err != nil {
					t.Fatal(err)
				}
				l, err := Open(Config{Dir: dir, SegmentBytes: tt.segBytes})
				if err != nil {
					t.Fatalf("%s: Open: %v", d.name, err)
				}
				want := all[:len(all)-1]
				if d.name == "zeros after" {
					want = all
				}
				sameBatches(t, d.name, scanAll(t, l, 0), want)
				wantLast, wantNext := prev.RaftIndex, prev.NextOffset()
				if d.name == "zeros after" {
					wantLast, wantNext = all[len(all)-1].RaftIndex, all[len(all)-1].NextOffset()
				}
				if l.LastIndex() != wantLast || l.NextOffset() != wantNext {
					t.Fatalf("%s: LastIndex %d NextOffset %d, want %d %d", d.name, l.LastIndex(), l.NextOffset(), wantLast, wantNext)
				}
				if st, _ := os.Stat(filepath.Join(dir, activeFile)); st.Size() != l.Segments()[len(l.Segments())-1].Bytes {
					t.Fatalf("%s: file not truncated: %d bytes", d.name, st.Size())
				}
				// Appending afterwards works and survives a restart.
				nb := recBatch(wantLast+1, wantNext, 2, 5, 33)
				if err := l.Append(nb); err != nil {
					t.Fatalf("%s: Append: %v", d.name, err)
				}
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				l.Close()
				l, err = Open(Config{Dir: dir, SegmentBytes: tt.segBytes})
				if err != nil {
					t.Fatalf("%s: reopen: %v", d.name, err)
				}
				sameBatches(t, d.name+" then append", scanAll(t, l, 0), append(append([]Batch(nil), want...), nb))
				l.Close()
			}
		})
	}
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentReaders runs readers against a writer that appends, rolls
// and deletes; every reader must see an unbroken, correct sequence.
func TestConcurrentReaders(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{SegmentBytes: 2000, IndexIntervalBytes: 256})
	const total = 600
	const readers = 4

	var wg sync.WaitGroup
	errc := make(chan error, readers+2)
	done := make(chan struct{})
	var final int64 // written before done is closed

	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		defer close(done)
		next := int64(0)
		for i := 1; i <= total; i++ {
			b := recBatch(uint64(i), next, uint32(1+i%4), int64(i), 10+i%90)
			if i%7 == 0 {
				b = Batch{RaftIndex: uint64(i), Kind: 1, BaseOffset: next, Payload: payloadFor(uint64(i), 5)}
			}
			if err := l.Append(b); err != nil {
				errc <- err
				return
			}
			next = b.NextOffset()
			if i%100 == 0 {
				if _, err := l.DeleteBefore(next / 3); err != nil {
					errc <- err
					return
				}
			}
		}
		final = next
	}()

	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := readUntilDone(l, done, &final, r); err != nil {
				errc <- fmt.Errorf("reader %d: %w", r, err)
			}
		}()
	}
	wg.Add(1)
	go func() { // a snapshotter
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			s, err := l.Capture()
			if err != nil {
				errc <- err
				return
			}
			_, err = s.WriteTo(discard{})
			s.Release()
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// readUntilDone follows the log from its start until the writer is done and
// everything written was read, checking contiguity and payloads.
func readUntilDone(l *Log, done <-chan struct{}, final *int64, seed int) error {
	var lastIdx uint64
	from := int64(0)
	maxBytes := 100 + seed*300
	for {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		var bad error
		err := l.Read(from, maxBytes, func(b Batch) bool {
			switch {
			case b.RaftIndex <= lastIdx:
				bad = fmt.Errorf("batch %d after %d", b.RaftIndex, lastIdx)
			case b.BaseOffset > from:
				// Offsets are contiguous here: nothing may be skipped.
				bad = fmt.Errorf("batch %d starts at %d, expected %d", b.RaftIndex, b.BaseOffset, from)
			case string(payloadFor(b.RaftIndex, len(b.Payload))) != string(b.Payload):
				bad = fmt.Errorf("payload of %d differs", b.RaftIndex)
			}
			if bad != nil {
				return false
			}
			lastIdx = b.RaftIndex
			from = max(from, b.NextOffset())
			return true
		})
		if bad != nil {
			return bad
		}
		if errors.Is(err, ErrOutOfRange) {
			from = l.StartOffset() // retention overtook the reader
			continue
		}
		if err != nil {
			return err
		}
		if finished && from == *final {
			return nil
		}
	}
}
