package raftlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/core"
)

// Any node serves any partition. Host.Partition returns a routed handle:
// reads are served from the local replica when this node hosts one (applied
// entries are committed, so any replica's log is a consistent prefix) and
// from another replica's node otherwise. A write goes to the partition's
// leader: here, or through the Forwarder to the leader's node (with
// Config.FollowerWrites "propose", a follower replica here takes it and
// Dragonboat hands it to the leader inside Raft), or to a replica's node
// when this node hosts none. A call forwarded from another node carries its
// hop count, and a node forwards a write onwards only while the count is
// below maxHops, so a call never loops; past the limit a node with a
// replica proposes locally and a node without one answers not_leader.
//
// A replica serves reads only once it has caught up (Partition.catchUp):
// after a restart it may hold a stale prefix. A call taken from a client
// (hops 0) whose local replica has not caught up gives it catchUpWait and
// then reads from another replica through the Forwarder, the leader first;
// only when no other replica answers does it wait for the local one as long
// as the call allows. A forwarded read is served here or not at all: it
// waits for the local replica within the caller's deadline.

const (
	maxHops       = 2
	remoteTimeout = 5 * time.Second        // a forwarded read or state query
	infoTimeout   = time.Second            // HighWatermark/LogStart of a remote partition
	infoMaxAge    = 200 * time.Millisecond // how long a remote HWM is reused
	pollInterval  = 100 * time.Millisecond // Changed() of a remote partition
	aliveWindow   = 2 * time.Second        // a node that answered a ping this recently is up
	// catchUpWait bounds how long a client's read waits for a restarted
	// local replica to catch up before it asks another replica.
	catchUpWait  = 250 * time.Millisecond
	catchUpRetry = 2 * time.Second // after a failed catchUpWait, read elsewhere this long
)

// errUnknownOutcome marks an attempt whose effect is unknown (it timed out
// or lost its connection after it was sent).
var errUnknownOutcome = errors.New("outcome unknown")

// routed is the core.PartitionLog every Host.Partition call returns.
type routed struct {
	h         *Host
	topic     string
	partition int
	shard     uint64
	// compression is the topic's Compression setting when the handle was
	// made (core.CompressBatch).
	compression string
	local       *Partition // nil: no open replica here
	hops        int        // nodes the call crossed before reaching this one
	// missedAt (UnixNano, 0 never): when a bounded catch-up of local last
	// failed on this handle; for catchUpRetry after it, reads through the
	// handle go to another replica without waiting again.
	missedAt atomic.Int64
}

var _ core.PartitionLog = (*routed)(nil)

// Partition returns a handle on any partition of the cluster.
func (h *Host) Partition(topic string, partition int) (core.PartitionLog, error) {
	return h.routedPartition(topic, partition, 0)
}

// ForwardedPartition implements core.Cluster.
func (h *Host) ForwardedPartition(topic string, partition, hops int) (core.PartitionLog, error) {
	return h.routedPartition(topic, partition, hops)
}

func (h *Host) routedPartition(topic string, partition, hops int) (*routed, error) {
	pm, cfg, err := h.partitionAndTopic(topic, partition)
	if err != nil {
		return nil, err
	}
	r := &routed{h: h, topic: topic, partition: partition, shard: pm.ShardID, compression: cfg.Compression, hops: hops}
	if psm := h.localSM(pm.ShardID); psm != nil {
		r.local = &Partition{h: h, shardID: pm.ShardID, sm: psm}
	}
	if r.local == nil && h.cfg.Forwarder == nil {
		h.kick()
		return nil, fmt.Errorf("%w: partition %s/%d is not hosted on node %d yet", core.ErrUnavailable, topic, partition, h.cfg.NodeID)
	}
	return r, nil
}

// HostsReplica implements core.Cluster.
func (h *Host) HostsReplica(topic string, partition int) bool {
	pm, err := h.partitionMeta(topic, partition)
	return err == nil && h.localSM(pm.ShardID) != nil
}

// localSM returns the open local replica of shard, or nil.
func (h *Host) localSM(shard uint64) *partitionSM {
	h.mu.Lock()
	psm := h.parts[shard]
	h.mu.Unlock()
	if psm == nil || !psm.opened.Load() {
		return nil
	}
	return psm
}

func (r *routed) route(node uint64, addr string) core.Route {
	return core.Route{Node: node, Addr: addr, Topic: r.topic, Partition: r.partition, Hops: r.hops + 1}
}

