package memstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weir-broker/weir/core"
)

// The byte accounting of raftlog's segment files (raftlog/internal/segment).
const (
	segmentHeaderBytes = 32
	frameHeaderBytes   = 37
	trimPayloadBytes   = 8
	recentBatches      = 5 // batches remembered per producer, as raftlog
	defaultReadRecords = 500
)

// batch is one write kept in a segment: records (count > 0) or a control
// batch (a trim, or a transaction without records).
type batch struct {
	base  int64
	count int
	maxTs int64
	recs  []byte // core.AppendRecords encoding; nil for control batches
}

type segment struct {
	base, next int64
	maxTs      int64 // of record batches; valid when hasTs
	hasTs      bool
	bytes      int64
	batches    []batch
}

type batchRef struct{ seq, count, base int64 }

type producerState struct {
	next   int64
	recent []batchRef // newest last
}

// Partition is one partition's log and state. It implements
// core.PartitionLog, and the optional ProposeTxn of raftlog's partitions
// (which the queue model pipelines its transactions with). It is safe for
// concurrent use.
type Partition struct {
	cfg    *Config
	topic  string
	index  int
	leader atomic.Bool

	mu        sync.RWMutex // guards the fields below
	segs      []*segment   // oldest first, never empty: the last is active
	next      int64        // the high watermark
	producers map[string]*producerState
	state     map[string][]byte
	changed   chan struct{}
	faults    faults
	trims     []int64
	gone      bool // the topic was deleted
}

var _ core.PartitionLog = (*Partition)(nil)

func newPartition(s *Store, topic string, index int) *Partition {
	p := &Partition{
		cfg: &s.cfg, topic: topic, index: index,
		segs:      []*segment{{bytes: segmentHeaderBytes}},
		producers: map[string]*producerState{},
		state:     map[string][]byte{},
		changed:   make(chan struct{}),
	}
	p.leader.Store(true)
	return p
}

// Inject arms a fault for this partition's writes: OpAppend, OpTxn, OpTrim
// (Ops 0: all three).
func (p *Partition) Inject(f Fault) {
	if f.Ops == 0 {
		f.Ops = OpAppend | OpTxn | OpTrim
	}
	p.mu.Lock()
	p.faults.add(f)
	p.mu.Unlock()
}

// SetLeader sets what IsLeader reports (true for a new partition). Writes
// still succeed: as in raftlog, a handle reaches the leader wherever it is.
func (p *Partition) SetLeader(leader bool) { p.leader.Store(leader) }

// Trims returns the offsets TrimTo was called with, oldest first.
func (p *Partition) Trims() []int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]int64(nil), p.trims...)
}

func (p *Partition) markGone() {
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
}

// write applies f as one replicated entry would be: refused when ctx ended
// or the topic is gone, failed (before or after f) by an armed fault, and
// waking Changed waiters once applied.
func (p *Partition) write(ctx context.Context, op Op, f func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", core.ErrUnavailable, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, p.topic)
	}
	return p.faults.guard(op, f, p.publish)
}

// publish wakes Changed waiters. The caller holds p.mu.
func (p *Partition) publish() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// envelopeBytes is the size of raftlog's records payload: producer id,
// sequence, records.
func envelopeBytes(pid string, seq int64, recs []byte) int {
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(len(pid))) + len(pid) + binary.PutVarint(tmp[:], seq) + len(recs)
}

// Append implements core.PartitionLog. Errors: core.ErrBadRequest (no
// records), core.ErrTooLarge, *core.SequenceError, core.ErrTopicNotFound
// (the topic was deleted), injected faults.
func (p *Partition) Append(ctx context.Context, b *core.AppendBatch) (core.AppendResult, error) {
	if len(b.Records) == 0 {
		return core.AppendResult{}, core.Invalidf("an append needs at least one record")
	}
	maxTs := b.Stamp()
	recs := core.AppendRecords(nil, b.Records)
	payload := envelopeBytes(b.ProducerID, b.Sequence, recs)
	if payload > p.cfg.MaxEntryBytes {
		return core.AppendResult{}, fmt.Errorf("%w: batch exceeds the entry limit", core.ErrTooLarge)
	}
	var res core.AppendResult
	err := p.write(ctx, OpAppend, func() (err error) {
		res, err = p.applyAppend(b, batch{count: len(b.Records), maxTs: maxTs, recs: recs}, payload)
		return err
	})
	return res, err
}

var _ core.AppendProposer = (*Partition)(nil)

// ProposeAppend implements core.AppendProposer: where this partition leads
// (memstore.Config), the append is applied at once, in call order, and
// wait returns its result (or an injected fault's error).
func (p *Partition) ProposeAppend(b *core.AppendBatch) (func(context.Context) (core.AppendResult, error), error) {
	if !p.IsLeader() {
		return nil, fmt.Errorf("%w: this node does not lead %s/%d", core.ErrNotLeader, p.topic, p.index)
	}
	res, err := p.Append(context.Background(), b)
	return func(context.Context) (core.AppendResult, error) { return res, err }, nil
}

