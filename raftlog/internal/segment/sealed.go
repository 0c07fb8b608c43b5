package segment

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

var errReadOnly = errors.New("segment: log opened read-only")

// Pinned is one sealed segment file held open for reading its bytes (to
// upload it), even when DeleteBefore removes it meanwhile. Release it.
type Pinned struct {
	*io.SectionReader // the whole file: header and frames
	Info              Info
	seg               *segment
}

// Release lets the file go. It is idempotent.
func (p *Pinned) Release() error {
	if p.seg == nil {
		return nil
	}
	s := p.seg
	p.seg = nil
	return s.unref()
}

// Pin pins the sealed (not active) segment whose PrevIndex is prevIndex.
func (l *Log) Pin(prevIndex uint64) (*Pinned, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.prevIndex != prevIndex {
			continue
		}
		s.ref()
		info := Info{BaseOffset: s.base, NextOffset: s.next, MaxTimestamp: max(s.maxTs, 0), Bytes: s.size,
			LastIndex: s.lastIndex, PrevIndex: s.prevIndex}
		return &Pinned{SectionReader: io.NewSectionReader(s.f, 0, s.size), Info: info, seg: s}, nil
	}
	return nil, fmt.Errorf("%w: no sealed segment after index %d", ErrOutOfRange, prevIndex)
}

// OpenSealed opens one sealed segment file on its own, read-only: a copy of
// a segment fetched from object storage. Every frame is validated (CRCs
// included), so a damaged copy fails with ErrCorrupt. The result serves
// Read, OffsetForTime, Segments and the accessors; writes fail. Close it.
func OpenSealed(fs FS, path string) (*Log, error) {
	if fs == nil {
		fs = OS{}
	}
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	var hb [segHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: short segment header", ErrCorrupt, path)
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		f.Close()
		return nil, err
	}
	s, err := scanSegment(f, filepath.Base(path), h.base, h.prevIndex, DefaultIndexIntervalBytes, true, false)
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &Log{cfg: Config{Dir: filepath.Dir(path), FS: fs, SegmentBytes: DefaultSegmentBytes, IndexIntervalBytes: DefaultIndexIntervalBytes}, readOnly: true}
	l.install([]*segment{s})
	return l, nil
}