// target is where one write attempt goes.
type target struct {
	local  *Partition
	leader uint64 // local: the leader's replica id when the attempt was chosen
	node   uint64
	addr   string
	wait   bool // no usable leader right now: back off and look again
}

// writeTarget picks the node for a write attempt; attempt counts earlier
// failed attempts (to rotate among candidates).
func (r *routed) writeTarget(attempt int) (target, error) {
	h := r.h
	pm, err := h.partitionMeta(r.topic, r.partition)
	if err != nil {
		return target{}, err
	}
	if pm.ShardID != r.shard {
		return target{}, fmt.Errorf("%w: partition %s/%d was recreated", core.ErrUnavailable, r.topic, r.partition)
	}
	if psm := h.localSM(r.shard); psm != nil {
		local := &Partition{h: h, shardID: r.shard, sm: psm}
		lid, _, ok, err := h.nh.GetLeaderID(r.shard)
		if err == nil && ok && lid == psm.replicaID {
			return target{local: local, leader: lid}, nil
		}
		node, known := pm.nodeOf(lid)
		if err != nil || !ok || !known || !h.alive(node) {
			// No usable leader here: this replica may be cut off from the
			// others. Every other attempt asks the other replicas' nodes,
			// which may know (and reach) the new leader.
			if attempt%2 == 1 && r.hops < maxHops && h.cfg.Forwarder != nil {
				if cands := h.candidates(&pm); len(cands) > 0 {
					c := cands[(attempt/2)%len(cands)]
					return target{node: c, addr: h.httpAddr(c)}, nil
				}
			}
			return target{wait: true}, nil
		}
		// A follower replica: propose here (Dragonboat hands the proposal
		// to the leader and the answer comes when this replica applies
		// it; dedupe is in the state machine, and a timed-out attempt is
		// an unknown outcome like a forwarded one), or forward over HTTP
		// (Config.FollowerWrites).
		if h.cfg.FollowerWrites == FollowerForward && r.hops < maxHops && h.cfg.Forwarder != nil {
			if addr := h.httpAddr(node); addr != "" {
				return target{node: node, addr: addr}, nil
			}
		}
		return target{local: local, leader: lid}, nil // Dragonboat forwards it to the leader
	}
	if r.hops >= maxHops || h.cfg.Forwarder == nil {
		return target{}, &core.NotLeaderError{Leader: h.leaderHint(r.shard), Msg: fmt.Sprintf("node %d hosts no replica of %s/%d", h.cfg.NodeID, r.topic, r.partition)}
	}
	cands := h.candidates(&pm)
	if len(cands) == 0 {
		return target{wait: true}, nil
	}
	c := cands[attempt%len(cands)]
	return target{node: c, addr: h.httpAddr(c)}, nil
}

// candidates orders the nodes of a partition a call without a local replica
// should try: the known leader, the preferred leader, then the rest; nodes
// not seen up recently go last.
func (h *Host) candidates(pm *PartitionMeta) []uint64 {
	hint := h.leaderHint(pm.ShardID)
	var nodes []uint64
	seen := map[uint64]bool{}
	add := func(n uint64) {
		if n != 0 && !seen[n] && n != h.cfg.NodeID && h.httpAddr(n) != "" {
			seen[n] = true
			nodes = append(nodes, n)
		}
	}
	member := func(n uint64) bool {
		for _, m := range pm.members() {
			if m == n {
				return true
			}
		}
		return false
	}
	if member(hint) {
		add(hint)
	}
	if member(pm.Preferred) {
		add(pm.Preferred)
	}
	rest := make([]uint64, 0, len(pm.members()))
	for _, n := range pm.members() {
		rest = append(rest, n)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i] < rest[j] })
	for _, n := range rest {
		add(n)
	}
	sort.SliceStable(nodes, func(i, j int) bool { return h.alive(nodes[i]) && !h.alive(nodes[j]) })
	return nodes
}

