package raftlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// recentBatches is how many batches per producer are remembered for
// answering retries with their original offsets (Kafka keeps 5 as well).
const recentBatches = 5

// batchRef is one remembered producer batch.
type batchRef struct {
	Seq   int64 `json:"seq"`
	Count int64 `json:"count"`
	Base  int64 `json:"base"`
}

// producerState is the idempotence state of one producer on one partition.
type producerState struct {
	Next   int64      `json:"next"`    // the next expected sequence
	Recent []batchRef `json:"recent"`  // newest last
	LastTs int64      `json:"last_ts"` // leader-stamped time of its last batch
}

// checkpoint is the partition state that does not live in segment batches;
// Sync writes it, Open reads it and replays the segment tail after Index.
type checkpoint struct {
	Index     uint64                    `json:"index"`
	LogStart  int64                     `json:"log_start"`
	Producers map[string]*producerState `json:"producers"`
	State     map[string][]byte         `json:"state,omitempty"`
	// Tiered storage: the manifest and how far uploads got (tier_sm.go).
	Remote      []remoteSeg `json:"remote,omitempty"`
	UploadedEnd int64       `json:"uploaded_end,omitempty"`
}

// partitionSM is the Dragonboat on-disk state machine of one partition: the
// segment log plus the producer table. Dragonboat serialises Update, Sync,
// PrepareSnapshot and RecoverFromSnapshot; reads (Read, HighWatermark,
// Changed) run concurrently on other goroutines and only touch the segment
// log (safe for that) and atomics.
type partitionSM struct {
	shardID   uint64
	replicaID uint64
	dir       string
	segCfg    segment.Config    // its FS holds the checkpoint too
	onApply   func(bytes int64) // called after each Update with bytes appended

	seg       *segment.Log
	applied   uint64
	producers map[string]*producerState

	stateMu sync.RWMutex // guards state: written by Update, read by any goroutine
	state   map[string][]byte

	tierMu sync.RWMutex // guards tv: replaced by Update, read by any goroutine
	tv     *tierView

	hwm        atomic.Int64
	logStart   atomic.Int64 // first offset held anywhere (remote or local)
	localStart atomic.Int64 // first offset held in the local segments
	remoteEnd  atomic.Int64 // one past the last offset in object storage, 0 none
	closed     atomic.Bool
	opened     atomic.Bool // Open finished: seg may be read from other goroutines
	// caughtUp: a linearizable read succeeded since Open, so the replica
	// applied every entry committed before it started (after a restart,
	// Dragonboat replays the Raft log tail asynchronously).
	caughtUp atomic.Bool

	notifyMu sync.Mutex
	notifyCh chan struct{}
}

var _ sm.IOnDiskStateMachine = (*partitionSM)(nil)

func newPartitionSM(shardID uint64, dir string, segCfg segment.Config, onApply func(int64)) *partitionSM {
	return &partitionSM{
		shardID:   shardID,
		dir:       dir,
		segCfg:    segCfg,
		onApply:   onApply,
		producers: map[string]*producerState{},
		state:     map[string][]byte{},
		tv:        &tierView{},
		notifyCh:  make(chan struct{}),
	}
}

func (p *partitionSM) checkpointPath() string { return filepath.Join(p.dir, "checkpoint.json") }

