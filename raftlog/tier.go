package raftlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/core"
)

// TieredConfig configures tiered storage on a node (docs/tiered-storage.md).
// The zero value is off; with Store set the other fields have defaults.
type TieredConfig struct {
	// Store is the object store closed segments of tiered topics go to;
	// nil: tiered storage is off and tiered topics cannot be created.
	Store core.ObjectStore
	// Prefix starts every object key; default "weir". Clusters sharing a
	// bucket need distinct prefixes (a cluster deletes objects under its
	// prefix that its manifests do not record).
	Prefix string
	// Interval is how often partition leaders upload closed segments and
	// apply local retention; default 1 s.
	Interval time.Duration
	// CacheBytes bounds the disk cache of segments read back from object
	// storage (in DataDir/tiered-cache); default 1 GiB.
	CacheBytes int64
	// RequestTimeout bounds one upload or download; default 60 s.
	RequestTimeout time.Duration
	// OrphanAge: an object under a partition's prefix that its manifest
	// does not record (an upload whose leader died before recording it)
	// is deleted once this old; default 10 min. Objects below the log
	// start (deleted by retention) go at the next pass.
	OrphanAge time.Duration
	// MaxBackoff caps the wait between failed uploads; default 30 s.
	MaxBackoff time.Duration
	// MaxUploads bounds the uploads in flight on the node, all partitions
	// together; default 2. Uploads take CPU and bandwidth from produce
	// while they run; a backlog after a burst drains at this pace.
	MaxUploads int
}

func (c *TieredConfig) setDefaults() {
	c.Prefix = strings.Trim(c.Prefix, "/")
	orDefault(&c.Prefix, "weir")
	orDefault(&c.Interval, time.Second)
	orDefault(&c.CacheBytes, 1<<30)
	orDefault(&c.RequestTimeout, time.Minute)
	orDefault(&c.OrphanAge, 10*time.Minute)
	orDefault(&c.MaxBackoff, 30*time.Second)
	orDefault(&c.MaxUploads, 2)
}

// orDefault sets *v to d when it is zero.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func (c *TieredConfig) validate() error {
	if c.Interval < 0 || c.CacheBytes < 0 || c.RequestTimeout < 0 || c.OrphanAge < 0 || c.MaxBackoff < 0 || c.MaxUploads < 0 {
		return errors.New("raftlog: tiered storage durations and sizes must not be negative")
	}
	return nil
}

// tierPart is the uploader's state of one partition; tierMu guards it.
type tierPart struct {
	busy     bool      // a pass is running for it
	retryAt  time.Time // after a failure: no upload before
	failures int
	gcAt     time.Time // next orphan collection
	gcStart  int64     // log start at the last collection
	trimAt   time.Time // next local retention check
}

// localTrimEvery is how many Intervals pass between a partition's local
// retention checks: each applied local trim writes the checkpoint (fsyncs),
// so they are kept a few seconds apart.
const localTrimEvery = 5

// tierJob is one tiered partition hosted here, as the metadata places it.
type tierJob struct {
	topic  string
	part   int
	shard  uint64
	cfg    core.TopicConfig
	psm    *partitionSM
	prefix string // object keys of the partition start with it
}

// tierState is the Host's tiered storage machinery (nil when off).
type tierState struct {
	mu       sync.Mutex           // guards parts, prefixes, and each tierPart's busy, retryAt, failures
	parts    map[uint64]*tierPart // by shard
	prefixes map[uint64]string    // shard → key prefix, for purging a deleted topic
	slots    chan struct{}        // one per upload in flight (MaxUploads)

	uploads, uploadedBytes, failures atomic.Int64
}

// tierJobs lists the tiered partitions with an open replica here.
func (h *Host) tierJobs() []tierJob {
	var jobs []tierJob
	h.meta.read(func(st *metaState) {
		st.eachPartition(func(topic string, idx int, p *PartitionMeta) {
			t := st.Topics[topic]
			if !t.Config.Tiered {
				return
			}
			jobs = append(jobs, tierJob{topic: topic, part: idx, shard: p.ShardID, cfg: h.effectiveConfig(t.Config),
				prefix: fmt.Sprintf("%s/%s/%d/%d/", h.cfg.Tiered.Prefix, topic, idx, p.ShardID)})
		})
	})
	out := jobs[:0]
	for _, j := range jobs {
		if j.psm = h.localSM(j.shard); j.psm != nil {
			out = append(out, j)
		}
	}
	return out
}

