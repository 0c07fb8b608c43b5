package raftlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// readRemote serves a read below the local log start from the remote
// segment holding from (one segment per call: the caller reads on from
// where it ended), fetched through the node's segment cache, and starts
// fetching the next remote segment ahead of the reader.
func (p *Partition) readRemote(ctx context.Context, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	v := p.sm.tier()
	rs, ok := v.find(from)
	if !ok {
		return nil, &core.OffsetRangeError{Offset: from, LogStart: p.sm.logStart.Load(), HighWatermark: p.sm.hwm.Load()}
	}
	c := p.h.tierCache
	if c == nil {
		return nil, fmt.Errorf("%w: offset %d is in object storage, and node %d has no tiered storage configured", core.ErrUnavailable, from, p.h.cfg.NodeID)
	}
	for attempt := 0; ; attempt++ {
		l, err := c.open(ctx, rs.Key)
		if err != nil {
			return nil, err
		}
		out, err := readRecords(l, from, maxRecords, maxBytes)
		if errors.Is(err, segment.ErrClosed) && attempt == 0 {
			continue // evicted while we read: fetch it again
		}
		if err != nil {
			return nil, fmt.Errorf("read remote segment %s of shard %d: %w", rs.Key, p.shardID, err)
		}
		for i, r := range out {
			if r.Offset >= rs.Next {
				out = out[:i]
				break
			}
		}
		if next, ok := v.find(rs.Next); ok && next.Base < p.sm.seg.StartOffset() {
			c.prefetch(next.Key)
		}
		return out, nil
	}
}

// remoteOffsetForTime is the base of the first remote segment below the
// local log start whose records reach ts.
func (p *Partition) remoteOffsetForTime(ts int64) (int64, bool) {
	local := p.sm.localStart.Load()
	for _, r := range p.sm.tier().remote {
		if r.Base < local && r.MaxTs >= ts {
			return max(r.Base, p.sm.logStart.Load()), true
		}
	}
	return 0, false
}

// tierCache keeps segments fetched from object storage as files on disk,
// at most about limit bytes (least recently used go first), each opened
// once as a read-only segment log. A fetch is shared by every reader that
// wants the same segment meanwhile; reads after one segment prefetch the
// next (at most prefetchSlots at once). Files do not outlive the process:
// the directory is emptied at start.
type tierCache struct {
	store   core.ObjectStore
	fs      segment.FS
	dir     string
	limit   int64
	timeout time.Duration
	stopC   <-chan struct{}
	slots   chan struct{} // prefetches in flight
	wg      sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	entries map[string]*cacheEntry
	bytes   int64
	clock   int64
}

const prefetchSlots = 2

type cacheEntry struct {
	ready chan struct{} // closed once log or err is set
	log   *segment.Log
	err   error
	path  string
	size  int64
	used  int64 // clock value of the last use
}

func newTierCache(store core.ObjectStore, fs segment.FS, dir string, limit int64, timeout time.Duration, stopC <-chan struct{}) (*tierCache, error) {
	if err := fs.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &tierCache{store: store, fs: fs, dir: dir, limit: limit, timeout: timeout, stopC: stopC,
		slots: make(chan struct{}, prefetchSlots), entries: map[string]*cacheEntry{}}, nil
}

// open returns the cached segment for key, fetching it when missing.
func (c *tierCache) open(ctx context.Context, key string) (*segment.Log, error) {
	e := c.entry(key)
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.log, nil
}

// prefetch starts fetching key unless it is cached, being fetched, or
// every prefetch slot is busy.
func (c *tierCache) prefetch(key string) {
	c.mu.Lock()
	_, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.slots }()
		<-c.entry(key).ready
	}()
}

// entry returns key's entry, starting its fetch when it has none.
func (c *tierCache) entry(key string) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	if e, ok := c.entries[key]; ok {
		e.used = c.clock
		return e
	}
	sum := sha256.Sum256([]byte(key))
	e := &cacheEntry{ready: make(chan struct{}), path: filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".seg"), used: c.clock}
	c.entries[key] = e
	c.wg.Add(1)
	go c.fetch(key, e)
	return e
}

// fetch downloads key into e.path and opens it; a failed fetch leaves no
// entry behind, so the next read tries again.
func (c *tierCache) fetch(key string, e *cacheEntry) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	go func() {
		select {
		case <-c.stopC:
			cancel()
		case <-ctx.Done():
		}
	}()
	size, err := c.download(ctx, key, e.path)
	if err == nil {
		e.log, err = segment.OpenSealed(c.fs, e.path)
	}
	c.mu.Lock()
	if err != nil {
		e.err = fmt.Errorf("%w: fetch segment %s from object storage: %v", core.ErrUnavailable, key, err)
		delete(c.entries, key)
		c.fs.Remove(e.path)
	} else {
		e.size = size
		c.bytes += size
		c.evict(e)
	}
	c.mu.Unlock()
	close(e.ready)
}

func (c *tierCache) download(ctx context.Context, key, path string) (int64, error) {
	rc, err := c.store.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	f, err := c.fs.Create(path)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// evict drops least recently used segments (never keep) while the cache
// holds more than its limit. c.mu is held. Reads in progress on an evicted
// segment finish on its open file; later ones see segment.ErrClosed.
func (c *tierCache) evict(keep *cacheEntry) {
	for c.bytes > c.limit {
		var victim string
		var ve *cacheEntry
		for k, e := range c.entries {
			if e != keep && e.log != nil && (ve == nil || e.used < ve.used) {
				victim, ve = k, e
			}
		}
		if ve == nil {
			return
		}
		delete(c.entries, victim)
		c.bytes -= ve.size
		ve.log.Close()
		c.fs.Remove(ve.path)
	}
}

// close waits for fetches in flight (the host's stopC ends them) and
// releases the cached files.
func (c *tierCache) close() {
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.log != nil {
			e.log.Close()
		}
		delete(c.entries, k)
	}
}
