package segment

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A sealed segment pinned, copied out (as an upload would) and opened on
// its own reads back the same batches, refuses writes, and a damaged copy
// fails to open.
func TestPinAndOpenSealed(t *testing.T) {
	t.Parallel()
	l := openLog(t, Config{SegmentBytes: 2048})
	all := writeBatches(t, l, 60, 100)
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	if _, err := l.Pin(segs[len(segs)-1].PrevIndex); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("pinning the active segment: %v", err)
	}
	s := segs[1]
	pin, err := l.Pin(s.PrevIndex)
	if err != nil {
		t.Fatal(err)
	}
	if pin.Info.BaseOffset != s.BaseOffset || pin.Info.NextOffset != s.NextOffset || pin.Size() != s.Bytes {
		t.Fatalf("pinned %+v (%d bytes), listed %+v", pin.Info, pin.Size(), s)
	}
	// Retention deletes it meanwhile: the pin still reads it.
	if _, err := l.DeleteBefore(s.NextOffset); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(pin)
	if err != nil || int64(len(data)) != s.Bytes {
		t.Fatalf("read pinned: %d bytes, %v", len(data), err)
	}
	pin.Release()
	pin.Release()

	path := filepath.Join(t.TempDir(), "copy.seg")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := OpenSealed(nil, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []Batch
	for _, b := range all {
		if b.BaseOffset >= s.BaseOffset && b.NextOffset() <= s.NextOffset && !(b.Count == 0 && b.BaseOffset == s.NextOffset) {
			want = append(want, b)
		}
	}
	got := readAll(t, c)
	if len(got) == 0 || got[0].BaseOffset != s.BaseOffset || c.NextOffset() != s.NextOffset {
		t.Fatalf("copy reads %d batches from %d to %d", len(got), c.StartOffset(), c.NextOffset())
	}
	for _, b := range got {
		if !sameBatch(b, firstWith(want, b.RaftIndex)) {
			t.Fatalf("copy batch %s differs", head(b))
		}
	}
	if err := c.Append(recBatch(1<<40, 1<<40, 1, 0, 1)); err == nil {
		t.Fatal("append to a sealed copy succeeded")
	}
	data[len(data)-3] ^= 0xff
	bad := filepath.Join(t.TempDir(), "bad.seg")
	os.WriteFile(bad, data, 0o644)
	if _, err := OpenSealed(nil, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged copy: %v, want ErrCorrupt", err)
	}
}

func firstWith(bs []Batch, idx uint64) Batch {
	for _, b := range bs {
		if b.RaftIndex == idx {
			return b
		}
	}
	return Batch{}
}