// write runs one write with retries: attempts that certainly did not apply
// are retried at the current leader; an attempt whose outcome is unknown is
// retried only when the write is idempotent (a producer sequence, a trim).
// It reports through unknown whether some attempt's outcome was unknown.
func (r *routed) write(ctx context.Context, idempotent bool, unknown *bool,
	local func(ctx context.Context, p *Partition) error,
	remote func(ctx context.Context, to core.Route) error) error {
	backoff := 5 * time.Millisecond
	var last error
	for attempt := 0; ; attempt++ {
		t, err := r.writeTarget(attempt)
		switch {
		case err != nil:
		case t.wait:
			err = &core.NotLeaderError{Msg: fmt.Sprintf("partition %s/%d has no leader right now", r.topic, r.partition)}
		default:
			actx, cancel := r.attemptContext(ctx, idempotent, t)
			if t.local != nil {
				err = local(actx, t.local)
			} else {
				r.h.forwardedWrites.Add(1)
				err = remote(actx, r.route(t.node, t.addr))
				r.noteRemote(t.node, err)
			}
			if err != nil && ctx.Err() == nil && actx.Err() != nil {
				err = fmt.Errorf("%w: %v", errUnknownOutcome, err)
			}
			cancel()
		}
		if err == nil {
			return nil
		}
		last = err
		// A quiet partition's replicas do not time out a leader that is
		// gone (quiesce.go): a failed attempt wakes the local one.
		if !isDomainError(err) {
			r.h.wake(r.shard)
		}
		switch {
		case errors.Is(err, core.ErrNotLeader):
			// Certainly not applied: try again.
		case isDomainError(err):
			return err
		default:
			*unknown = true
			if !idempotent {
				if errors.Is(err, core.ErrUnavailable) {
					return err
				}
				return fmt.Errorf("%w: %v (the write may or may not have been applied; an idempotent producer can retry safely)", core.ErrUnavailable, err)
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", core.ErrUnavailable, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", core.ErrUnavailable, last)
		case <-r.h.stopC:
			return fmt.Errorf("%w: node is stopping", core.ErrUnavailable)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// attemptContext bounds one attempt of a write. An idempotent write's
// attempt ends after AttemptTimeout or at the shard's next leader change
// (the attempt may be stuck at a leader that is gone), so that the write is
// tried again at the new leader. Another local proposal ends when the
// shard's leader becomes another replica than the one it was handed to:
// Dragonboat says nothing when that leader dies, so without this a plain
// produce would wait for its deadline; it ends with an unknown outcome
// instead (the entry may still commit). Other writes wait for their
// outcome until ctx ends.
func (r *routed) attemptContext(ctx context.Context, idempotent bool, t target) (context.Context, context.CancelFunc) {
	switch {
	case idempotent:
		changed := r.h.leaderChanged(r.shard)
		from, term, ok, err := r.h.nh.GetLeaderID(r.shard)
		known := err == nil && ok
		actx, cancel := context.WithTimeout(ctx, r.h.cfg.AttemptTimeout)
		go func() {
			for {
				select {
				case <-changed:
				case <-actx.Done():
					return
				}
				// Dragonboat reports a new shard's first leader
				// asynchronously: that event, naming the leader and term
				// the attempt began with, is no change. Cancelling on it
				// made the first append of a new topic an unknown outcome,
				// retried, and answered as a duplicate.
				changed = r.h.leaderChanged(r.shard)
				lid, t, ok, err := r.h.nh.GetLeaderID(r.shard)
				if !known || err != nil || !ok || lid != from || t != term {
					cancel()
					return
				}
			}
		}()
		return actx, cancel
	case t.local != nil && t.leader != 0:
		actx, cancel := context.WithCancel(ctx)
		go func() {
			for {
				changed := r.h.leaderChanged(r.shard)
				if lid, _, ok, err := r.h.nh.GetLeaderID(r.shard); err == nil && ok && lid != t.leader {
					cancel()
					return
				}
				select {
				case <-changed:
				case <-actx.Done():
					return
				}
			}
		}()
		return actx, cancel
	}
	return context.WithCancel(ctx)
}

// noteRemote learns from a forwarded call's answer.
func (r *routed) noteRemote(node uint64, err error) {
	var nl *core.NotLeaderError
	switch {
	case err == nil:
		r.h.setHint(r.shard, node)
	case errors.As(err, &nl) && nl.Leader != 0:
		r.h.setHint(r.shard, nl.Leader)
	case errors.Is(err, core.ErrNotLeader):
		r.h.setHint(r.shard, 0)
		if errors.Is(err, core.ErrUnavailable) { // could not reach it at all
			r.h.markDown(node)
		}
	}
}

// isDomainError reports errors that are the request's own answer.
func isDomainError(err error) bool {
	for _, e := range []error{core.ErrBadRequest, core.ErrTooLarge, core.ErrOutOfOrderSequence,
		core.ErrTopicNotFound, core.ErrPartitionNotFound, core.ErrOffsetOutOfRange} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Append implements core.PartitionLog.
func (r *routed) Append(ctx context.Context, b *core.AppendBatch) (core.AppendResult, error) {
	b = r.stored(b)
	var res core.AppendResult
	unknown := false
	err := r.write(ctx, b.ProducerID != "", &unknown,
		func(ctx context.Context, p *Partition) (err error) { res, err = p.Append(ctx, b); return },
		func(ctx context.Context, to core.Route) (err error) {
			res, err = r.h.cfg.Forwarder.Append(ctx, to, b)
			return
		})
	// When an earlier attempt with an unknown outcome landed, the retry
	// answers duplicate with the original offsets: the batch is in the log
	// once, as the producer asked.
	return res, err
}

// stored is b as the topic's compression setting has it stored: b itself,
// or a copy with Compress changed.
func (r *routed) stored(b *core.AppendBatch) *core.AppendBatch {
	c := core.CompressBatch(r.compression, b.Compress)
	if c == b.Compress {
		return b
	}
	cp := *b
	cp.Compress = c
	return &cp
}

// ApplyTxn implements core.PartitionState.
func (r *routed) ApplyTxn(ctx context.Context, txn *core.StateTxn) (core.TxnResult, error) {
	var res core.TxnResult
	unknown := false
	err := r.write(ctx, false, &unknown,
		func(ctx context.Context, p *Partition) (err error) { res, err = p.ApplyTxn(ctx, txn); return },
		func(ctx context.Context, to core.Route) (err error) {
			res, err = r.h.cfg.Forwarder.ApplyTxn(ctx, to, txn)
			return
		})
	return res, err
}

// TrimTo implements core.PartitionLog; a trim is idempotent.
func (r *routed) TrimTo(ctx context.Context, offset int64) error {
	unknown := false
	return r.write(ctx, true, &unknown,
		func(ctx context.Context, p *Partition) error { return p.TrimTo(ctx, offset) },
		func(ctx context.Context, to core.Route) error { return r.h.cfg.Forwarder.TrimTo(ctx, to, offset) })
}

// remoteRead runs f against the partition's nodes in candidate order until
// one serves it.
func (r *routed) remoteRead(ctx context.Context, f func(ctx context.Context, to core.Route) error) error {
	if r.hops > 0 {
		// A forwarded read is served by the node it was sent to.
		return &core.NotLeaderError{Leader: r.h.leaderHint(r.shard), Msg: fmt.Sprintf("node %d hosts no replica of %s/%d", r.h.cfg.NodeID, r.topic, r.partition)}
	}
	pm, err := r.h.partitionMeta(r.topic, r.partition)
	if err != nil {
		return err
	}
	cands := r.h.candidates(&pm)
	if len(cands) == 0 {
		return fmt.Errorf("%w: no node of partition %s/%d is reachable", core.ErrUnavailable, r.topic, r.partition)
	}
	if r.local != nil {
		// The local replica's view of the leader is fresher than the hint.
		if lid, _, ok, err := r.h.nh.GetLeaderID(r.shard); err == nil && ok && lid != r.local.sm.replicaID {
			if n, ok := pm.nodeOf(lid); ok {
				for i, c := range cands {
					if c == n {
						copy(cands[1:i+1], cands[:i])
						cands[0] = n
						break
					}
				}
			}
		}
	}
	for _, n := range cands {
		err = f(ctx, r.route(n, r.h.httpAddr(n)))
		r.noteRemote(n, err)
		if err == nil || isDomainError(err) || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %v", core.ErrUnavailable, err)
}

// mayReadElsewhere reports whether a read may go to another replica: it was
// taken from a client (a forwarded read is served here or not at all) and
// the partition has another node to ask.
func (r *routed) mayReadElsewhere() bool {
	if r.hops > 0 || r.h.cfg.Forwarder == nil {
		return false
	}
	pm, err := r.h.partitionMeta(r.topic, r.partition)
	return err == nil && len(r.h.candidates(&pm)) > 0
}

// localReady reports whether the local replica may serve a read now: it
// has caught up since it started, or catches up within catchUpWait (not
// tried again for catchUpRetry after a miss). elsewhere says the read should
// go to another replica; when no other replica may serve it, localReady
// waits as long as ctx allows (Partition.catchUp's default without a
// deadline) and err is the read's answer.
func (r *routed) localReady(ctx context.Context) (elsewhere bool, err error) {
	p := r.local
	if p.sm.caughtUp.Load() {
		return false, nil
	}
	if !r.mayReadElsewhere() {
		return false, p.catchUp(ctx)
	}
	if at := r.missedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < catchUpRetry {
		return true, nil
	}
	cctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	if p.catchUp(cctx) != nil {
		r.missedAt.Store(time.Now().UnixNano())
		return true, nil
	}
	return false, nil
}

// elsewhereFailed reports whether a read sent to other replicas failed for
// want of a replica (not with the request's own answer), so that the local
// replica is worth waiting for.
func elsewhereFailed(ctx context.Context, err error) bool {
	return err != nil && !isDomainError(err) && ctx.Err() == nil
}

// Read implements core.PartitionLog.
func (r *routed) Read(ctx context.Context, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	if r.local == nil {
		return r.readElsewhere(ctx, from, maxRecords, maxBytes)
	}
	if elsewhere, err := r.localReady(ctx); err != nil {
		return nil, err
	} else if !elsewhere {
		return r.readLocal(ctx, from, maxRecords, maxBytes)
	}
	out, err := r.readElsewhere(ctx, from, maxRecords, maxBytes)
	if elsewhereFailed(ctx, err) {
		// No other replica served it: wait for this one (catchUp).
		return r.local.Read(ctx, from, maxRecords, maxBytes)
	}
	return out, err
}

// readLocal reads the local replica. At the end of its log the replica
// confirms its end with a ReadIndex round (Partition.Read); when another
// replica may serve the read and the round does not succeed within
// catchUpWait (this node is cut off from a quorum, or behind a slow one),
// the read goes there rather than waiting.
func (r *routed) readLocal(ctx context.Context, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	if !r.mayReadElsewhere() {
		return r.local.Read(ctx, from, maxRecords, maxBytes)
	}
	out, err := r.local.read(ctx, from, maxRecords, maxBytes, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, catchUpWait)
		defer cancel()
		return r.local.readIndex(cctx)
	})
	if !errors.Is(err, core.ErrUnavailable) || ctx.Err() != nil {
		return out, err
	}
	out, err = r.readElsewhere(ctx, from, maxRecords, maxBytes)
	if elsewhereFailed(ctx, err) {
		return r.local.Read(ctx, from, maxRecords, maxBytes) // as long as ctx allows
	}
	return out, err
}

func (r *routed) readElsewhere(ctx context.Context, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	var out []core.Record
	err := r.remoteRead(ctx, func(ctx context.Context, to core.Route) error {
		rctx, cancel := context.WithTimeout(ctx, remoteTimeout)
		defer cancel()
		res, err := r.h.cfg.Forwarder.Read(rctx, to, core.ReadRequest{From: from, MaxRecords: maxRecords, MaxBytes: maxBytes, Timestamp: -1})
		if err == nil {
			out = res.Records
			r.h.setRemoteInfo(r.shard, res.HighWatermark, res.LogStart)
		}
		return err
	})
	return out, err
}

// OffsetForTime implements core.PartitionLog.
func (r *routed) OffsetForTime(ctx context.Context, ts int64) (int64, error) {
	if r.local == nil {
		return r.offsetElsewhere(ctx, ts)
	}
	if elsewhere, err := r.localReady(ctx); err != nil {
		return 0, err
	} else if !elsewhere {
		return r.local.OffsetForTime(ctx, ts)
	}
	off, err := r.offsetElsewhere(ctx, ts)
	if elsewhereFailed(ctx, err) {
		if err := r.local.catchUp(ctx); err != nil {
			return 0, err
		}
		return r.local.OffsetForTime(ctx, ts)
	}
	return off, err
}

func (r *routed) offsetElsewhere(ctx context.Context, ts int64) (int64, error) {
	var off int64
	err := r.remoteRead(ctx, func(ctx context.Context, to core.Route) error {
		rctx, cancel := context.WithTimeout(ctx, remoteTimeout)
		defer cancel()
		res, err := r.h.cfg.Forwarder.Read(rctx, to, core.ReadRequest{Timestamp: ts})
		if err == nil {
			off = res.Offset
			r.h.setRemoteInfo(r.shard, res.HighWatermark, res.LogStart)
		}
		return err
	})
	return off, err
}

// Changed implements core.PartitionLog. Without a local replica there is
// nothing to wait on: the channel closes after a short interval, so that a
// long-poll re-reads (the gateway sends fetches to a replica's node instead).
func (r *routed) Changed() <-chan struct{} {
	if r.local != nil {
		return r.local.Changed()
	}
	ch := make(chan struct{})
	time.AfterFunc(pollInterval, func() { close(ch) })
	return ch
}

// HighWatermark implements core.PartitionLog.
func (r *routed) HighWatermark() int64 {
	hwm, _ := r.info()
	return hwm
}

// LogStart implements core.PartitionLog.
func (r *routed) LogStart() int64 {
	_, start := r.info()
	return start
}

// info answers HighWatermark and LogStart: from the local replica once it
// has caught up (localReady), else from another replica, else from the
// local replica after waiting (infoTimeout in all) for it to catch up. A replica still catching
// up may report a high watermark below what was acknowledged; it is the
// answer of last resort.
func (r *routed) info() (hwm, start int64) {
	p := r.local
	if p == nil {
		hwm, start, _ = r.remoteInfo()
		return hwm, start
	}
	if p.sm.caughtUp.Load() { // the common case: no context to allocate
		return p.HighWatermark(), p.LogStart()
	}
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	if elsewhere, _ := r.localReady(ctx); elsewhere {
		if hwm, start, ok := r.remoteInfo(); ok {
			return hwm, start
		}
		_ = p.catchUp(ctx)
	}
	return p.HighWatermark(), p.LogStart()
}

// remoteInfo asks another replica for the partition's HighWatermark and
// LogStart (cached for infoMaxAge). The query is an OffsetForTime past
// every record, which the serving replica answers only once it has caught
// up, so the high watermark is never one a restarted replica lags behind.
func (r *routed) remoteInfo() (hwm, start int64, ok bool) {
	if hwm, start, ok := r.h.cachedRemoteInfo(r.shard); ok {
		return hwm, start, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	err := r.remoteRead(ctx, func(ctx context.Context, to core.Route) error {
		res, err := r.h.cfg.Forwarder.Read(ctx, to, core.ReadRequest{From: -1, Timestamp: math.MaxInt64})
		if err == nil {
			hwm, start = res.HighWatermark, res.LogStart
			r.h.setRemoteInfo(r.shard, hwm, start)
		}
		return err
	})
	return hwm, start, err == nil
}

// Segments implements core.PartitionLog (local replicas only).
func (r *routed) Segments() []core.SegmentInfo {
	if r.local != nil {
		return r.local.Segments()
	}
	return nil
}

// IsLeader implements core.PartitionLog.
func (r *routed) IsLeader() bool { return r.local != nil && r.local.IsLeader() }

// StateGet implements core.PartitionState.
func (r *routed) StateGet(key string) ([]byte, bool) {
	if r.stateLocal() {
		return r.local.StateGet(key)
	}
	m, err := r.remoteState(key, true)
	if err != nil && r.local != nil {
		r.waitLocal()
		return r.local.StateGet(key)
	}
	v, ok := m[key]
	return v, ok
}

// StateScan implements core.PartitionState.
func (r *routed) StateScan(prefix string, fn func(string, []byte) bool) {
	if r.stateLocal() {
		r.local.StateScan(prefix, fn)
		return
	}
	m, err := r.remoteState(prefix, false)
	if err != nil && r.local != nil {
		r.waitLocal()
		r.local.StateScan(prefix, fn)
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !fn(k, m[k]) {
			return
		}
	}
}

// stateLocal reports whether a state read is served by the local replica
// (localReady within remoteTimeout).
func (r *routed) stateLocal() bool {
	if r.local == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	elsewhere, _ := r.localReady(ctx) // a failed wait leaves the local state as the only answer
	return !elsewhere
}

// waitLocal gives the local replica remoteTimeout to catch up when no other
// replica answered a state read; the state interface has no error to
// return, so the local state is the answer of last resort.
func (r *routed) waitLocal() {
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	if err := r.local.catchUp(ctx); err != nil {
		r.h.log.Warn("partition state read from a replica still catching up", "topic", r.topic, "partition", r.partition, "err", err)
	}
}

func (r *routed) remoteState(prefix string, exact bool) (map[string][]byte, error) {
	var out map[string][]byte
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	err := r.remoteRead(ctx, func(ctx context.Context, to core.Route) error {
		m, err := r.h.cfg.Forwarder.State(ctx, to, prefix, exact)
		out = m
		return err
	})
	if err != nil {
		r.h.log.Debug("remote partition state", "topic", r.topic, "partition", r.partition, "err", err)
	}
	return out, err
}

// FetchRoute implements core.Cluster: a fetch is served here when this node
// has the partition's replica and, for a fixed offset, that replica already
// holds it; otherwise at the leader (or another replica).
func (h *Host) FetchRoute(topic string, partition int, offset int64) (*core.Route, error) {
	pm, err := h.partitionMeta(topic, partition)
	if err != nil {
		return nil, err
	}
	if h.cfg.Forwarder == nil {
		return nil, nil
	}
	if psm := h.localSM(pm.ShardID); psm != nil {
		if offset < 0 || offset <= psm.hwm.Load() {
			return nil, nil
		}
		// The client saw an offset this replica has not applied yet.
		if lid, _, ok, err := h.nh.GetLeaderID(pm.ShardID); err == nil && ok && lid != psm.replicaID {
			if n, ok := pm.nodeOf(lid); ok && h.alive(n) && h.httpAddr(n) != "" {
				return &core.Route{Node: n, Addr: h.httpAddr(n), Topic: topic, Partition: partition, Hops: 1}, nil
			}
		}
		return nil, nil
	}
	for _, n := range h.candidates(&pm) {
		if h.alive(n) {
			return &core.Route{Node: n, Addr: h.httpAddr(n), Topic: topic, Partition: partition, Hops: 1}, nil
		}
	}
	return nil, fmt.Errorf("%w: no node of partition %s/%d is reachable", core.ErrUnavailable, topic, partition)
}

// httpAddr is a node's advertised HTTP address ("" unknown).
func (h *Host) httpAddr(node uint64) string {
	var a string
	h.meta.read(func(st *metaState) {
		if n := st.Nodes[node]; n != nil && n.State != nodeRemoved {
			a = n.HTTPAddr
		}
	})
	return a
}

func (h *Host) leaderHint(shard uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hints[shard]
}

func (h *Host) setHint(shard, node uint64) {
	h.mu.Lock()
	if node == 0 {
		delete(h.hints, shard)
	} else {
		h.hints[shard] = node
	}
	h.mu.Unlock()
}

// alive reports whether a node answered a ping recently. Without a
// Forwarder (a single node) every node counts as up.
func (h *Host) alive(node uint64) bool {
	if node == h.cfg.NodeID || h.cfg.Forwarder == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Since(h.seen[node]) < aliveWindow
}

func (h *Host) markDown(node uint64) {
	h.mu.Lock()
	delete(h.seen, node)
	h.mu.Unlock()
}

// probeLoop pings every other node twice a second (liveness for routing,
// leader balancing and cluster status).
func (h *Host) probeLoop() {
	defer h.wg.Done()
	if h.cfg.Forwarder == nil {
		return
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		var targets []NodeInfo
		h.meta.read(func(st *metaState) {
			for id, n := range st.Nodes {
				if id != h.cfg.NodeID && n.State != nodeRemoved && n.HTTPAddr != "" {
					targets = append(targets, *n)
				}
			}
		})
		for _, n := range targets {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
				defer cancel()
				if h.cfg.Forwarder.Ping(ctx, n.HTTPAddr) == nil {
					h.mu.Lock()
					first := time.Since(h.seen[n.ID]) >= aliveWindow
					h.seen[n.ID] = time.Now()
					h.mu.Unlock()
					if first {
						h.kick()
					}
				}
			}()
		}
		if h.cfg.Quiesce {
			h.wakeOrphans()
		}
		select {
		case <-h.stopC:
			return
		case <-t.C:
		}
	}
}

// remoteInfo caches the HWM of partitions not hosted here.
type remoteInfo struct {
	hwm, start int64
	at         time.Time
}

func (h *Host) cachedRemoteInfo(shard uint64) (int64, int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ri, ok := h.rinfo[shard]
	if !ok || time.Since(ri.at) > infoMaxAge {
		return 0, 0, false
	}
	return ri.hwm, ri.start, true
}

func (h *Host) setRemoteInfo(shard uint64, hwm, start int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rinfo[shard] = remoteInfo{hwm: hwm, start: start, at: time.Now()}
}