// tierLoop runs the leaders' tiered storage passes every Interval: each
// partition's pass in a goroutine of its own, so that a slow object store
// holds up nothing else (and never a produce).
func (h *Host) tierLoop() {
	defer h.wg.Done()
	var passes sync.WaitGroup
	defer passes.Wait() // after cancel (deferred calls run last first)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := time.NewTicker(h.cfg.Tiered.Interval)
	defer t.Stop()
	for {
		for _, j := range h.tierJobs() {
			ts := h.tier
			ts.mu.Lock()
			ts.prefixes[j.shard] = j.prefix
			tp := ts.parts[j.shard]
			if tp == nil {
				tp = &tierPart{}
				ts.parts[j.shard] = tp
			}
			run := !tp.busy && (&Partition{h: h, shardID: j.shard, sm: j.psm}).IsLeader()
			tp.busy = tp.busy || run
			ts.mu.Unlock()
			if !run {
				continue
			}
			passes.Add(1)
			go func() {
				defer passes.Done()
				h.tierPass(ctx, j, tp)
				ts.mu.Lock()
				tp.busy = false
				ts.mu.Unlock()
			}()
		}
		select {
		case <-h.stopC:
			return
		case <-t.C:
		}
	}
}

// tierPass uploads what is closed and not uploaded, applies local
// retention, and now and then collects orphaned objects.
func (h *Host) tierPass(ctx context.Context, j tierJob, tp *tierPart) {
	h.tier.mu.Lock()
	retryAt := tp.retryAt
	h.tier.mu.Unlock()
	if time.Now().After(retryAt) {
		err := h.uploadClosed(ctx, j)
		h.tier.mu.Lock()
		if err != nil {
			tp.failures++
			wait := min(h.cfg.Tiered.Interval<<min(tp.failures, 16), h.cfg.Tiered.MaxBackoff)
			tp.retryAt = time.Now().Add(wait)
			h.log.Warn("tiered storage upload failed; retrying later", "topic", j.topic, "partition", j.part, "retry_in", wait, "err", err)
		} else {
			tp.failures, tp.retryAt = 0, time.Time{}
		}
		h.tier.mu.Unlock()
	}
	if time.Now().After(tp.trimAt) && h.localRetention(ctx, j) {
		tp.trimAt = time.Now().Add(localTrimEvery * h.cfg.Tiered.Interval)
	}
	start := j.psm.logStart.Load()
	if time.Now().After(tp.gcAt) || start > tp.gcStart {
		if err := h.collectOrphans(ctx, j); err != nil {
			h.log.Debug("tiered storage orphan collection", "topic", j.topic, "partition", j.part, "err", err)
		}
		tp.gcAt, tp.gcStart = time.Now().Add(min(h.cfg.Tiered.OrphanAge, time.Minute)), start
	}
}

// localRetention proposes dropping the uploaded local segments past the
// topic's local retention; it reports whether it proposed.
func (h *Host) localRetention(ctx context.Context, j tierJob) bool {
	v := j.psm.tier()
	off, ok := core.LocalRetentionPoint(localSegments(j.psm.seg), j.cfg, v.uploadedEnd, time.Now().UnixMilli())
	if !ok || off <= j.psm.localStart.Load() {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, h.cfg.ProposalTimeout)
	defer cancel()
	if _, err := h.propose(pctx, j.shard, encodeLocalTrim(off)); err != nil {
		h.log.Warn("tiered storage local retention", "topic", j.topic, "partition", j.part, "err", err)
	}
	return true
}

// uploadClosed uploads the closed local segments past the manifest, in
// order, each recorded by a cmdTierAdd entry before the next. Only sealed
// segments go: they hold applied (hence committed) entries only.
func (h *Host) uploadClosed(ctx context.Context, j tierJob) error {
	for {
		v := j.psm.tier()
		var next *segmentToUpload
		for _, s := range j.psm.seg.Segments() {
			if !s.Active && s.NextOffset > s.BaseOffset && s.NextOffset > v.uploadedEnd && s.NextOffset > j.psm.logStart.Load() {
				next = &segmentToUpload{prevIndex: s.PrevIndex, base: max(s.BaseOffset, v.uploadedEnd), next: s.NextOffset, maxTs: s.MaxTimestamp}
				break
			}
		}
		if next == nil || ctx.Err() != nil {
			return nil
		}
		if err := h.uploadOne(ctx, j, next); err != nil {
			h.tier.failures.Add(1)
			return err
		}
	}
}

type segmentToUpload struct {
	prevIndex  uint64
	base, next int64
	maxTs      int64
}

func (h *Host) uploadOne(ctx context.Context, j tierJob, s *segmentToUpload) error {
	pin, err := j.psm.seg.Pin(s.prevIndex)
	if err != nil {
		return nil // deleted meanwhile (retention): the next pass sees
	}
	defer pin.Release()
	select {
	case h.tier.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.tier.slots }()
	var nonce [8]byte
	rand.Read(nonce[:])
	key := fmt.Sprintf("%s%020d-%020d-%s.seg", j.prefix, s.base, s.next, hex.EncodeToString(nonce[:]))
	uctx, cancel := context.WithTimeout(ctx, h.cfg.Tiered.RequestTimeout)
	err = h.cfg.Tiered.Store.Put(uctx, key, pin.SectionReader, pin.Size())
	cancel()
	if err != nil {
		return err
	}
	rec := remoteSeg{Base: s.base, Next: s.next, MaxTs: s.maxTs, Bytes: pin.Size(), Key: key}
	pctx, cancel := context.WithTimeout(ctx, h.cfg.ProposalTimeout)
	res, err := h.propose(pctx, j.shard, encodeTierAdd(rec))
	cancel()
	if err != nil {
		return fmt.Errorf("record upload of %s: %w", key, err) // unknown outcome: orphan collection decides
	}
	if len(res.Data) > 0 && res.Data[0] == resultOK {
		h.tier.uploads.Add(1)
		h.tier.uploadedBytes.Add(pin.Size())
		return nil
	}
	// Another leader recorded this range first: ours is never read.
	dctx, cancel := context.WithTimeout(ctx, h.cfg.Tiered.RequestTimeout)
	defer cancel()
	if err := h.cfg.Tiered.Store.Delete(dctx, key); err != nil {
		h.log.Debug("delete an unrecorded upload", "key", key, "err", err)
	}
	return nil
}

