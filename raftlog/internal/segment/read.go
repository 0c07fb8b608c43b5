package segment

import (
	"fmt"
	"io"
	"sort"
)

// Window sizes for Read: enough for the remaining byte budget, within bounds.
const (
	minReadChunk = 16 << 10
	maxReadChunk = 1 << 20
)

// cursor walks frames across segments. It holds a reference on its current
// segment and takes Log.mu only to find out where to go next, never while
// reading or calling back.
type cursor struct {
	l         *Log
	gen       uint64
	seg       *segment
	sc        scanner
	stopAtGap bool // end rather than skip segments that retention deleted meanwhile
}

// cursorAt starts a cursor in segs[i] at file position pos. Caller holds l.mu.
func (l *Log) cursorAt(i int, pos int64, chunk int, fresh bool) *cursor {
	s := l.segs[i]
	s.ref()
	c := &cursor{l: l, gen: l.gen, seg: s, sc: scanner{chunk: chunk, fresh: fresh}}
	c.sc.reset(s.f, pos, s.size)
	return c
}

func (c *cursor) close() {
	if c.seg != nil {
		c.seg.unref()
		c.seg = nil
	}
}

// next decodes the next frame header, moving on to newer data or the next
// segment as needed; io.EOF at the end of the log as it is now.
func (c *cursor) next() (frameHeader, error) {
	for {
		h, err := c.sc.next()
		if err == nil {
			return h, nil
		}
		if err != io.EOF {
			return h, c.wrap(err)
		}
		if !c.more() {
			return h, io.EOF
		}
	}
}

// frame returns the current frame's bytes, CRC checked.
func (c *cursor) frame() ([]byte, error) {
	p, err := c.sc.frame()
	if err != nil {
		return nil, c.wrap(err)
	}
	return p, nil
}

func (c *cursor) wrap(err error) error {
	return fmt.Errorf("segment %s: %w", c.seg.name, err)
}

// more extends the cursor past its current end: to bytes appended since, or
// to the next segment. It reports false at the end of the log, after Close,
// after a Restore replaced the content, and (with stopAtGap) when retention
// deleted the segments that came next.
func (c *cursor) more() bool {
	l := c.l
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed || l.gen != c.gen {
		return false
	}
	if c.seg.size > c.sc.end {
		c.sc.end = c.seg.size
		return true
	}
	// prevIndex strictly grows along the log and survives deletions, so it
	// finds the successor even when c.seg itself was deleted meanwhile.
	prev := c.seg.prevIndex
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].prevIndex > prev })
	if i == len(l.segs) {
		return false
	}
	n := l.segs[i]
	if c.stopAtGap && n.prevIndex != c.seg.lastIndex {
		return false
	}
	n.ref()
	c.seg.unref()
	c.seg = n
	c.sc.reset(n.f, segHeaderSize, n.size)
	return true
}

// Read calls fn with batches in log order, starting with the first batch
// whose NextOffset() > from: the batch that contains offset from, or the
// first batch after it. (A control batch sitting exactly at from, which holds
// no offset, is therefore not passed; control batches after the first one
// are.) Reading stops when fn returns false, at the end of the log, or before
// a batch whose payload would take the total passed past maxBytes — the first
// batch is always passed, whatever its size. maxBytes <= 0 sets no byte limit.
//
// from == NextOffset() passes nothing; from < StartOffset() or from >
// NextOffset() returns an error wrapping ErrOutOfRange. A damaged frame
// returns an error wrapping ErrCorrupt.
//
// Read is safe concurrently with Append, DeleteBefore and other readers; it
// sees batches appended while it runs. It never skips batches silently: when
// retention deletes the segments ahead of it, or Restore replaces the log,
// it ends, and the next Read from where it stopped reports ErrOutOfRange (or
// reads the new content). It holds no lock while calling fn.
// Each Payload points into a buffer owned by this call and never reused:
// fn may keep it, but must not modify it.
func (l *Log) Read(from int64, maxBytes int, fn func(Batch) bool) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	if start := l.segs[0].base; from < start || from > l.next {
		next := l.next
		l.mu.RUnlock()
		return fmt.Errorf("%w: offset %d outside [%d, %d]", ErrOutOfRange, from, start, next)
	}
	if from == l.next {
		l.mu.RUnlock()
		return nil
	}
	// The last segment starting at or below from; batches before it end at or
	// below its base. Within it, the last index entry at or below from.
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > from }) - 1
	s := l.segs[i]
	pos := int64(segHeaderSize)
	if j := sort.Search(len(s.index), func(j int) bool { return s.index[j].base > from }) - 1; j >= 0 {
		pos = s.index[j].pos
	}
	c := l.cursorAt(i, pos, minReadChunk, true)
	c.stopAtGap = true
	l.mu.RUnlock()
	defer c.close()

	passed, first := 0, true
	for {
		if maxBytes > 0 {
			c.sc.chunk = min(max(maxBytes-passed+frameHeaderSize, minReadChunk), maxReadChunk)
		} else {
			c.sc.chunk = maxReadChunk
		}
		h, err := c.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first && h.b.NextOffset() <= from {
			c.sc.advance()
			continue
		}
		if !first && maxBytes > 0 && passed+h.payloadLen() > maxBytes {
			return nil
		}
		p, err := c.frame()
		if err != nil {
			return err
		}
		b := h.b
		b.Payload = p[frameHeaderSize:len(p):len(p)]
		passed += len(b.Payload)
		first = false
		c.sc.advance()
		if !fn(b) {
			return nil
		}
	}
}

