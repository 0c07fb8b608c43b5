package raftlog

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// Tiered storage in the partition state machine (docs/tiered-storage.md).
// The manifest — the segments held in object storage — is replicated state:
// an upload becomes visible only once a cmdTierAdd entry records it (as a
// kindTierAdd control batch, replayed by Open like other control batches),
// and local copies go only through a cmdLocalTrim entry, never past what
// the manifest covers. Whatever deletes segment files (local trims, and
// retention trims that change the manifest) first writes the checkpoint,
// after an fsync of the segments, so no manifest change is lost with the
// files it was recorded in.
const (
	cmdTierAdd    byte  = 4 // [ver][cmd][JSON remoteSeg]
	cmdLocalTrim  byte  = 5 // [ver][cmd][u64 offset]
	kindTierAdd   uint8 = 4 // control batch: the JSON remoteSeg
	resultStale   byte  = 5 // a tier add that does not continue the manifest
	maxRemoteSegs       = 1 << 20
)

// remoteSeg is one segment held in object storage: offsets [Base, Next)
// can be read from the object under Key (which may also hold batches below
// Base, uploaded by a leader whose segments were cut elsewhere).
type remoteSeg struct {
	Base  int64  `json:"base"`
	Next  int64  `json:"next"`
	MaxTs int64  `json:"max_ts"`
	Bytes int64  `json:"bytes"`
	Key   string `json:"key"`
}

func encodeTierAdd(s remoteSeg) []byte {
	b, _ := json.Marshal(s) // plain fields: cannot fail
	return append([]byte{cmdVersion, cmdTierAdd}, b...)
}

func encodeLocalTrim(offset int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{cmdVersion, cmdLocalTrim}, uint64(offset))
}

// tierView is what readers need of the tiered state, replaced as a whole
// under partitionSM.tierMu (never modified in place).
type tierView struct {
	remote      []remoteSeg // oldest first, contiguous
	uploadedEnd int64       // highest Next ever recorded: never goes down
}

func (v *tierView) remoteEnd() int64 {
	if len(v.remote) == 0 {
		return 0
	}
	return v.remote[len(v.remote)-1].Next
}

// find returns the remote segment holding offset.
func (v *tierView) find(offset int64) (remoteSeg, bool) {
	for _, s := range v.remote {
		if s.Base <= offset && offset < s.Next {
			return s, true
		}
	}
	return remoteSeg{}, false
}

func (p *partitionSM) tier() *tierView {
	p.tierMu.RLock()
	defer p.tierMu.RUnlock()
	return p.tv
}

func (p *partitionSM) setTier(v *tierView) {
	p.tierMu.Lock()
	p.tv = v
	p.tierMu.Unlock()
}

// applyTierAdd records an uploaded segment when it continues the manifest:
// its Base is where the uploads ended, or beyond that only when retention
// already deleted everything in between. Anything else (a second leader's
// upload of the same range) answers resultStale, and its uploader deletes
// the object.
func (p *partitionSM) applyTierAdd(index uint64, cmd []byte) (sm.Result, error) {
	var s remoteSeg
	if err := json.Unmarshal(cmd[2:], &s); err != nil || s.Key == "" || s.Next <= s.Base {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	v := p.tier()
	start := p.logStart.Load()
	ok := s.Base == v.uploadedEnd || (s.Base > v.uploadedEnd && s.Base <= start)
	if !ok || s.Next > p.seg.NextOffset() || len(v.remote) >= maxRemoteSegs {
		return sm.Result{Data: []byte{resultStale}}, nil
	}
	err := p.seg.Append(segment.Batch{RaftIndex: index, Kind: kindTierAdd, BaseOffset: p.seg.NextOffset(), Payload: cmd[2:]})
	if err != nil {
		return sm.Result{}, fmt.Errorf("record an upload in shard %d: %w", p.shardID, err)
	}
	p.addRemote(s)
	return sm.Result{Value: uint64(s.Next), Data: []byte{resultOK}}, nil
}

// addRemote appends a recorded upload to the manifest.
func (p *partitionSM) addRemote(s remoteSeg) {
	v := p.tier()
	p.setTier(&tierView{remote: append(append([]remoteSeg(nil), v.remote...), s), uploadedEnd: s.Next})
}

// replayTierAdd re-applies a kindTierAdd batch found after the checkpoint
// at Open (it was accepted when applied).
func (p *partitionSM) replayTierAdd(b segment.Batch) error {
	var s remoteSeg
	if err := json.Unmarshal(b.Payload, &s); err != nil {
		return fmt.Errorf("%w: tier add batch: %v", errBadCommand, err)
	}
	if s.Base >= p.tier().uploadedEnd || len(p.tier().remote) == 0 {
		p.addRemote(s)
	}
	return nil
}

// applyLocalTrim drops local segments wholly below offset, never past what
// object storage holds. The log start does not move.
func (p *partitionSM) applyLocalTrim(index uint64, cmd []byte) (sm.Result, error) {
	if len(cmd) != 10 {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	off := min(int64(binary.BigEndian.Uint64(cmd[2:])), p.tier().uploadedEnd)
	if err := p.checkpointAt(index); err != nil {
		return sm.Result{}, err
	}
	if _, err := p.seg.DeleteBefore(off); err != nil {
		return sm.Result{}, fmt.Errorf("local trim of shard %d: %w", p.shardID, err)
	}
	return sm.Result{Value: uint64(p.seg.StartOffset()), Data: []byte{resultOK}}, nil
}

// trimRemote drops the manifest entries wholly below offset (the topic's
// retention); it reports whether any went.
func (p *partitionSM) trimRemote(offset int64) bool {
	v := p.tier()
	i := 0
	for i < len(v.remote) && v.remote[i].Next <= offset {
		i++
	}
	if i == 0 {
		return false
	}
	p.setTier(&tierView{remote: append([]remoteSeg(nil), v.remote[i:]...), uploadedEnd: v.uploadedEnd})
	return true
}

// checkpointAt makes the state as of entry index durable now: segments
// fsynced, then the checkpoint (with the manifest) written.
func (p *partitionSM) checkpointAt(index uint64) error {
	p.applied = index
	return p.Sync()
}