// collectOrphans deletes the partition's objects that its manifest does
// not record: below the log start (the topic's retention dropped them) at
// once, others (uploads never recorded) once older than OrphanAge.
func (h *Host) collectOrphans(ctx context.Context, j tierJob) error {
	lctx, cancel := context.WithTimeout(ctx, h.cfg.Tiered.RequestTimeout)
	defer cancel()
	objs, err := h.cfg.Tiered.Store.List(lctx, j.prefix)
	if err != nil {
		return err
	}
	v := j.psm.tier()
	recorded := make(map[string]bool, len(v.remote))
	for _, r := range v.remote {
		recorded[r.Key] = true
	}
	start := j.psm.logStart.Load()
	for _, o := range objs {
		if recorded[o.Key] {
			continue
		}
		_, next, ok := parseObjectKey(o.Key)
		if (ok && next <= start) || time.Since(o.LastModified) > h.cfg.Tiered.OrphanAge {
			if err := h.cfg.Tiered.Store.Delete(lctx, o.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseObjectKey reads the offsets out of a segment object's key.
func parseObjectKey(key string) (base, next int64, ok bool) {
	name := path.Base(key)
	parts := strings.Split(strings.TrimSuffix(name, ".seg"), "-")
	if len(parts) != 3 {
		return 0, 0, false
	}
	b, err1 := strconv.ParseInt(parts[0], 10, 64)
	n, err2 := strconv.ParseInt(parts[1], 10, 64)
	return b, n, err1 == nil && err2 == nil
}

// purgeTiered deletes every object of a shard whose topic was deleted.
func (h *Host) purgeTiered(shard uint64) {
	if h.tier == nil {
		return
	}
	h.tier.mu.Lock()
	prefix, ok := h.tier.prefixes[shard]
	delete(h.tier.prefixes, shard)
	delete(h.tier.parts, shard)
	h.tier.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Tiered.RequestTimeout)
	defer cancel()
	objs, err := h.cfg.Tiered.Store.List(ctx, prefix)
	for _, o := range objs {
		if err == nil {
			err = h.cfg.Tiered.Store.Delete(ctx, o.Key)
		}
	}
	if err != nil {
		h.log.Warn("tiered storage: objects of a deleted topic are left", "prefix", prefix, "err", err)
	}
}

// shardExists reports whether any topic still has the shard.
func (h *Host) shardExists(shard uint64) bool {
	found := false
	h.meta.read(func(st *metaState) {
		st.eachPartition(func(_ string, _ int, p *PartitionMeta) { found = found || p.ShardID == shard })
	})
	return found
}

// TieredStats reports the node's tiered storage counters and the backlog
// of the tiered partitions it leads.
func (h *Host) TieredStats() core.TieredStats {
	if h.tier == nil {
		return core.TieredStats{}
	}
	st := core.TieredStats{Uploads: h.tier.uploads.Load(), UploadedBytes: h.tier.uploadedBytes.Load(), UploadFailures: h.tier.failures.Load()}
	for _, j := range h.tierJobs() {
		if !(&Partition{h: h, shardID: j.shard, sm: j.psm}).IsLeader() {
			continue
		}
		b := core.TieredBacklog{Topic: j.topic, Partition: j.part}
		end := j.psm.tier().uploadedEnd
		for _, s := range j.psm.seg.Segments() {
			if !s.Active && s.NextOffset > s.BaseOffset && s.NextOffset > end {
				b.Segments++
				b.Bytes += s.Bytes
			}
		}
		st.Backlog = append(st.Backlog, b)
	}
	return st
}

// RemoteSegmentKeys lists the object keys the manifest of a partition
// replicated here records, oldest first (for operators and tests).
func (h *Host) RemoteSegmentKeys(topic string, partition int) ([]string, error) {
	pm, err := h.partitionMeta(topic, partition)
	if err != nil {
		return nil, err
	}
	psm := h.localSM(pm.ShardID)
	if psm == nil {
		return nil, fmt.Errorf("%w: node %d holds no replica of %s/%d", core.ErrUnavailable, h.cfg.NodeID, topic, partition)
	}
	var keys []string
	for _, r := range psm.tier().remote {
		keys = append(keys, r.Key)
	}
	return keys, nil
}