// Scan calls fn, in log order, for every retained batch with RaftIndex >
// afterIndex, up to the end of the log as it is when Scan gets there; it is
// meant for rebuilding state after a restart. Batches that retention already
// deleted are skipped: when afterIndex < StartIndex() the first batches passed
// are not the ones right after afterIndex. It stops at the first error from
// fn and returns it unchanged. Unlike Read, each Payload is valid only until
// fn returns (the buffer is reused). Scan holds no lock while calling fn, so
// fn may call any method of the log, DeleteBefore included.
func (l *Log) Scan(afterIndex uint64, fn func(Batch) error) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	// The first segment with a batch above afterIndex; in it, the last index
	// entry at or below afterIndex.
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].lastIndex > afterIndex })
	if i == len(l.segs) {
		l.mu.RUnlock()
		return nil
	}
	s := l.segs[i]
	pos := int64(segHeaderSize)
	if j := sort.Search(len(s.index), func(j int) bool { return s.index[j].index > afterIndex }) - 1; j >= 0 {
		pos = s.index[j].pos
	}
	c := l.cursorAt(i, pos, dataChunk, false)
	l.mu.RUnlock()
	defer c.close()

	for {
		h, err := c.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.b.RaftIndex <= afterIndex {
			c.sc.advance()
			continue
		}
		p, err := c.frame()
		if err != nil {
			return err
		}
		b := h.b
		b.Payload = p[frameHeaderSize:len(p):len(p)]
		c.sc.advance()
		if err := fn(b); err != nil {
			return err
		}
	}
}

// OffsetForTime returns the BaseOffset of the first record batch (in log
// order) whose MaxTimestamp >= ts, or NextOffset() when there is none. It
// answers at batch granularity: the records of that batch may start before
// ts, and the caller refines inside the batch. Control batches never match.
// It reads frame headers from at most one index interval of one segment; if
// that read fails it answers with the start of the interval, which is at or
// before the exact answer.
func (l *Log) OffsetForTime(ts int64) int64 {
	l.mu.RLock()
	if l.closed {
		defer l.mu.RUnlock()
		return l.next
	}
	i := 0
	for i < len(l.segs) && l.segs[i].maxTs < ts {
		i++
	}
	if i == len(l.segs) {
		defer l.mu.RUnlock()
		return l.next
	}
	s := l.segs[i]
	j := 0
	for j < len(s.index) && s.index[j].maxTs < ts {
		j++
	}
	if j == len(s.index) { // cannot happen: the segment's maximum comes from an entry
		defer l.mu.RUnlock()
		return s.base
	}
	e := s.index[j]
	c := l.cursorAt(i, e.pos, headerChunk, false)
	l.mu.RUnlock()
	defer c.close()
	for {
		h, err := c.sc.next() // within this segment only: the match is in it
		if err != nil {
			return e.base
		}
		if h.b.Count > 0 && h.b.MaxTimestamp >= ts {
			return h.b.BaseOffset
		}
		c.sc.advance()
	}
}