// Open recovers the segment log (dropping a torn tail), loads the checkpoint
// and replays the control and record batches written after it. It returns
// the Raft index of the last entry whose effects are on disk.
func (p *partitionSM) Open(stopc <-chan struct{}) (uint64, error) {
	cfg := p.segCfg // segment.Open creates p.dir durably
	cfg.Dir = filepath.Join(p.dir, "segments")
	seg, err := segment.Open(cfg)
	if err != nil {
		return 0, fmt.Errorf("open segments of shard %d: %w", p.shardID, err)
	}
	p.seg = seg
	var ck checkpoint
	if b, err := readFile(p.segCfg.FS, p.checkpointPath()); err == nil {
		if err := json.Unmarshal(b, &ck); err != nil {
			return 0, fmt.Errorf("checkpoint of shard %d: %w", p.shardID, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	if ck.Producers != nil {
		p.producers = ck.Producers
	}
	if ck.State != nil {
		p.state = ck.State
	}
	p.tv = &tierView{remote: ck.Remote, uploadedEnd: ck.UploadedEnd}
	err = seg.Scan(ck.Index, func(b segment.Batch) error {
		switch b.Kind {
		case kindRecords, kindRecordsS2:
			pid, seq, _, err := splitEnvelope(b.Payload)
			if err != nil {
				return err
			}
			p.recordProducer(pid, seq, int64(b.Count), b.BaseOffset, b.MaxTimestamp)
		case kindTxn:
			return p.replayTxn(b)
		case kindTierAdd:
			return p.replayTierAdd(b)
		case kindTrim:
			if len(b.Payload) == 8 {
				if _, err := seg.DeleteBefore(int64(binary.BigEndian.Uint64(b.Payload))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("replay shard %d: %w", p.shardID, err)
	}
	p.applied = max(ck.Index, seg.LastIndex())
	p.publish()
	p.opened.Store(true)
	return p.applied, nil
}

// Update applies committed entries: appends write one segment batch each.
func (p *partitionSM) Update(entries []sm.Entry) ([]sm.Entry, error) {
	var appended int64
	for i := range entries {
		e := &entries[i]
		typ, err := checkHeader(e.Cmd)
		if err != nil {
			e.Result = sm.Result{Data: []byte{resultCorrupt}}
			continue
		}
		switch typ {
		case cmdAppend, cmdAppendS2:
			e.Result, err = p.applyAppend(e.Index, e.Cmd)
			appended += int64(len(e.Cmd))
		case cmdTrim:
			e.Result, err = p.applyTrim(e.Index, e.Cmd)
		case cmdTxn:
			e.Result, err = p.applyTxn(e.Index, e.Cmd)
			appended += int64(len(e.Cmd))
		case cmdTierAdd:
			e.Result, err = p.applyTierAdd(e.Index, e.Cmd)
		case cmdLocalTrim:
			e.Result, err = p.applyLocalTrim(e.Index, e.Cmd)
		case cmdMirrorAppend: // mirror.go
			e.Result, err = p.applyMirrorAppend(e.Index, e.Cmd)
			appended += int64(len(e.Cmd))
		case cmdMirrorStart:
			e.Result, err = p.applyMirrorStart(e.Index, e.Cmd)
		default:
			e.Result = sm.Result{Data: []byte{resultCorrupt}}
		}
		if err != nil {
			return nil, err // an I/O error: Dragonboat stops the node rather than diverge
		}
		p.applied = e.Index
	}
	p.publish()
	if p.onApply != nil {
		p.onApply(appended)
	}
	return entries, nil
}

func (p *partitionSM) applyAppend(index uint64, cmd []byte) (sm.Result, error) {
	c, err := decodeAppend(cmd)
	if err != nil || c.count == 0 {
		// An append without records would be a batch the segment log
		// refuses, and an error here stops the node at every replay.
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	if c.producerID != "" {
		if ps := p.producers[c.producerID]; ps != nil && c.sequence != ps.Next {
			for _, r := range ps.Recent {
				if r.Seq == c.sequence && r.Count == int64(c.count) {
					return sm.Result{Value: uint64(r.Base), Data: []byte{resultDuplicate}}, nil
				}
			}
			data := []byte{resultSequence}
			data = binary.BigEndian.AppendUint64(data, uint64(ps.Next))
			return sm.Result{Data: data}, nil
		}
	}
	base := p.seg.NextOffset()
	kind := kindRecords
	if c.compressed {
		kind = kindRecordsS2
	}
	err = p.seg.Append(segment.Batch{
		RaftIndex:    index,
		Kind:         kind,
		BaseOffset:   base,
		Count:        c.count,
		MaxTimestamp: c.maxTimestamp,
		Payload:      c.envelope,
	})
	if err != nil {
		return sm.Result{}, fmt.Errorf("append to shard %d: %w", p.shardID, err)
	}
	p.recordProducer(c.producerID, c.sequence, int64(c.count), base, c.maxTimestamp)
	return sm.Result{Value: uint64(base), Data: []byte{resultOK}}, nil
}

func (p *partitionSM) recordProducer(pid string, seq, count, base, ts int64) {
	if pid == "" {
		return
	}
	ps := p.producers[pid]
	if ps == nil {
		ps = &producerState{}
		p.producers[pid] = ps
	}
	ps.Next = seq + count
	ps.LastTs = ts
	ps.Recent = append(ps.Recent, batchRef{Seq: seq, Count: count, Base: base})
	if len(ps.Recent) > recentBatches {
		ps.Recent = append(ps.Recent[:0], ps.Recent[len(ps.Recent)-recentBatches:]...)
	}
}

func (p *partitionSM) applyTrim(index uint64, cmd []byte) (sm.Result, error) {
	off, err := decodeTrim(cmd)
	if err != nil {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	payload := binary.BigEndian.AppendUint64(nil, uint64(off))
	err = p.seg.Append(segment.Batch{RaftIndex: index, Kind: kindTrim, BaseOffset: p.seg.NextOffset(), Payload: payload})
	if err != nil {
		return sm.Result{}, err
	}
	if p.trimRemote(off) || p.tier().uploadedEnd > 0 {
		// Make the manifest durable before files that may hold its
		// recorded uploads go.
		if err := p.checkpointAt(index); err != nil {
			return sm.Result{}, err
		}
	}
	if _, err := p.seg.DeleteBefore(off); err != nil {
		return sm.Result{}, err
	}
	p.publish()
	return sm.Result{Value: uint64(p.logStart.Load())}, nil
}

// publish makes the applied state visible to readers and wakes waiters.
func (p *partitionSM) publish() {
	local := p.seg.StartOffset()
	start := local
	v := p.tier()
	if len(v.remote) > 0 && v.remote[0].Base < start {
		start = v.remote[0].Base
	}
	p.hwm.Store(p.seg.NextOffset())
	p.remoteEnd.Store(v.remoteEnd())
	p.localStart.Store(local)
	p.logStart.Store(start)
	p.notifyMu.Lock()
	close(p.notifyCh)
	p.notifyCh = make(chan struct{})
	p.notifyMu.Unlock()
}

func (p *partitionSM) changed() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	return p.notifyCh
}

// Lookup answers the high watermark; reads go to the segment log directly.
func (p *partitionSM) Lookup(q interface{}) (interface{}, error) {
	return p.hwm.Load(), nil
}

// Sync makes everything applied so far durable: segment data first, then the
// checkpoint that names the applied index.
func (p *partitionSM) Sync() error {
	if err := p.seg.Sync(); err != nil {
		return err
	}
	return p.writeCheckpoint()
}

func (p *partitionSM) snapshotState() checkpoint {
	prods := make(map[string]*producerState, len(p.producers))
	for k, v := range p.producers {
		c := *v
		c.Recent = append([]batchRef(nil), v.Recent...)
		prods[k] = &c
	}
	p.stateMu.RLock()
	st := make(map[string][]byte, len(p.state))
	for k, v := range p.state {
		st[k] = v // values are never mutated in place
	}
	p.stateMu.RUnlock()
	v := p.tier()
	return checkpoint{Index: p.applied, LogStart: p.seg.StartOffset(), Producers: prods, State: st,
		Remote: v.remote, UploadedEnd: v.uploadedEnd}
}

func (p *partitionSM) writeCheckpoint() error {
	b, err := json.Marshal(p.snapshotState())
	if err != nil {
		return err
	}
	return writeFileAtomic(p.segCfg.FS, p.checkpointPath(), b)
}

type partitionSnapshot struct {
	state checkpoint
	seg   *segment.Snapshot
}

// PrepareSnapshot captures the state and pins the segment files.
func (p *partitionSM) PrepareSnapshot() (interface{}, error) {
	s, err := p.seg.Capture()
	if err != nil {
		return nil, err
	}
	return &partitionSnapshot{state: p.snapshotState(), seg: s}, nil
}

// SaveSnapshot streams the whole retained partition: a length-prefixed JSON
// state, then the segment stream.
func (p *partitionSM) SaveSnapshot(ctx interface{}, w io.Writer, done <-chan struct{}) error {
	ps := ctx.(*partitionSnapshot)
	defer ps.seg.Release()
	b, err := json.Marshal(ps.state)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return sm.ErrSnapshotStreaming
	}
	if _, err := w.Write(b); err != nil {
		return sm.ErrSnapshotStreaming
	}
	if _, err := ps.seg.WriteTo(w); err != nil {
		return sm.ErrSnapshotStreaming
	}
	return nil
}

// RecoverFromSnapshot replaces the partition with a leader's snapshot.
func (p *partitionSM) RecoverFromSnapshot(r io.Reader, done <-chan struct{}) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 1<<30 {
		return errors.New("raftlog: snapshot state too large")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	var ck checkpoint
	if err := json.Unmarshal(b, &ck); err != nil {
		return err
	}
	if err := p.seg.Restore(r); err != nil {
		return err
	}
	if ck.Producers == nil {
		ck.Producers = map[string]*producerState{}
	}
	if ck.State == nil {
		ck.State = map[string][]byte{}
	}
	p.producers = ck.Producers
	p.stateMu.Lock()
	p.state = ck.State
	p.stateMu.Unlock()
	p.applied = ck.Index
	p.setTier(&tierView{remote: ck.Remote, uploadedEnd: ck.UploadedEnd})
	if err := p.writeCheckpoint(); err != nil {
		return err
	}
	p.publish()
	return nil
}

// Close releases the segment files.
func (p *partitionSM) Close() error {
	if p.closed.Swap(true) || p.seg == nil {
		return nil
	}
	return p.seg.Close()
}
