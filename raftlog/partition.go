package raftlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// Partition is a handle on one partition shard hosted by this node. It
// implements core.PartitionLog.
type Partition struct {
	h       *Host
	shardID uint64
	sm      *partitionSM
}

var _ core.PartitionLog = (*Partition)(nil)

// Append proposes the batch as one Raft entry and waits for it to be applied
// on this node (after a quorum fsynced it to the Raft log).
func (p *Partition) Append(ctx context.Context, b *core.AppendBatch) (core.AppendResult, error) {
	cmd, err := appendCommand(b)
	if err != nil {
		return core.AppendResult{}, err
	}
	res, err := p.h.propose(ctx, p.shardID, cmd)
	if err != nil {
		return core.AppendResult{}, err
	}
	return appendResult(res, b)
}

var (
	_ core.AppendProposer = (*Partition)(nil)
	_ core.AppendProposer = (*routed)(nil)
)

// ProposeAppend implements core.AppendProposer: the batch is queued on the
// shard as one entry, once (a proposal Dragonboat drops is not retried,
// which could put a later one before it: wait reports it as not applied,
// core.ErrNotLeader, and the caller retries the batch in its own order).
func (p *Partition) ProposeAppend(b *core.AppendBatch) (func(context.Context) (core.AppendResult, error), error) {
	cmd, err := appendCommand(b)
	if err != nil {
		return nil, err
	}
	rs, err := p.h.nh.Propose(p.h.nh.GetNoOPSession(p.shardID), cmd, p.h.cfg.ProposalTimeout)
	switch {
	case errors.Is(err, dragonboat.ErrPayloadTooBig):
		return nil, fmt.Errorf("%w: batch exceeds the Raft entry limit", core.ErrTooLarge)
	case err != nil:
		return nil, fmt.Errorf("%w: %v (nothing was queued)", core.ErrNotLeader, err)
	}
	return func(ctx context.Context) (core.AppendResult, error) {
		res, err := awaitQueued(ctx, rs)
		switch {
		case err == nil:
			return appendResult(res, b)
		case errors.Is(err, errNotApplied):
			return core.AppendResult{}, fmt.Errorf("%w: %v", core.ErrNotLeader, err)
		case ctx.Err() != nil:
			return core.AppendResult{}, fmt.Errorf("%w: %v (the write may or may not have been applied; an idempotent producer can retry safely)", core.ErrUnavailable, err)
		}
		return core.AppendResult{}, err
	}, nil
}

// errNotApplied is a queued proposal Raft dropped, rejected or aborted:
// certainly not applied.
var errNotApplied = errors.New("the proposal was dropped (not applied)")

// awaitQueued waits for the outcome of a proposal queued with Propose: its
// result once applied; errNotApplied when it certainly was not;
// core.ErrUnavailable when the outcome is unknown (a timeout) or the shard
// is stopping; ctx's error when ctx ends first (the outcome is unknown).
func awaitQueued(ctx context.Context, rs *dragonboat.RequestState) (sm.Result, error) {
	select {
	case r := <-rs.ResultC():
		rs.Release()
		switch {
		case r.Completed():
			return r.GetResult(), nil
		case r.Dropped(), r.Rejected(), r.Aborted():
			return sm.Result{}, errNotApplied
		case r.Terminated():
			return sm.Result{}, fmt.Errorf("%w: shard is shutting down", core.ErrUnavailable)
		default:
			return sm.Result{}, fmt.Errorf("%w: proposal timed out (its outcome is unknown)", core.ErrUnavailable)
		}
	case <-ctx.Done():
		return sm.Result{}, ctx.Err()
	}
}

// ProposeAppend implements core.AppendProposer where this node's replica
// leads the partition; elsewhere it fails with core.ErrNotLeader.
func (r *routed) ProposeAppend(b *core.AppendBatch) (func(context.Context) (core.AppendResult, error), error) {
	p, err := r.leading()
	if err != nil {
		return nil, err
	}
	return p.ProposeAppend(r.stored(b))
}

// appendCommand encodes b as an append entry.
func appendCommand(b *core.AppendBatch) ([]byte, error) {
	if len(b.Records) == 0 {
		return nil, core.Invalidf("an append needs at least one record")
	}
	maxTs := b.Stamp()
	size := 64 + len(b.ProducerID)
	for i := range b.Records {
		size += b.Records[i].Size()
	}
	cmd := make([]byte, 0, size)
	cmd = encodeAppend(cmd, b.ProducerID, b.Sequence, b.Timestamp, maxTs, len(b.Records), nil)
	head := len(cmd)
	cmd = core.AppendRecords(cmd, b.Records)
	if b.Compress {
		if c := compressAppend(cmd, head); c != nil {
			return c, nil
		}
	}
	return cmd, nil
}

