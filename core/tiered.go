package core

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrObjectNotFound: an ObjectStore has no object under the key.
var ErrObjectNotFound = errors.New("object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// ObjectStore is the remote tier of tiered storage (docs/tiered-storage.md):
// a bucket of immutable objects addressed by key. raftlog uploads closed
// segments into it and reads them back below a partition's local log start;
// package objstore implements it on S3-compatible storage and in memory.
// Keys are never reused: a key names one content for good. Implementations
// are safe for concurrent use; every method blocks until done or ctx ends.
type ObjectStore interface {
	// Put stores size bytes of body under key. body may be read more than
	// once (a retried request seeks back to its start).
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error
	// Get opens the object under key; the caller closes the reader.
	// ErrObjectNotFound when there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
}

// TieredBacklog is a tiered partition's closed segments not uploaded yet,
// as its leader sees them.
type TieredBacklog struct {
	Topic     string
	Partition int
	Segments  int
	Bytes     int64
}

// TieredStats are a node's tiered storage counters since start, and the
// backlog of the tiered partitions it leads (for metrics).
type TieredStats struct {
	Uploads        int64 // segments uploaded and recorded
	UploadedBytes  int64
	UploadFailures int64 // uploads (or their recording) that failed
	Backlog        []TieredBacklog
}

// TieredDefaults are the effective values of a topic's tiered storage
// fields that were left zero.
const (
	// DefaultLocalRetentionMs keeps a tiered topic's segments on the nodes'
	// disks for a day after they were uploaded (Redpanda's default target).
	DefaultLocalRetentionMs int64 = 24 * 3600 * 1000
)

// EffectiveLocalRetention resolves a topic's local retention: zero fields
// take the defaults (a day for a tiered topic's time bound, no size bound),
// -1 means as long as the topic's own retention, and a bound looser than
// the topic's retention is the topic's retention.
func EffectiveLocalRetention(cfg TopicConfig) (ms, bytes int64) {
	ms, bytes = cfg.LocalRetentionMs, cfg.LocalRetentionBytes
	if !cfg.Tiered {
		return cfg.RetentionMs, cfg.RetentionBytes
	}
	if ms == 0 {
		ms = DefaultLocalRetentionMs
	}
	if bytes == 0 {
		bytes = -1
	}
	if ms == -1 || (cfg.RetentionMs > 0 && ms > cfg.RetentionMs) {
		ms = cfg.RetentionMs
	}
	if bytes == -1 || (cfg.RetentionBytes > 0 && bytes > cfg.RetentionBytes) {
		bytes = cfg.RetentionBytes
	}
	return ms, bytes
}

// LocalRetentionPoint decides how far a tiered partition's local segments
// may be dropped: like RetentionPoint with the local bounds, but only
// segments wholly uploaded (NextOffset <= remoteEnd) go. segs are the local
// segments, oldest first.
func LocalRetentionPoint(segs []SegmentInfo, cfg TopicConfig, remoteEnd, nowMs int64) (int64, bool) {
	ms, bytes := EffectiveLocalRetention(cfg)
	uploaded := 0
	for uploaded < len(segs) && !segs[uploaded].Active && segs[uploaded].NextOffset <= remoteEnd {
		uploaded++
	}
	local := TopicConfig{RetentionMs: ms, RetentionBytes: bytes}
	off, ok := RetentionPoint(segs, local, nowMs)
	if !ok {
		return 0, false
	}
	// RetentionPoint cut at a segment boundary; keep only uploaded ones.
	cut := -1
	for i := 0; i < uploaded; i++ {
		if segs[i].NextOffset <= off {
			cut = i
		}
	}
	if cut < 0 {
		return 0, false
	}
	return segs[cut].NextOffset, true
}