// applyAppend is raftlog's partition state machine's rule: a producer's
// batch at its expected sequence is appended; a repeat of one of its
// recent batches answers that batch's offsets; anything else is a gap. A
// producer never seen starts at any sequence. The caller holds p.mu.
func (p *Partition) applyAppend(b *core.AppendBatch, bt batch, payload int) (core.AppendResult, error) {
	pid := b.ProducerID
	if ps := p.producers[pid]; pid != "" && ps != nil && b.Sequence != ps.next {
		for _, r := range ps.recent {
			if r.seq == b.Sequence && r.count == int64(bt.count) {
				return core.AppendResult{BaseOffset: r.base, Duplicate: true}, nil
			}
		}
		return core.AppendResult{}, &core.SequenceError{ProducerID: pid, Expected: ps.next, Got: b.Sequence}
	}
	bt.base = p.next
	p.add(bt, payload)
	if pid != "" {
		ps := p.producers[pid]
		if ps == nil {
			ps = &producerState{}
			p.producers[pid] = ps
		}
		ps.next = b.Sequence + int64(bt.count)
		ps.recent = append(ps.recent, batchRef{seq: b.Sequence, count: int64(bt.count), base: bt.base})
		if len(ps.recent) > recentBatches {
			ps.recent = append(ps.recent[:0], ps.recent[len(ps.recent)-recentBatches:]...)
		}
	}
	return core.AppendResult{BaseOffset: bt.base}, nil
}

// add writes one batch at the end of the log, rolling first when the
// active segment is full. The caller holds p.mu.
func (p *Partition) add(b batch, payload int) {
	if act := p.segs[len(p.segs)-1]; act.bytes >= p.cfg.SegmentBytes && len(act.batches) > 0 {
		p.roll()
	}
	act := p.segs[len(p.segs)-1]
	act.batches = append(act.batches, b)
	act.bytes += int64(frameHeaderBytes + payload)
	if b.count > 0 {
		act.next = b.base + int64(b.count)
		p.next = act.next
		if !act.hasTs || b.maxTs > act.maxTs {
			act.maxTs, act.hasTs = b.maxTs, true
		}
	}
}

func (p *Partition) roll() {
	p.segs = append(p.segs, &segment{base: p.next, next: p.next, bytes: segmentHeaderBytes})
}

// TrimTo implements core.PartitionLog as raftlog applies a trim: a control
// batch is written, then every segment wholly below offset is deleted (the
// active one too, after a roll, when it is wholly below).
func (p *Partition) TrimTo(ctx context.Context, offset int64) error {
	return p.write(ctx, OpTrim, func() error {
		p.trims = append(p.trims, offset)
		p.add(batch{base: p.next}, trimPayloadBytes)
		if act := p.segs[len(p.segs)-1]; len(act.batches) > 0 && act.next <= offset {
			p.roll()
		}
		for len(p.segs) > 1 && p.segs[0].next <= offset {
			p.segs[0] = nil
			p.segs = p.segs[1:]
		}
		return nil
	})
}

// Read implements core.PartitionLog: records from from on, at most
// maxRecords (500 when ≤ 0) and, past the first, at most maxBytes of
// core.Record.Size (no limit when ≤ 0). Records are the caller's.
func (p *Partition) Read(_ context.Context, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	if maxRecords <= 0 {
		maxRecords = defaultReadRecords
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	start := p.segs[0].base
	if from < start || from > p.next {
		return nil, &core.OffsetRangeError{Offset: from, LogStart: start, HighWatermark: p.next}
	}
	var out []core.Record
	size := 0
	for _, s := range p.segs {
		if s.next <= from {
			continue
		}
		for _, b := range s.batches {
			if b.count == 0 || b.base+int64(b.count) <= from {
				continue
			}
			recs, err := core.DecodeRecords(nil, b.recs, b.base)
			if err != nil {
				return nil, err // cannot happen: the store encoded them
			}
			for _, r := range recs {
				if r.Offset < from {
					continue
				}
				if len(out) == maxRecords || len(out) > 0 && maxBytes > 0 && size+r.Size() > maxBytes {
					return out, nil
				}
				size += r.Size()
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// OffsetForTime implements core.PartitionLog.
func (p *Partition) OffsetForTime(_ context.Context, ts int64) (int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, s := range p.segs {
		for _, b := range s.batches {
			if b.count == 0 || b.maxTs < ts {
				continue
			}
			recs, err := core.DecodeRecords(nil, b.recs, b.base)
			if err != nil {
				return 0, err
			}
			for _, r := range recs {
				if r.Timestamp >= ts {
					return r.Offset, nil
				}
			}
		}
	}
	return p.next, nil
}

// Changed implements core.PartitionLog: closed after the next write
// (appends, transactions, trims; also one that changed nothing).
func (p *Partition) Changed() <-chan struct{} {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.changed
}

// HighWatermark implements core.PartitionLog.
func (p *Partition) HighWatermark() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.next
}

// LogStart implements core.PartitionLog: the first segment's base offset.
func (p *Partition) LogStart() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.segs[0].base
}

// Segments implements core.PartitionLog.
func (p *Partition) Segments() []core.SegmentInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]core.SegmentInfo, len(p.segs))
	for i, s := range p.segs {
		out[i] = core.SegmentInfo{BaseOffset: s.base, NextOffset: s.next, Bytes: s.bytes, Active: i == len(p.segs)-1}
		if s.hasTs {
			out[i].MaxTimestamp = s.maxTs
		}
	}
	return out
}

// IsLeader implements core.PartitionLog: as SetLeader last set it.
func (p *Partition) IsLeader() bool { return p.leader.Load() }

// StateGet implements core.PartitionState: a copy of the value.
func (p *Partition) StateGet(key string) ([]byte, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	v, ok := p.state[key]
	return bytes.Clone(v), ok
}

// StateScan implements core.PartitionState: one consistent snapshot, in
// key order; fn runs without the partition's lock.
func (p *Partition) StateScan(prefix string, fn func(key string, value []byte) bool) {
	p.mu.RLock()
	keys := make([]string, 0, 16)
	for k := range p.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = bytes.Clone(p.state[k])
	}
	p.mu.RUnlock()
	for i, k := range keys {
		if !fn(k, vals[i]) {
			return
		}
	}
}