// appendResult decodes the state machine's answer to b's entry.
func appendResult(res sm.Result, b *core.AppendBatch) (core.AppendResult, error) {
	if len(res.Data) == 0 {
		return core.AppendResult{}, fmt.Errorf("%w: empty append result", core.ErrUnavailable)
	}
	switch res.Data[0] {
	case resultOK:
		return core.AppendResult{BaseOffset: int64(res.Value)}, nil
	case resultDuplicate:
		return core.AppendResult{BaseOffset: int64(res.Value), Duplicate: true}, nil
	case resultSequence:
		var exp int64
		if len(res.Data) >= 9 {
			exp = int64(binary.BigEndian.Uint64(res.Data[1:]))
		}
		return core.AppendResult{}, &core.SequenceError{ProducerID: b.ProducerID, Expected: exp, Got: b.Sequence}
	default:
		return core.AppendResult{}, fmt.Errorf("%w: the partition rejected a corrupt batch", core.ErrBadRequest)
	}
}

// catchUp waits, once per replica start, until the replica has applied
// everything committed before it (a ReadIndex round): until then a restarted
// replica would serve a stale prefix and a high watermark below what was
// acknowledged.
func (p *Partition) catchUp(ctx context.Context) error {
	if p.sm.caughtUp.Load() {
		return nil
	}
	if err := p.readIndex(ctx); err != nil {
		return err
	}
	p.sm.caughtUp.Store(true)
	return nil
}

