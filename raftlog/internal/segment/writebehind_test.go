package segment

import (
	"os"
	"path/filepath"
	"testing"
)

// behindFS is the OS whose files record the write-behind requests made of
// them.
type behindFS struct {
	OS
	calls *[][2]int64 // [off, n]
}

type behindFile struct {
	*os.File
	calls *[][2]int64
}

func (f behindFile) WriteBehind(off, n int64) error {
	*f.calls = append(*f.calls, [2]int64{off, n})
	return nil
}

func (fs behindFS) Create(name string) (File, error) { return fs.wrap(fs.OS.Create(name)) }
func (fs behindFS) OpenForWrite(name string) (File, error) {
	return fs.wrap(fs.OS.OpenForWrite(name))
}

func (fs behindFS) wrap(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return behindFile{f.(*os.File), fs.calls}, nil
}

// Appends ask for writeback of what they wrote, in contiguous ranges of at
// least writeBehindBytes, so that a Sync finds at most that much left; each
// segment starts its own ranges after a roll.
func TestAppendWritesBehind(t *testing.T) {
	var calls [][2]int64
	const segBytes = 5 << 20
	l := openLog(t, Config{Dir: filepath.Join(t.TempDir(), "log"), SegmentBytes: segBytes, FS: behindFS{calls: &calls}})
	writeBatches(t, l, 200, 64<<10) // ~10 MiB of frames: rolls
	if len(l.segs) < 2 {
		t.Fatalf("%d segments; want rolls", len(l.segs))
	}
	covered := int64(segHeaderSize) // the header is fsynced at creation
	seg := 0
	for i, c := range calls {
		if c[1] < writeBehindBytes {
			t.Fatalf("call %d %v: shorter than %d bytes", i, c, writeBehindBytes)
		}
		if c[0] == segHeaderSize && i > 0 { // the next segment
			if covered < segBytes-writeBehindBytes {
				t.Fatalf("segment %d: writeback started for %d bytes of at least %d", seg, covered, segBytes)
			}
			seg, covered = seg+1, segHeaderSize
		}
		if c[0] != covered {
			t.Fatalf("call %d %v: does not start where the last ended (%d)", i, c, covered)
		}
		covered += c[1]
	}
	switch seg {
	case len(l.segs) - 1:
	case len(l.segs) - 2: // the active segment may not hold writeBehindBytes yet
		if covered < segBytes-writeBehindBytes {
			t.Fatalf("segment %d: writeback started for %d bytes of at least %d", seg, covered, segBytes)
		}
		covered = segHeaderSize
	default:
		t.Fatalf("write-behind in %d segments of %d: %v", seg+1, len(l.segs), calls)
	}
	if act := l.active(); act.size-covered >= writeBehindBytes || covered > act.size {
		t.Fatalf("active segment of %d bytes: writeback started up to %d", act.size, covered)
	}

	// After a reopen, what was on disk before is not asked for again: the
	// ranges start where the reopened segment ended.
	l = reopen(t, l)
	end, segs := l.active().size, len(l.segs)
	calls = calls[:0]
	writeBatches(t, l, 40, 64<<10)
	switch {
	case len(calls) == 0:
		t.Fatalf("after a reopen: no write-behind")
	case len(l.segs) == segs && calls[0][0] != end, len(l.segs) > segs && calls[0][0] != end && calls[0][0] != segHeaderSize:
		t.Fatalf("after a reopen at %d bytes: write-behind %v", end, calls)
	}
}
