package segment

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Errors callers branch on. Errors returned by this package wrap them with %w.
var (
	// ErrOutOfRange: a Read asked for an offset below StartOffset or above NextOffset.
	ErrOutOfRange = errors.New("segment: offset out of range")
	// ErrCorrupt: bytes on disk or in a snapshot stream do not form a valid log.
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrBadBatch: Append refused a batch that cannot follow the log (Raft index
	// or offset going backwards, a kind-0 batch without records, payload too big).
	ErrBadBatch = errors.New("segment: invalid batch")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("segment: log closed")
)

// Batch is one framed unit in a segment file: one Raft entry's worth of records
// (Count > 0) or a control batch (Count == 0, Kind != 0) that carries state
// changes. Kind 0 means plain records; other kinds are the caller's and may
// hold records too.
type Batch struct {
	RaftIndex    uint64 // Raft log index of the entry that wrote it; strictly increasing
	Kind         uint8  // 0 = records; other values are opaque kinds (control when Count == 0)
	BaseOffset   int64  // offset of the first record; for control batches = the log's next offset at the time
	Count        uint32 // number of records (0 for control batches)
	MaxTimestamp int64  // ms, largest record timestamp (0 for control)
	Payload      []byte // opaque bytes (records encoding, or control command)
}

// NextOffset is the offset after the batch's last record: BaseOffset + Count.
func (b *Batch) NextOffset() int64 { return b.BaseOffset + int64(b.Count) }

// Config configures a Log. The zero value of every field but Dir is usable.
type Config struct {
	Dir                string // directory of the segment files; created if missing; one Log per Dir
	SegmentBytes       int64  // roll to a new segment file once the active one holds this many bytes; default 64 MiB
	IndexIntervalBytes int    // bytes between entries of the in-memory sparse index; default 4096
	// FS holds the files; nil: OS. Every file, rename and directory fsync
	// of the Log goes through it.
	FS FS
}

// Default values of Config fields left zero.
const (
	DefaultSegmentBytes       = 64 << 20
	DefaultIndexIntervalBytes = 4096
)

// Validate reports a configuration Open would refuse. Zero values are valid
// (they take the defaults) except for Dir.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("segment: Config.Dir is empty")
	case c.SegmentBytes < 0:
		return fmt.Errorf("segment: Config.SegmentBytes %d is negative", c.SegmentBytes)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("segment: Config.IndexIntervalBytes %d is negative", c.IndexIntervalBytes)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.FS == nil {
		c.FS = OS{}
	}
	return c
}

// indexEntry is one entry of a segment's sparse index: a frame start.
type indexEntry struct {
	base  int64  // BaseOffset of the batch at pos
	index uint64 // RaftIndex of the batch at pos
	pos   int64  // file position of the frame
	maxTs int64  // largest MaxTimestamp of record batches from pos up to the next entry
}

// segment is one segment file. The identity fields are immutable; the state
// fields follow the rules of Log.mu.
type segment struct {
	name      string
	base      int64  // header: the log's NextOffset when created
	prevIndex uint64 // header: the log's LastIndex when created
	f         File
	refs      atomic.Int32 // the log's own reference plus readers and snapshots

	size      int64  // bytes of valid data, header included
	next      int64  // NextOffset after the last batch, base when empty
	lastIndex uint64 // RaftIndex of the last batch, prevIndex when empty
	maxTs     int64  // largest record MaxTimestamp, math.MinInt64 when none
	index     []indexEntry
	sinceIdx  int64 // frame bytes since the last index entry
	behind    int64 // writer only: the position up to which writeback was started or is not needed
}

func newSegment(name string, h segHeader, f File) *segment {
	s := &segment{
		name: name, base: h.base, prevIndex: h.prevIndex, f: f,
		size: segHeaderSize, next: h.base, lastIndex: h.prevIndex, maxTs: math.MinInt64,
		behind: segHeaderSize, // the header was fsynced when the segment was created
	}
	s.refs.Store(1)
	return s
}

func (s *segment) empty() bool { return s.lastIndex == s.prevIndex }

// add records a frame of n bytes at pos holding b.
func (s *segment) add(b *Batch, pos, n int64, interval int64) {
	ts := int64(math.MinInt64)
	if b.Count > 0 {
		ts = b.MaxTimestamp
	}
	if len(s.index) == 0 || s.sinceIdx >= interval {
		s.index = append(s.index, indexEntry{base: b.BaseOffset, index: b.RaftIndex, pos: pos, maxTs: ts})
		s.sinceIdx = 0
	} else if e := &s.index[len(s.index)-1]; ts > e.maxTs {
		e.maxTs = ts
	}
	s.sinceIdx += n
	s.size = pos + n
	s.next = b.NextOffset()
	s.lastIndex = b.RaftIndex
	s.maxTs = max(s.maxTs, ts)
}

// ref takes a reference; the caller must hold Log.mu (read or write) and the
// segment must still be in the log, so the count is above zero.
func (s *segment) ref() { s.refs.Add(1) }

