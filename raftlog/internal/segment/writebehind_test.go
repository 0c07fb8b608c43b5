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

func (fs behindFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return behindFile{f, fs.calls}, nil
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
	var covered int64
	seg := 0
	for i, c := range calls {
		if c[1] < writeBehindBytes {
			t.Fatalf("call %d %v: shorter than %d bytes", i, c, writeBehindBytes)
		}
		if c[0] == 0 && i > 0 { // the next segment
			if covered < segBytes-writeBehindBytes {
				t.Fatalf("segment %d: writeback started for %d bytes of at least %d", seg, covered, segBytes)
			}
			seg, covered = seg+1, 0
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
		covered = 0
	default:
		t.Fatalf("write-behind in %d segments of %d: %v", seg+1, len(l.segs), calls)
	}
	if act := l.active(); act.size-covered >= writeBehindBytes || covered > act.size {
		t.Fatalf("active segment of %d bytes: writeback started for %d", act.size, covered)
	}
}
