package gateway

import (
	"context"
	"errors"
	"sync"

	"github.com/weir-broker/weir/core"
)

// Fan-out: a thousand sockets on one partition should not read and encode
// every record a thousand times. A feed is the shared, read-only cache of
// one partition's recently read records, already encoded as the JSON of a
// records frame. Subscribers look up the chunk that holds their offset and
// send a slice of it (as much as their credit allows); only the first
// subscriber to reach new records reads and encodes them. Chunks are
// immutable once built, so frames in send queues reference them without
// copies or locks, and the cache's size is bounded per partition.

type feedKey struct {
	topic     string
	partition int
	b64       bool
}

// feeds is the set of live feeds, reference-counted by their subscribers.
type feeds struct {
	cacheBytes, frameBytes int

	mu sync.Mutex // guards m and each feed's refs
	m  map[feedKey]*feed
}

func newFeeds(cacheBytes, frameBytes int) *feeds {
	return &feeds{cacheBytes: cacheBytes, frameBytes: frameBytes, m: map[feedKey]*feed{}}
}

// acquire returns the feed of a partition; release it when done.
func (fs *feeds) acquire(k feedKey) *feed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.m[k]
	if f == nil {
		f = &feed{key: k, limit: fs.cacheBytes, frameBytes: fs.frameBytes}
		fs.m[k] = f
	}
	f.refs++
	return f
}

func (fs *feeds) release(f *feed) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f.refs--; f.refs == 0 {
		delete(fs.m, f.key)
	}
}

// chunk is records of consecutive offsets encoded as JSON objects, each
// preceded by a comma: ",{…},{…}". bounds[i] is the index of the comma
// before record i; bounds[n] is len(buf). from is the offset the read
// asked for: it is below base when the log has no record there.
type chunk struct {
	from, base int64
	bounds     []int32
	buf        []byte
	tps        []string // each record's traceparent, nil when none has one (ws_trace.go)
}

func (c *chunk) end() int64 { return c.base + int64(len(c.bounds)-1) }

// slice returns the encoded records of [off, off+max) that the chunk
// holds (without the leading comma), their count, and the next offset.
func (c *chunk) slice(off int64, max int) ([]byte, int, int64) {
	i := int(max64(off-c.base, 0))
	j := min(len(c.bounds)-1, i+max)
	return c.buf[c.bounds[i]+1 : c.bounds[j]], j - i, c.base + int64(j)
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

type feed struct {
	key        feedKey
	refs       int // guarded by feeds.mu
	limit      int
	frameBytes int

	// mu guards chunks, bytes and reads; it is never held across a log
	// read (which may go to another node and take seconds) nor while a
	// subscriber waits for one.
	mu     sync.RWMutex
	chunks []*chunk // oldest first
	bytes  int
	reads  map[int64]*feedRead // reads in flight, by the offset they read at
}

// feedRead is one log read in flight: the subscribers that want the same
// offset wait on done and share its chunk (singleflight) instead of
// reading again.
type feedRead struct {
	done chan struct{} // closed when c and err are set
	c    *chunk        // nil when the read found no records or failed
	err  error
}

// get returns up to max records at off from the cache, reading and
// encoding them from log when no chunk holds off, with their count and
// the offset after them. It returns no records when off is at the high
// watermark.
//
// Only the lookups and the bookkeeping run under f.mu: the read itself
// runs outside it, so a slow read (a remote replica, a disk) delays only
// the subscribers waiting for those very records, never the ones served
// from the cache or reading other offsets. Subscribers missing the same
// offset at once share one read: the first reads, the others wait for its
// result (or their own ctx).
func (f *feed) get(ctx context.Context, log core.PartitionLog, off int64, max int) ([]byte, int, int64, error) {
	// Most subscribers of a busy partition find their records cached: they
	// share the read lock.
	f.mu.RLock()
	c := f.lookup(off)
	f.mu.RUnlock()
	if c != nil {
		b, n, next := c.slice(off, max)
		return b, n, next, nil
	}
	for {
		f.mu.Lock()
		if c := f.lookup(off); c != nil {
			f.mu.Unlock()
			b, n, next := c.slice(off, max)
			return b, n, next, nil
		}
		if r := f.reads[off]; r != nil {
			f.mu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return nil, 0, off, ctx.Err()
			}
			if r.err != nil && ctx.Err() == nil && (errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded)) {
				continue // the reader gave up (its subscription ended), not the log: read again
			}
			if r.c == nil {
				return nil, 0, off, r.err
			}
			b, n, next := r.c.slice(off, max)
			return b, n, next, nil
		}
		r := &feedRead{done: make(chan struct{})}
		if f.reads == nil {
			f.reads = map[int64]*feedRead{}
		}
		f.reads[off] = r
		f.mu.Unlock()

		recs, err := log.Read(ctx, off, 1000, f.frameBytes)
		if err == nil && len(recs) > 0 {
			r.c = encodeChunk(off, recs, f.key)
		}
		r.err = err

		f.mu.Lock()
		delete(f.reads, off)
		if r.c != nil {
			f.add(r.c)
		}
		f.mu.Unlock()
		close(r.done)
		if r.c == nil {
			return nil, 0, off, err
		}
		b, n, next := r.c.slice(off, max)
		return b, n, next, nil
	}
}

// add caches c, evicting the oldest chunks past the limit. f.mu must be
// held.
func (f *feed) add(c *chunk) {
	f.chunks = append(f.chunks, c)
	f.bytes += len(c.buf)
	for f.bytes > f.limit && len(f.chunks) > 1 {
		f.bytes -= len(f.chunks[0].buf)
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
	}
}

// lookup returns the newest chunk holding off, or nil. f.mu must be held.
func (f *feed) lookup(off int64) *chunk {
	for i := len(f.chunks) - 1; i >= 0; i-- {
		if c := f.chunks[i]; c.from <= off && off < c.end() {
			return c
		}
	}
	return nil
}

// encodeChunk encodes recs read at from, up to the first gap in offsets.
func encodeChunk(from int64, recs []core.Record, k feedKey) *chunk {
	for i := 1; i < len(recs); i++ {
		if recs[i].Offset != recs[0].Offset+int64(i) {
			recs = recs[:i]
			break
		}
	}
	size := 0
	for i := range recs {
		size += recs[i].Size() + len(k.topic) + 64
	}
	c := &chunk{from: from, base: recs[0].Offset, bounds: make([]int32, 0, len(recs)+1), buf: make([]byte, 0, size)}
	c.tps = chunkTraceparents(recs) // ws_trace.go
	for i := range recs {
		start := len(c.buf)
		c.bounds = append(c.bounds, int32(start))
		c.buf = AppendRecordsJSON(c.buf, recs[i:i+1], k.b64, k.topic, k.partition)
		c.buf[start] = ',' // "[{…}]" becomes ",{…}"
		c.buf = c.buf[:len(c.buf)-1]
	}
	c.bounds = append(c.bounds, int32(len(c.buf)))
	return c
}