// unref drops a reference and closes the file with the last one.
func (s *segment) unref() error {
	if s.refs.Add(-1) == 0 {
		return s.f.Close()
	}
	return nil
}

// Log is the segmented log of one partition.
//
// Goroutine safety: one writer, many readers. Append, Sync, DeleteBefore,
// Restore and Close serialise among themselves (calling them concurrently is
// safe but pointless); Read, Scan, OffsetForTime, Segments, Capture and the
// accessors may run on any goroutine at any time, and none of them holds a
// lock while calling back into user code.
type Log struct {
	cfg Config // validated, defaults applied, Dir absolute

	// Lock order: wmu before mu.
	wmu    sync.Mutex // serialises writers; guards the fields below
	wbuf   []byte     // frame encoding buffer reused by Append
	failed error      // sticky: a write or fsync error that left the files in doubt

	// mu guards the fields below and the state fields of every segment. They
	// change only in writers, which hold wmu and then mu; so a writer may read
	// them holding wmu alone, and everyone else reads them under mu.RLock.
	mu        sync.RWMutex
	segs      []*segment // oldest first; the last is active; never empty while open
	lastIndex uint64
	next      int64
	gen       uint64 // bumped by Restore; readers stop when it changes
	closed    bool
	readOnly  bool // OpenSealed: one sealed segment, no writer
}

// Open opens or creates the log in cfg.Dir.
//
// Recovery: the last (active) segment is validated frame by frame (length,
// CRC32C, Raft index and offset order) and cut at the first torn or invalid
// frame, with an fsync after the truncation. Sealed segments are fsynced
// before they are sealed, so Open trusts them up to their framing: it reads
// every frame header (lengths, order, kind/count) but not the payload CRCs,
// which Read and Scan check on every access. A sealed segment that fails
// these checks, a segment whose header is damaged, or a gap between segments
// makes Open fail with an error wrapping ErrCorrupt: data in the middle of a
// log is never dropped silently. Open also finishes or rolls back a Restore
// interrupted by a crash and removes its leftovers.
func Open(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	cfg.Dir = dir
	if err := recoverRestore(cfg.FS, dir); err != nil {
		return nil, err
	}
	if err := mkdirAll(cfg.FS, dir); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	segs, err := loadDir(cfg.FS, dir, int64(cfg.IndexIntervalBytes), false)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		s, err := createSegment(cfg.FS, dir, segHeader{})
		if err != nil {
			return nil, err
		}
		segs = []*segment{s}
	}
	l := &Log{cfg: cfg}
	l.install(segs)
	return l, nil
}

// install makes segs the log's content; the caller holds mu or owns l alone.
func (l *Log) install(segs []*segment) {
	act := segs[len(segs)-1]
	l.segs, l.lastIndex, l.next = segs, act.lastIndex, act.next
}

// active is the segment appends go to; writer or mu holders only.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

func (l *Log) writable() error {
	if l.closed {
		return ErrClosed
	}
	if l.readOnly {
		return errReadOnly
	}
	return l.failed
}

// fail makes err sticky: after a failed write or fsync the page cache and
// the files may disagree, and only a reopen (which re-validates the tail) or
// a Restore can make the log trustworthy again.
func (l *Log) fail(err error) error {
	if l.failed == nil {
		l.failed = fmt.Errorf("segment: log unusable after an I/O error: %w", err)
	}
	return l.failed
}

// Append writes b at the end of the log with one write syscall and no fsync.
// Readers see it as soon as Append returns. b.Payload is copied; the caller
// keeps ownership. It fails with ErrBadBatch when b.RaftIndex <= LastIndex(),
// b.BaseOffset < NextOffset(), Kind and Count are both 0 (a control batch
// needs a kind), or the payload exceeds 4 GiB; nothing is written then. When the active segment has reached
// SegmentBytes, Append first rolls: it fsyncs the full segment and creates the
// next one (named by NextOffset) durably, so sealed segments are always whole.
func (l *Log) Append(b Batch) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if err := checkNext(&b, l.lastIndex, l.next); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBatch, err)
	}
	if len(b.Payload) > maxPayload {
		return fmt.Errorf("%w: payload of %d bytes", ErrBadBatch, len(b.Payload))
	}
	act := l.active()
	if act.size >= l.cfg.SegmentBytes && !act.empty() {
		if err := l.roll(); err != nil {
			return err
		}
		act = l.active()
	}
	l.wbuf = appendFrame(l.wbuf, &b)
	pos, n := act.size, int64(len(l.wbuf))
	if _, err := act.f.WriteAt(l.wbuf, pos); err != nil {
		// Undo a partial write so that the next frame starts at pos again.
		if terr := act.f.Truncate(pos); terr != nil {
			l.fail(errors.Join(err, terr))
		}
		return fmt.Errorf("segment: append to %s: %w", act.name, err)
	}
	if end := pos + n; end-act.behind >= writeBehindBytes {
		writeBehind(act.f, act.behind, end-act.behind)
		act.behind = end
	}
	if cap(l.wbuf) > maxRetainedWBuf {
		l.wbuf = nil
	}
	l.mu.Lock()
	act.add(&b, pos, n, int64(l.cfg.IndexIntervalBytes))
	l.lastIndex, l.next = b.RaftIndex, b.NextOffset()
	l.mu.Unlock()
	return nil
}

