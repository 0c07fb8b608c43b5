package segment

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// Snapshot stream layout; doc.go describes it.
const (
	snapMagic        = "WSNP"
	snapVersion      = 1
	snapFixedSize    = 28 // [4 magic][u16 version][u16 flags][u64 lastIndex][i64 nextOffset][u32 count]
	snapEntrySize    = 24 // [i64 base][u64 prevIndex][i64 length]
	maxSnapSegments  = 1 << 20
	snapTrailerBytes = 4 // CRC32C after each segment's bytes
)

// Snapshot pins a set of segments, each up to the length it had when
// captured, for streaming with WriteTo. The files stay readable even when
// DeleteBefore or Restore remove them meanwhile. Release it when done.
// WriteTo may be called more than once; Snapshot methods are safe to call
// from one goroutine at a time.
type Snapshot struct {
	mu        sync.Mutex
	segs      []snapSegment // nil once released
	lastIndex uint64
	next      int64
}

type snapSegment struct {
	seg    *segment
	length int64
}

// Capture pins the current segments and their lengths (their open files are
// kept) so that the log can be streamed while appends go on.
func (l *Log) Capture() (*Snapshot, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	s := &Snapshot{segs: make([]snapSegment, len(l.segs)), lastIndex: l.lastIndex, next: l.next}
	for i, seg := range l.segs {
		seg.ref()
		s.segs[i] = snapSegment{seg: seg, length: seg.size}
	}
	return s, nil
}

// LastIndex is the log's LastIndex when the snapshot was captured.
func (s *Snapshot) LastIndex() uint64 { return s.lastIndex }

// NextOffset is the log's NextOffset when the snapshot was captured.
func (s *Snapshot) NextOffset() int64 { return s.next }

// Release lets the pinned files go. It is idempotent.
func (s *Snapshot) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, ss := range s.segs {
		errs = append(errs, ss.seg.unref())
	}
	s.segs = nil
	return errors.Join(errs...)
}

// WriteTo writes the snapshot as a self-describing stream that Restore reads
// back: a versioned, CRC32C-protected manifest, then each segment's bytes
// followed by their CRC32C. It returns the bytes written.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.segs == nil {
		return 0, errors.New("segment: snapshot already released")
	}
	m := make([]byte, snapFixedSize, snapFixedSize+len(s.segs)*snapEntrySize+4)
	copy(m, snapMagic)
	le.PutUint16(m[4:], snapVersion)
	le.PutUint64(m[8:], s.lastIndex)
	le.PutUint64(m[16:], uint64(s.next))
	le.PutUint32(m[24:], uint32(len(s.segs)))
	for _, ss := range s.segs {
		m = le.AppendUint64(m, uint64(ss.seg.base))
		m = le.AppendUint64(m, ss.seg.prevIndex)
		m = le.AppendUint64(m, uint64(ss.length))
	}
	m = le.AppendUint32(m, crc32.Checksum(m, castagnoli))
	n, err := w.Write(m)
	total := int64(n)
	if err != nil {
		return total, err
	}
	buf := make([]byte, min(dataChunk, s.maxLength()))
	for _, ss := range s.segs {
		var crc uint32
		for off := int64(0); off < ss.length; {
			k := int(min(int64(len(buf)), ss.length-off))
			if _, err := ss.seg.f.ReadAt(buf[:k], off); err != nil {
				return total, fmt.Errorf("segment: read %s: %w", ss.seg.name, err)
			}
			crc = crc32.Update(crc, castagnoli, buf[:k])
			n, err := w.Write(buf[:k])
			total += int64(n)
			if err != nil {
				return total, err
			}
			off += int64(k)
		}
		n, err := w.Write(le.AppendUint32(nil, crc))
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Snapshot) maxLength() int64 {
	var m int64
	for _, ss := range s.segs {
		m = max(m, ss.length)
	}
	return m
}

// manifest is a decoded snapshot manifest.
type manifest struct {
	lastIndex uint64
	next      int64
	segs      []segHeader
	lengths   []int64
}

// readManifest reads and checks a manifest, reading no byte past it.
func readManifest(r io.Reader) (*manifest, error) {
	fixed := make([]byte, snapFixedSize)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return nil, streamErr("manifest", err)
	}
	if string(fixed[:4]) != snapMagic {
		return nil, fmt.Errorf("%w: not a segment snapshot stream", ErrCorrupt)
	}
	if v := le.Uint16(fixed[4:]); v != snapVersion {
		return nil, fmt.Errorf("%w: snapshot stream version %d not supported", ErrCorrupt, v)
	}
	count := le.Uint32(fixed[24:])
	if count == 0 || count > maxSnapSegments {
		return nil, fmt.Errorf("%w: snapshot stream lists %d segments", ErrCorrupt, count)
	}
	crc := crc32.Checksum(fixed, castagnoli)
	m := &manifest{lastIndex: le.Uint64(fixed[8:]), next: int64(le.Uint64(fixed[16:]))}
	var e [snapEntrySize]byte
	for range count {
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return nil, streamErr("manifest", err)
		}
		crc = crc32.Update(crc, castagnoli, e[:])
		m.segs = append(m.segs, segHeader{base: int64(le.Uint64(e[0:])), prevIndex: le.Uint64(e[8:])})
		m.lengths = append(m.lengths, int64(le.Uint64(e[16:])))
	}
	var c [4]byte
	if _, err := io.ReadFull(r, c[:]); err != nil {
		return nil, streamErr("manifest", err)
	}
	if le.Uint32(c[:]) != crc {
		return nil, fmt.Errorf("%w: snapshot manifest checksum mismatch", ErrCorrupt)
	}
	for i, h := range m.segs {
		if h.base < 0 || m.lengths[i] < segHeaderSize {
			return nil, fmt.Errorf("%w: snapshot manifest entry %d is impossible", ErrCorrupt, i)
		}
		if i > 0 && (h.base < m.segs[i-1].base || h.prevIndex <= m.segs[i-1].prevIndex) {
			return nil, fmt.Errorf("%w: snapshot manifest entries out of order", ErrCorrupt)
		}
	}
	return m, nil
}