// readIndex waits until this replica has applied everything the shard had
// committed when it was called (a ReadIndex round: the leader confirms its
// commit index with a quorum). Without a deadline in ctx it waits at most
// 5 s.
func (p *Partition) readIndex(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	backoff := 5 * time.Millisecond
	for {
		_, err := p.h.nh.SyncRead(ctx, p.shardID, nil)
		if err == nil {
			return nil
		}
		// No leader yet (the shard just started): wait for one, within ctx.
		if !dragonboat.IsTempError(err) {
			return fmt.Errorf("%w: partition replica is catching up: %v", core.ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: partition replica is catching up: %v", core.ErrUnavailable, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// Read serves records from this node's applied segments, and below the
// local log start of a tiered partition from object storage (tier_read.go).
func (p *Partition) Read(ctx context.Context, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	return p.read(ctx, from, maxRecords, maxBytes, p.readIndex)
}

// read is Read with confirm as the ReadIndex round at the end of the log.
func (p *Partition) read(ctx context.Context, from int64, maxRecords, maxBytes int, confirm func(context.Context) error) ([]core.Record, error) {
	if err := p.catchUp(ctx); err != nil {
		return nil, err
	}
	start, hwm := p.sm.logStart.Load(), p.sm.hwm.Load()
	if from < start {
		return nil, &core.OffsetRangeError{Offset: from, LogStart: start, HighWatermark: hwm}
	}
	if from >= hwm {
		// At or past the end of this replica's log. A follower may be
		// behind the leader, and a leader cut off from the others may
		// have been replaced: answering "nothing here", or "out of range"
		// for an offset a client read up to elsewhere (a Kafka consumer
		// whose partition changed leader resets to its reset policy on
		// that answer), could hide records already acknowledged. A
		// ReadIndex round first makes the answer linearizable
		// (docs/guarantees.md, "Reads"); a replica that cannot reach a
		// quorum answers unavailable instead.
		if err := confirm(ctx); err != nil {
			return nil, err
		}
		switch start, hwm = p.sm.logStart.Load(), p.sm.hwm.Load(); {
		case from > hwm:
			return nil, &core.OffsetRangeError{Offset: from, LogStart: start, HighWatermark: hwm}
		case from == hwm:
			return nil, nil
		}
	}
	if maxRecords <= 0 {
		maxRecords = 500
	}
	if from < p.sm.localStart.Load() {
		return p.readRemote(ctx, from, maxRecords, maxBytes)
	}
	out, err := readRecords(p.sm.seg, from, maxRecords, maxBytes)
	if errors.Is(err, segment.ErrOutOfRange) {
		if from >= p.sm.logStart.Load() && from < p.sm.seg.StartOffset() {
			// Local retention dropped it meanwhile: it is in object storage.
			return p.readRemote(ctx, from, maxRecords, maxBytes)
		}
		return nil, &core.OffsetRangeError{Offset: from, LogStart: p.sm.logStart.Load(), HighWatermark: p.sm.hwm.Load()}
	}
	if err != nil {
		return nil, fmt.Errorf("read shard %d: %w", p.shardID, err)
	}
	return out, nil
}

// readRecords decodes up to maxRecords records (about maxBytes, at least
// one) of a segment log from offset from: the partition's own log or a
// segment fetched from object storage. Errors wrap segment.ErrOutOfRange
// when from is outside l.
func readRecords(l *segment.Log, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	var out []core.Record
	var derr error
	bytes := 0
	err := l.Read(from, maxBytes, func(b segment.Batch) bool {
		if b.Count == 0 || (b.Kind != kindRecords && b.Kind != kindRecordsS2 && b.Kind != kindTxn) {
			return true
		}
		env := b.Payload
		if b.Kind == kindTxn {
			var err error
			if env, err = txnEnvelope(env); err != nil {
				derr = err
				return false
			}
		}
		recs, err := skipEnvelope(env)
		if err == nil && b.Kind == kindRecordsS2 {
			recs, err = decompressRecords(recs)
		}
		if err != nil {
			derr = err
			return false
		}
		n := len(out)
		out, err = core.DecodeRecords(out, recs, b.BaseOffset)
		if err != nil {
			derr = err
			return false
		}
		// Drop records of the first batch below from.
		if n == 0 && b.BaseOffset < from {
			skip := int(from - b.BaseOffset)
			if skip > len(out) {
				skip = len(out)
			}
			out = out[skip:]
		}
		for _, r := range out[n:] {
			bytes += r.Size()
		}
		return len(out) < maxRecords && (maxBytes <= 0 || bytes < maxBytes)
	})
	if err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	if len(out) > maxRecords {
		out = out[:maxRecords]
	}
	// Keep at least one record; otherwise stay within maxBytes.
	if maxBytes > 0 {
		total := 0
		for i, r := range out {
			total += r.Size()
			if total > maxBytes && i > 0 {
				out = out[:i]
				break
			}
		}
	}
	return out, nil
}

// OffsetForTime finds the first record with a timestamp ≥ ts.
func (p *Partition) OffsetForTime(ctx context.Context, ts int64) (int64, error) {
	off := p.sm.seg.OffsetForTime(ts)
	if r, ok := p.remoteOffsetForTime(ts); ok {
		off = r
	}
	// The segment answers at batch granularity: refine inside the batch.
	hwm := p.sm.hwm.Load()
	for off < hwm {
		recs, err := p.Read(ctx, off, 500, 1<<20)
		if err != nil {
			return 0, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Timestamp >= ts {
				return r.Offset, nil
			}
		}
		off = recs[len(recs)-1].Offset + 1
	}
	return hwm, nil
}

func (p *Partition) Changed() <-chan struct{} { return p.sm.changed() }
func (p *Partition) HighWatermark() int64     { return p.sm.hwm.Load() }
func (p *Partition) LogStart() int64          { return p.sm.logStart.Load() }

// Segments lists the segments in object storage (Remote), then the local
// segments that hold offsets past them: what the topic's retention weighs.
func (p *Partition) Segments() []core.SegmentInfo {
	v := p.sm.tier()
	out := make([]core.SegmentInfo, 0, len(v.remote)+4)
	for _, r := range v.remote {
		out = append(out, core.SegmentInfo{BaseOffset: r.Base, NextOffset: r.Next, MaxTimestamp: r.MaxTs, Bytes: r.Bytes, Remote: true})
	}
	end := v.remoteEnd()
	for _, s := range localSegments(p.sm.seg) {
		if len(v.remote) == 0 || s.NextOffset > end || s.Active {
			out = append(out, s)
		}
	}
	return out
}

// localSegments lists a segment log's segments for the domain.
func localSegments(l *segment.Log) []core.SegmentInfo {
	segs := l.Segments()
	out := make([]core.SegmentInfo, len(segs))
	for i, s := range segs {
		out[i] = core.SegmentInfo{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, MaxTimestamp: s.MaxTimestamp, Bytes: s.Bytes, Active: s.Active}
	}
	return out
}

// TrimTo replicates a retention decision.
func (p *Partition) TrimTo(ctx context.Context, offset int64) error {
	_, err := p.h.propose(ctx, p.shardID, encodeTrim(offset))
	return err
}

// IsLeader reports whether this node's replica leads the shard.
func (p *Partition) IsLeader() bool {
	lid, _, ok, err := p.h.nh.GetLeaderID(p.shardID)
	return err == nil && ok && lid == p.sm.replicaID
}
