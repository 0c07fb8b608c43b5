package core

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Group commit of produces (docs/RATIONALE.md, "Group commit of produces").
//
// Every produce used to be its own Raft proposal: its own entry, encoded,
// written to the Raft log, applied and answered on its own. Dragonboat puts
// the proposals that arrive together into one step and one fsync, but the
// per-entry work stays, and at 64 single-record HTTP produces in flight it
// bounded the node (about 6,000 records/s R1, p50 above a second at 10,000
// offered). The committer bounds the proposals in flight per partition;
// produces that arrive while all are busy wait and are merged into the next
// proposal, one entry for all of them, and each gets its own records'
// offsets back. A produce that finds a slot free is proposed at once, alone:
// nothing waits for a timer, so one producer at a time sees no added latency.
//
// Idempotent produces (a producer id and sequence) are never merged: the
// partition checks a sequence per entry. Produces above
// groupCommitMaxProduce are not merged either.

const (
	// groupCommitBytes bounds the records' bytes of one merged proposal.
	groupCommitBytes = 1 << 20
	// groupCommitMaxProduce is the largest produce (records' bytes) that
	// takes part in group commit. Larger ones carry enough records to pay
	// for their own entry, and proposing them directly keeps Dragonboat's
	// pipeline (the next step's fsync during this one's apply) for them:
	// with 100-record produces one proposal in flight per partition
	// halved the throughput.
	groupCommitMaxProduce = 64 << 10
)

// committer merges concurrent appends to one partition. Its mutex guards
// queues and every commitQueue in it; it is never held across an append.
type committer struct {
	limit      int // proposals in flight per partition; < 1: no merging
	maxRecords int // records of one merged proposal
	tel        *Telemetry

	mu     sync.Mutex
	queues map[partitionKey]*commitQueue
}

type partitionKey struct {
	topic     string
	partition int
}

// commitQueue is one partition's state: proposals in flight and the
// appends waiting for a slot, in arrival order.
type commitQueue struct {
	inflight int
	waiting  []*pendingAppend
}

// pendingAppend is one produce's batch waiting for, or riding in, a
// proposal. done is closed once res and err are set.
type pendingAppend struct {
	ctx   context.Context
	log   PartitionLog
	batch *AppendBatch
	taken bool // in a proposal (guarded by committer.mu)
	done  chan struct{}
	res   AppendResult
	err   error
}

func newCommitter(limit, maxRecords int, tel *Telemetry) *committer {
	return &committer{limit: limit, maxRecords: maxRecords, tel: tel, queues: map[partitionKey]*commitQueue{}}
}

// append appends b to log (partition p of topic) and returns its result, as
// Telemetry.Append does; b may share a proposal with other appends.
func (c *committer) append(ctx context.Context, log PartitionLog, topic string, p int, b *AppendBatch) (AppendResult, error) {
	if c.limit < 1 || b.ProducerID != "" || b.size() > groupCommitMaxProduce {
		return c.tel.Append(ctx, log, topic, p, b)
	}
	key := partitionKey{topic, p}
	w := &pendingAppend{ctx: ctx, log: log, batch: b, done: make(chan struct{})}
	c.mu.Lock()
	q := c.queues[key]
	if q == nil {
		q = &commitQueue{}
		c.queues[key] = q
	}
	if q.inflight < c.limit && len(q.waiting) == 0 {
		// A free slot: propose now, on this goroutine.
		q.inflight++
		w.taken = true
		c.mu.Unlock()
		c.commit(topic, p, []*pendingAppend{w})
		if next := c.next(key, q); next != nil {
			go c.run(key, q, next)
		}
		return w.res, w.err
	}
	q.waiting = append(q.waiting, w)
	c.mu.Unlock()
	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if !w.taken {
		for i, o := range q.waiting {
			if o == w {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		return AppendResult{}, fmt.Errorf("%w: %v while waiting to be proposed (nothing was written)", ErrUnavailable, ctx.Err())
	}
	c.mu.Unlock()
	select {
	case <-w.done: // finished meanwhile: the outcome is known
		return w.res, w.err
	default:
	}
	return AppendResult{}, fmt.Errorf("%w: %v (the write may or may not have been applied; an idempotent producer can retry safely)", ErrUnavailable, ctx.Err())
}

// run proposes group and then every group that waits for the slot it
// holds, until none does.
func (c *committer) run(key partitionKey, q *commitQueue, group []*pendingAppend) {
	for group != nil {
		c.commit(key.topic, key.partition, group)
		group = c.next(key, q)
	}
}

// next hands the slot just freed on: it takes the waiting appends that
// fit one proposal (at least one), or, when none waits, gives the slot
// back and returns nil.
func (c *committer) next(key partitionKey, q *commitQueue) []*pendingAppend {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(q.waiting) == 0 {
		q.inflight--
		if q.inflight == 0 {
			delete(c.queues, key)
		}
		return nil
	}
	n, records, bytes := 0, 0, 0
	for _, w := range q.waiting {
		r, s := len(w.batch.Records), w.batch.size()
		if n > 0 && (records+r > c.maxRecords || bytes+s > groupCommitBytes) {
			break
		}
		n, records, bytes = n+1, records+r, bytes+s
	}
	group := make([]*pendingAppend, n)
	copy(group, q.waiting[:n])
	q.waiting = append(q.waiting[:0], q.waiting[n:]...)
	for _, w := range group {
		w.taken = true
	}
	return group
}

// commit proposes group as one batch and hands each append its part of
// the result; a failed proposal fails every append in it.
func (c *committer) commit(topic string, p int, group []*pendingAppend) {
	defer func() {
		for _, w := range group {
			close(w.done)
		}
	}()
	if len(group) == 1 {
		w := group[0]
		w.res, w.err = c.tel.Append(w.ctx, w.log, topic, p, w.batch)
		return
	}
	// Each produce keeps its own acceptance time on its records; the
	// merged batch's Timestamp is the latest of them.
	merged := &AppendBatch{}
	n := 0
	for _, w := range group {
		w.batch.Stamp()
		merged.Timestamp = max(merged.Timestamp, w.batch.Timestamp)
		merged.Compress = merged.Compress || w.batch.Compress
		n += len(w.batch.Records)
	}
	merged.Records = make([]Record, 0, n)
	for _, w := range group {
		merged.Records = append(merged.Records, w.batch.Records...)
	}
	ctx, cancel := groupContext(group)
	defer cancel()
	res, err := c.tel.Append(ctx, group[0].log, topic, p, merged)
	base := res.BaseOffset
	for _, w := range group {
		w.err = err
		if err == nil {
			w.res = AppendResult{BaseOffset: base}
		}
		base += int64(len(w.batch.Records))
	}
}

// groupContext is the context of a merged proposal: the first append's
// values (its trace), not cancelled when one append gives up, and ended at
// the latest deadline of the group (none if one has none).
func groupContext(group []*pendingAppend) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(group[0].ctx)
	var latest time.Time
	for _, w := range group {
		dl, ok := w.ctx.Deadline()
		if !ok {
			return context.WithCancel(ctx)
		}
		if dl.After(latest) {
			latest = dl
		}
	}
	return context.WithDeadline(ctx, latest)
}

// size is the records' bytes.
func (b *AppendBatch) size() int {
	n := 0
	for i := range b.Records {
		n += b.Records[i].Size()
	}
	return n
}
