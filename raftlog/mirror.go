package raftlog

import (
	"context"
	"encoding/binary"
	"fmt"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// Mirror appends (geo-replication, docs/geo-replication.md): a cluster
// link copies a source partition into a mirror partition with the same
// offsets. Both commands are conditional on the partition's next offset
// and applied deterministically, so a retry after an unknown outcome, a
// second puller after a leader change, or a replay after a restart never
// writes a record twice.
const (
	// cmdMirrorAppend is [ver][cmd][u64 expected base][an append command]:
	// applied as that append only when the next offset is the expected base.
	cmdMirrorAppend byte = 6
	// cmdMirrorStart is [ver][cmd][u64 offset]: when the next offset is
	// below offset, the log restarts empty at offset (a kindTrim batch at
	// that base, then the segments below it go).
	cmdMirrorStart byte = 7

	// resultBaseOffset: a mirror append's base did not match; Value is the
	// partition's next offset.
	resultBaseOffset byte = 4
)

const mirrorHeaderLen = 2 + 8

func encodeMirrorAppend(base int64, appendCmd []byte) []byte {
	b := make([]byte, 0, mirrorHeaderLen+len(appendCmd))
	b = append(b, cmdVersion, cmdMirrorAppend)
	b = binary.BigEndian.AppendUint64(b, uint64(base))
	return append(b, appendCmd...)
}

func encodeMirrorStart(offset int64) []byte {
	b := []byte{cmdVersion, cmdMirrorStart}
	return binary.BigEndian.AppendUint64(b, uint64(offset))
}

func (p *partitionSM) applyMirrorAppend(index uint64, cmd []byte) (sm.Result, error) {
	if len(cmd) < mirrorHeaderLen+appendHeaderLen {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	base := int64(binary.BigEndian.Uint64(cmd[2:]))
	if next := p.seg.NextOffset(); base != next {
		return sm.Result{Value: uint64(next), Data: []byte{resultBaseOffset}}, nil
	}
	return p.applyAppend(index, cmd[mirrorHeaderLen:])
}

func (p *partitionSM) applyMirrorStart(index uint64, cmd []byte) (sm.Result, error) {
	if len(cmd) != mirrorHeaderLen {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	off := int64(binary.BigEndian.Uint64(cmd[2:]))
	if off <= p.seg.NextOffset() {
		return sm.Result{Value: uint64(p.seg.NextOffset())}, nil
	}
	// The trim batch sits at off: the log's next offset becomes off, and
	// a replay deletes what lies below it again (Open's kindTrim case).
	payload := binary.BigEndian.AppendUint64(nil, uint64(off))
	if err := p.seg.Append(segment.Batch{RaftIndex: index, Kind: kindTrim, BaseOffset: off, Payload: payload}); err != nil {
		return sm.Result{}, err
	}
	if p.trimRemote(off) || p.tier().uploadedEnd > 0 {
		if err := p.checkpointAt(index); err != nil {
			return sm.Result{}, err
		}
	}
	if _, err := p.seg.DeleteBefore(off); err != nil {
		return sm.Result{}, err
	}
	p.publish()
	return sm.Result{Value: uint64(off)}, nil
}

var _ core.MirrorLog = (*Partition)(nil)
var _ core.MirrorLog = (*routed)(nil)

// AppendAt implements core.MirrorLog: b's records keep their timestamps
// (a zero one gets b.Timestamp); no producer id.
func (p *Partition) AppendAt(ctx context.Context, base int64, b *core.AppendBatch) (core.AppendResult, error) {
	if b.ProducerID != "" {
		return core.AppendResult{}, core.Invalidf("a mirror append has no producer id")
	}
	inner, err := appendCommand(b) // cmdAppend or cmdAppendS2, as any append
	if err != nil {
		return core.AppendResult{}, err
	}
	res, err := p.h.propose(ctx, p.shardID, encodeMirrorAppend(base, inner))
	if err != nil {
		return core.AppendResult{}, err
	}
	if len(res.Data) == 0 {
		return core.AppendResult{}, fmt.Errorf("%w: empty append result", core.ErrUnavailable)
	}
	switch res.Data[0] {
	case resultOK:
		return core.AppendResult{BaseOffset: int64(res.Value)}, nil
	case resultBaseOffset:
		return core.AppendResult{}, &core.BaseOffsetError{Expected: base, Next: int64(res.Value)}
	default:
		return core.AppendResult{}, fmt.Errorf("%w: the partition rejected a corrupt batch", core.ErrBadRequest)
	}
}

// StartAt implements core.MirrorLog.
func (p *Partition) StartAt(ctx context.Context, offset int64) error {
	_, err := p.h.propose(ctx, p.shardID, encodeMirrorStart(offset))
	return err
}

// AppendAt implements core.MirrorLog on this node's replica (Dragonboat
// hands a follower's proposal to the leader); ErrUnavailable when the
// node hosts none.
func (r *routed) AppendAt(ctx context.Context, base int64, b *core.AppendBatch) (core.AppendResult, error) {
	if r.local == nil {
		return core.AppendResult{}, fmt.Errorf("%w: node hosts no replica of %s/%d", core.ErrUnavailable, r.topic, r.partition)
	}
	return r.local.AppendAt(ctx, base, r.stored(b))
}

// StartAt implements core.MirrorLog on this node's replica.
func (r *routed) StartAt(ctx context.Context, offset int64) error {
	if r.local == nil {
		return fmt.Errorf("%w: node hosts no replica of %s/%d", core.ErrUnavailable, r.topic, r.partition)
	}
	return r.local.StartAt(ctx, offset)
}