// streamErr classifies a read error: a stream that ends early is corrupt;
// other errors are the reader's own.
func streamErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: snapshot stream truncated in the %s", ErrCorrupt, what)
	}
	return fmt.Errorf("segment: read snapshot stream: %w", err)
}

// Restore replaces the whole content of the log with a stream written by
// Snapshot.WriteTo. It reads exactly the stream's bytes from r (nothing past
// its end). The new segments are written to a scratch directory next to
// Dir, fully validated (every frame's CRC), fsynced with their directory,
// and then swapped in place of Dir with two renames followed by an fsync of
// the parent; Open rolls back a swap that a crash interrupted halfway, so a
// crash leaves either the old log or the new one. The same *Log serves the
// new content afterwards; a failed Restore (truncated or corrupt stream,
// reader or disk error) leaves the old log as it was, and reads in progress
// finish on the old files. Restore also clears a sticky I/O failure.
func (l *Log) Restore(r io.Reader) (err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	fs, dir := l.cfg.FS, l.cfg.Dir
	parent, prefix, old := restoreNames(dir)
	tmp, err := mkdirTemp(fs, parent, prefix)
	if err != nil {
		return fmt.Errorf("segment: restore: %w", err)
	}
	var segs []*segment
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.f.Close()
			}
			fs.RemoveAll(tmp)
		}
	}()
	m, err := readManifest(r)
	if err != nil {
		return err
	}
	buf := make([]byte, dataChunk)
	for i, h := range m.segs {
		if err := receiveSegment(fs, r, filepath.Join(tmp, segName(h.base, h.prevIndex)), m.lengths[i], buf); err != nil {
			return err
		}
	}
	segs, err = loadDir(fs, tmp, int64(l.cfg.IndexIntervalBytes), true)
	if err != nil {
		return fmt.Errorf("segment: restore: %w", err)
	}
	if len(segs) != len(m.segs) {
		return fmt.Errorf("%w: snapshot segments do not load", ErrCorrupt)
	}
	if act := segs[len(segs)-1]; act.lastIndex != m.lastIndex || act.next != m.next {
		return fmt.Errorf("%w: snapshot ends at index %d, offset %d; its manifest says %d, %d",
			ErrCorrupt, act.lastIndex, act.next, m.lastIndex, m.next)
	}
	if err := SyncDir(fs, tmp); err != nil {
		return fmt.Errorf("segment: restore: %w", err)
	}

	// Swap. From here on the old files are only reachable through open fds.
	if err := fs.RemoveAll(old); err != nil {
		return fmt.Errorf("segment: restore: %w", err)
	}
	if err := fs.Rename(dir, old); err != nil {
		return fmt.Errorf("segment: restore: %w", err)
	}
	if err := fs.Rename(tmp, dir); err != nil {
		if rerr := fs.Rename(old, dir); rerr != nil {
			// Open rolls this back; this log cannot go on.
			l.fail(errors.Join(err, rerr))
		}
		return fmt.Errorf("segment: restore: %w", err)
	}
	syncErr := SyncDir(fs, parent)
	l.mu.Lock()
	prev := l.segs
	l.install(segs)
	l.gen++
	l.mu.Unlock()
	l.failed = nil
	for _, s := range prev {
		s.unref()
	}
	fs.RemoveAll(old) // best effort: Open removes it otherwise
	if syncErr != nil {
		// The new content is in place but its directory entry may not be durable.
		return l.fail(syncErr)
	}
	return nil
}

// mkdirTemp creates a new directory named prefix followed by a random
// number in parent, like os.MkdirTemp.
func mkdirTemp(fs FS, parent, prefix string) (string, error) {
	for range 100 {
		dir := filepath.Join(parent, prefix+strconv.FormatUint(rand.Uint64(), 36))
		if _, err := fs.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			continue // taken (or unreadable): try another name
		}
		return dir, fs.MkdirAll(dir, 0o755)
	}
	return "", errors.New("no unused scratch directory name")
}

// receiveSegment copies length bytes and their CRC32C trailer from r into a
// new fsynced file at path, in a scratch directory of its own.
func receiveSegment(fs FS, r io.Reader, path string, length int64, buf []byte) error {
	f, err := fs.Create(path)
	if err != nil {
		return fmt.Errorf("segment: restore: %w", err)
	}
	err = copySegment(f, r, length, buf)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("segment: restore: %w", cerr)
	}
	return err
}

func copySegment(f File, r io.Reader, length int64, buf []byte) error {
	var crc uint32
	for left := length; left > 0; {
		k := int(min(int64(len(buf)), left))
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			return streamErr("segment data", err)
		}
		crc = crc32.Update(crc, castagnoli, buf[:k])
		if _, err := f.Write(buf[:k]); err != nil {
			return fmt.Errorf("segment: restore: %w", err)
		}
		left -= int64(k)
	}
	var c [snapTrailerBytes]byte
	if _, err := io.ReadFull(r, c[:]); err != nil {
		return streamErr("segment trailer", err)
	}
	if le.Uint32(c[:]) != crc {
		return fmt.Errorf("%w: snapshot segment checksum mismatch", ErrCorrupt)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("segment: restore: %w", err)
	}
	return nil
}