// roll seals the active segment and starts a new one named by NextOffset.
// Writer only.
func (l *Log) roll() error {
	if err := l.active().f.Sync(); err != nil {
		return l.fail(err)
	}
	s, err := createSegment(l.cfg.FS, l.cfg.Dir, segHeader{base: l.next, prevIndex: l.lastIndex})
	if err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	return nil
}

// createSegment durably creates an empty segment: the header goes to a
// temporary file that is fsynced and renamed into place, then the directory
// is fsynced. A crash leaves either no segment or a complete empty one.
func createSegment(fs FS, dir string, h segHeader) (*segment, error) {
	name := segName(h.base, h.prevIndex)
	path := filepath.Join(dir, name)
	tmp := path + tmpSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	err = writeAndSync(f, h.encode())
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err == nil {
		err = SyncDir(fs, dir)
	}
	if err != nil {
		f.Close()
		fs.Remove(tmp)
		return nil, fmt.Errorf("segment: create %s: %w", name, err)
	}
	return newSegment(name, h, f), nil
}

func writeAndSync(f File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}

// Sync fsyncs the active segment. Rolls and deletions fsync the directory
// themselves, and sealed segments were fsynced when sealed, so after Sync
// returns everything appended so far survives a crash. A failed fsync is
// sticky: later writes fail until the log is reopened.
func (l *Log) Sync() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if err := l.active().f.Sync(); err != nil {
		return l.fail(err)
	}
	return nil
}

// LastIndex is the RaftIndex of the last batch, 0 for a new log. It survives
// deletion of every batch (segment headers carry it).
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lastIndex
}

// NextOffset is one past the last record offset: 0 for a new log. It survives
// deletion of every batch (segment headers carry it).
func (l *Log) NextOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next
}

// StartOffset is the base offset of the oldest segment still present; it
// equals NextOffset when the log holds no batch.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segs) == 0 {
		return l.next
	}
	return l.segs[0].base
}

// StartIndex is the Raft index that precedes the oldest retained batch: 0
// until retention deleted something. Scan cannot return batches at or below it.
func (l *Log) StartIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segs) == 0 {
		return l.lastIndex
	}
	return l.segs[0].prevIndex
}

// Info describes one segment file.
type Info struct {
	BaseOffset   int64  // the log's NextOffset when the segment was created (its file name)
	NextOffset   int64  // one past its last record; BaseOffset when it holds no batch
	MaxTimestamp int64  // largest record timestamp; 0 when it holds no records
	Bytes        int64  // file size, the 32-byte header included
	Active       bool   // the segment appends go to; DeleteBefore never deletes it
	LastIndex    uint64 // RaftIndex of its last batch (of the log's last batch before it when empty)
	PrevIndex    uint64 // the log's LastIndex when the segment was created (its file name); unique
}

// Segments describes the segments, oldest first.
func (l *Log) Segments() []Info {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Info, len(l.segs))
	for i, s := range l.segs {
		ts := s.maxTs
		if ts == math.MinInt64 {
			ts = 0
		}
		out[i] = Info{BaseOffset: s.base, NextOffset: s.next, MaxTimestamp: ts, Bytes: s.size,
			Active: i == len(l.segs)-1, LastIndex: s.lastIndex, PrevIndex: s.prevIndex}
	}
	return out
}

// DeleteBefore deletes, oldest first, the non-active segments whose
// NextOffset <= offset and returns how many it deleted. Each unlink is
// followed by a directory fsync, so a crash never leaves a gap. When the
// active segment holds batches and would itself qualify, DeleteBefore rolls
// first so that it can go too (NextOffset and LastIndex stay in the new empty
// segment's header). Readers and snapshots holding a segment keep reading it:
// its file is closed when the last of them lets go.
func (l *Log) DeleteBefore(offset int64) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	if act := l.active(); !act.empty() && act.next <= offset {
		if err := l.roll(); err != nil {
			return 0, err
		}
	}
	n := 0
	for len(l.segs) > 1 && l.segs[0].next <= offset {
		victim := l.segs[0]
		if err := l.cfg.FS.Remove(filepath.Join(l.cfg.Dir, victim.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("segment: delete %s: %w", victim.name, err)
		}
		l.mu.Lock()
		l.segs[0] = nil
		l.segs = l.segs[1:]
		l.mu.Unlock()
		victim.unref()
		n++
		if err := SyncDir(l.cfg.FS, l.cfg.Dir); err != nil {
			return n, l.fail(err)
		}
	}
	return n, nil
}

// Close releases the log's files. It does not fsync: call Sync first for
// durability. Reads and snapshots in progress finish on their own references;
// new calls fail with ErrClosed. Close is idempotent.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	segs := l.segs
	l.segs = nil
	l.mu.Unlock()
	var errs []error
	for _, s := range segs {
		errs = append(errs, s.unref())
	}
	return errors.Join(errs...)
}
