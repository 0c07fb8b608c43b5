package core

import (
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync/atomic"
)

// Priority subscriptions (Subscription.Priority) hand out the
// highest-priority deliverable message of a partition first; within one
// priority (and one key, for ordering "key") the log order is kept.
//
// Choosing by priority needs to know the priorities of messages the
// subscription has not delivered yet, anywhere in the log. A priority
// subscription therefore takes records from the log into its replicated
// state as soon as it looks at them ("indexing"): each gets an m/ entry
// (status ready, attempt 0) carrying the record's priority, key hash and
// deliver-at time, and the frontier moves past it. The pending index is
// thus part of the replicated state (the same entries leases, retries and
// delays already use): it survives restart and failover, and a new leader
// rebuilds its in-memory view from the state alone. Indexing is bounded
// like every tracked message (QueueConfig.MaxTracked).
//
// The in-memory view (prioIndex, part of the worker's mirror) keeps hints
// so that a batch costs O(messages handed out · log n), not O(tracked):
// per priority a heap of offsets deliverable now, a heap of (due time,
// offset) for leased, delayed and backing-off messages, the tracked
// offsets of each key (ordering "key"), and a heap of every tracked offset
// (for the cursor). Hints are lazy: each is checked against the entry when
// it reaches the top of its heap, and every change of an entry pushes a new
// hint, so a stale one is simply dropped.

// prioIndex is the in-memory view of a priority subscription's entries.
type prioIndex struct {
	ready   [MaxPriority + 1]offHeap // deliverable now (when checked), per priority
	timed   dueHeap                  // deliverable, or dead-lettered (last attempt), from due on
	keys    map[uint64][]int64       // ordering "key": tracked offsets, not dead, ascending
	offs    offHeap                  // every tracked offset (lazy: may hold done ones)
	pending [MaxPriority + 1]int64   // entries waiting for delivery (status ready), per priority
}

type offHeap []int64

func (h offHeap) Len() int           { return len(h) }
func (h offHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h offHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *offHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *offHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

type dueHint struct{ due, off int64 }

type dueHeap []dueHint

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	return h[i].due < h[j].due || h[i].due == h[j].due && h[i].off < h[j].off
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueHint)) }
func (h *dueHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// prioPub is what a priority worker publishes for Receive, which merges
// partitions by priority without asking each one first.
type prioPub struct {
	top     atomic.Int32 // highest priority deliverable at the last batch; -1: none
	indexed atomic.Int64 // the log is indexed below this offset (or the index was full there)
	pending [MaxPriority + 1]atomic.Int64
}

// newPrioIndex builds the view of a freshly loaded mirror.
func newPrioIndex(m *subMirror, sub *Subscription) *prioIndex {
	px := &prioIndex{keys: map[uint64][]int64{}}
	keyed := sub.Ordering == OrderingKey
	px.offs = make(offHeap, 0, len(m.entries))
	for off, e := range m.entries {
		px.offs = append(px.offs, off)
		if e.status == entryReady {
			px.pending[e.prio]++
		}
		if keyed && e.hasKey && e.status != entryDead {
			px.keys[e.keyHash] = append(px.keys[e.keyHash], off)
		}
	}
	heap.Init(&px.offs)
	for _, offs := range px.keys {
		slices.Sort(offs)
	}
	for off, e := range m.entries {
		if e.status != entryDead && px.isHead(sub, off, e) {
			heap.Push(&px.timed, dueHint{dueOf(sub, e), off})
		}
	}
	return px
}

// dueOf is when a tracked message becomes deliverable: a ready one at its
// not-before time, a leased one when its lease and the backoff after it
// end (its last attempt: when the lease ends, to be dead-lettered).
func dueOf(sub *Subscription, e *subEntry) int64 {
	if e.status == entryLeased {
		if sub.final(e.attempt) {
			return e.leaseUntil
		}
		return e.leaseUntil + sub.Backoff.Delay(e.attempt)
	}
	return e.notBefore
}

// isHead reports whether the message at off is not held back by an
// earlier message of its key.
func (px *prioIndex) isHead(sub *Subscription, off int64, e *subEntry) bool {
	if sub.Ordering != OrderingKey || !e.hasKey {
		return true
	}
	offs := px.keys[e.keyHash]
	return len(offs) > 0 && offs[0] == off
}

// hint files the entry at off where the next batch will look for it.
func (t *subTx) hint(off int64, e *subEntry) {
	px, sub := t.w.m.pidx, t.w.sub
	if e.status == entryDead || !px.isHead(sub, off, e) {
		return // dead-lettered, or filed when it heads its key
	}
	due := dueOf(sub, e)
	if due <= t.now && !(e.status == entryLeased && sub.final(e.attempt)) {
		heap.Push(&px.ready[e.prio], off)
		return
	}
	heap.Push(&px.timed, dueHint{due, off})
}

// indexSet keeps the view in step with t.set(off, e); prev is the entry
// before (nil: newly tracked).
func (t *subTx) indexSet(off int64, prev, e *subEntry) {
	px := t.w.m.pidx
	if prev == nil {
		heap.Push(&px.offs, off)
		if t.w.sub.Ordering == OrderingKey && e.hasKey {
			px.keys[e.keyHash] = append(px.keys[e.keyHash], off) // taken in log order
		}
	}
	if e.status == entryDead {
		t.unkey(off, e)
		return
	}
	t.hint(off, e)
}

// unkey removes off from its key's offsets (it is done or dead) and files
// the message that now heads the key.
func (t *subTx) unkey(off int64, e *subEntry) {
	px := t.w.m.pidx
	if t.w.sub.Ordering != OrderingKey || !e.hasKey {
		return
	}
	offs := px.keys[e.keyHash]
	for i, o := range offs {
		if o != off {
			continue
		}
		offs = append(offs[:i], offs[i+1:]...)
		if len(offs) == 0 {
			delete(px.keys, e.keyHash)
		} else {
			px.keys[e.keyHash] = offs
		}
		if i == 0 && len(offs) > 0 {
			if next := t.get(offs[0]); next != nil {
				t.hint(offs[0], next)
			}
		}
		return
	}
}

// promote moves messages whose time has come from the timed heap to their
// priority's heap, and dead-letters expired last attempts.
func (t *subTx) promote() {
	px, sub := t.w.m.pidx, t.w.sub
	for px.timed.Len() > 0 && px.timed[0].due <= t.now {
		h := heap.Pop(&px.timed).(dueHint)
		e := t.get(h.off)
		if e == nil || e.status == entryDead || dueOf(sub, e) != h.due || !px.isHead(sub, h.off, e) {
			continue // stale: a newer hint exists, or it is filed when it heads its key
		}
		if e.status == entryLeased && sub.final(e.attempt) {
			ne := *e
			ne.lastError = "visibility timeout expired"
			t.h.expired++
			t.kill(h.off, &ne)
			continue
		}
		heap.Push(&px.ready[e.prio], h.off)
	}
	if px.timed.Len() > 0 {
		t.due(px.timed[0].due)
	}
}

// deliverable reports whether the ready hint off of priority p still holds.
func (t *subTx) deliverable(p int, off int64) *subEntry {
	sub := t.w.sub
	e := t.get(off)
	if e == nil || e.status == entryDead || int(e.prio) != p || !t.w.m.pidx.isHead(sub, off, e) {
		return nil
	}
	if e.status == entryLeased && (sub.final(e.attempt) || dueOf(sub, e) > t.now) {
		return nil
	}
	if e.status == entryReady && e.notBefore > t.now {
		return nil
	}
	return e
}

// peekReady returns the first deliverable message of priority p (dropping
// stale hints on the way), leaving it in place.
func (t *subTx) peekReady(p int) (int64, *subEntry) {
	h := &t.w.m.pidx.ready[p]
	for h.Len() > 0 {
		off := (*h)[0]
		if e := t.deliverable(p, off); e != nil {
			return off, e
		}
		heap.Pop(h)
	}
	return -1, nil
}

// top returns the highest priority with a deliverable message, or -1.
func (t *subTx) top() int {
	for p := MaxPriority; p >= 0; p-- {
		if off, _ := t.peekReady(p); off >= 0 {
			return p
		}
	}
	return -1
}

// pick takes the next message to hand out: the first of the highest
// priority ≥ minPrio, or with guard the oldest deliverable of any
// priority. ok is false when there is none.
func (t *subTx) pick(minPrio int, guard bool) (int64, *subEntry, bool) {
	best, bestP := int64(-1), -1
	var bestE *subEntry
	for p := MaxPriority; p >= 0; p-- {
		if !guard && p < minPrio {
			break
		}
		off, e := t.peekReady(p)
		if off < 0 {
			continue
		}
		if !guard {
			best, bestP, bestE = off, p, e
			break
		}
		if best < 0 || off < best {
			best, bestP, bestE = off, p, e
		}
	}
	if best < 0 {
		return 0, nil, false
	}
	heap.Pop(&t.w.m.pidx.ready[bestP])
	return best, bestE, true
}

// index takes up to limit fresh records from the log into the state. It
// reports whether the log holds more that the index could take.
func (t *subTx) index(limit int) (more bool, err error) {
	cfg := &t.w.q.cfg
	for scanned, tries := 0, 0; scanned < limit && tries < 8; tries++ {
		if start := t.log.LogStart(); t.h.frontier < start {
			t.h.dropped += start - t.h.frontier // retention removed them unseen
			t.h.frontier = start
			t.dirty = true
		}
		if t.h.frontier >= t.log.HighWatermark() {
			return false, nil
		}
		if t.count >= cfg.MaxTracked {
			return false, nil // full: no more until some are done
		}
		recs, err := t.log.Read(t.ctx, t.h.frontier, min(limit-scanned, cfg.MaxTracked-t.count), 4<<20)
		if errors.As(err, new(*OffsetRangeError)) {
			continue // trimmed under us: the loop moves the frontier
		}
		if err != nil || len(recs) == 0 {
			return false, err
		}
		for i := range recs {
			rec := &recs[i]
			e := &subEntry{status: entryReady, hasKey: rec.Key != nil, prio: RecordPriority(rec), notBefore: DeliverAt(rec)}
			if e.hasKey {
				e.keyHash = keyHash(rec.Key)
			}
			t.h.frontier = rec.Offset + 1
			t.set(rec.Offset, e)
			t.w.cache.put(rec)
		}
		scanned += len(recs)
	}
	return t.h.frontier < t.log.HighWatermark() && t.count < cfg.MaxTracked, nil
}

// fetchWindow is how many records fetch reads from a missed offset on:
// the log stores records in produced batches, so a read of one record
// decodes its neighbours anyway; they go to the cache.
const fetchWindow = 256

// fetch puts the records at offs into t.recs: from the worker's cache, or
// read from the log a window at a time (the window's messages waiting for
// delivery go to the cache). Offsets retention removed are left out of
// t.recs.
func (t *subTx) fetch(offs []int64) error {
	want := make(map[int64]bool, len(offs))
	for _, off := range offs {
		want[off] = true
	}
	sorted := slices.Sorted(slices.Values(offs))
	start := t.log.LogStart()
	for _, off := range sorted {
		if _, ok := t.recs[off]; ok || off < start {
			continue
		}
		if r, ok := t.w.cache.get(off); ok {
			t.recs[off] = r
			continue
		}
		recs, err := t.log.Read(t.ctx, off, fetchWindow, 1<<20)
		if errors.As(err, new(*OffsetRangeError)) {
			continue // removed by retention
		}
		if err != nil {
			return err
		}
		for i := range recs {
			r := &recs[i]
			if want[r.Offset] {
				t.recs[r.Offset] = *r
			} else if e := t.get(r.Offset); e != nil && e.status == entryReady {
				t.w.cache.put(r) // waiting for delivery: likely wanted soon
			}
		}
	}
	return nil
}

// recCache keeps records a priority worker indexed (or read around a
// message it delivered) until they are delivered, up to a byte bound: the
// index reads the log in order, delivery picks from anywhere in it. Owned
// by the worker goroutine; records are immutable, so it outlives mirror
// rebuilds.
type recCache struct {
	recs  map[int64]Record
	bytes int
	limit int
}

func newRecCache(limit int) *recCache { return &recCache{recs: map[int64]Record{}, limit: limit} }

func (c *recCache) get(off int64) (Record, bool) {
	r, ok := c.recs[off]
	return r, ok
}

// put keeps r when there is room (the cache never evicts for newcomers:
// what it holds is what the index met first).
func (c *recCache) put(r *Record) {
	if _, ok := c.recs[r.Offset]; ok || c.bytes+r.Size() > c.limit {
		return
	}
	c.recs[r.Offset] = *r
	c.bytes += r.Size()
}

func (c *recCache) del(off int64) {
	if r, ok := c.recs[off]; ok {
		delete(c.recs, off)
		c.bytes -= r.Size()
	}
}

// prioPick is a message receivePriority chose, before its record is read.
type prioPick struct {
	off int64
	e   *subEntry
}

// receivePriority leases up to op.max messages of priority ≥ op.minPrio,
// highest first (every PriorityGuardEvery-th delivery the oldest).
func (t *subTx) receivePriority(op *wop) {
	every := int64(t.w.sub.PriorityGuardEvery)
	var picks []prioPick
	picked := map[int64]bool{} // a message may have two hints: both pass until it is leased
	for len(picks) < op.max {
		guard := every > 0 && (t.h.delivered+int64(len(picks))+1)%every == 0
		off, e, ok := t.pick(op.minPrio, guard)
		if !ok {
			break
		}
		if !picked[off] {
			picked[off] = true
			picks = append(picks, prioPick{off, e})
		}
	}
	offs := make([]int64, len(picks))
	for i, p := range picks {
		offs[i] = p.off
	}
	if err := t.fetch(offs); err != nil {
		t.unpick(picks)
		op.err = err
		return
	}
	budget := op.maxBytes
	for i, p := range picks {
		if budget <= 0 && len(op.msgs) > 0 {
			t.unpick(picks[i:])
			return
		}
		rec, ok := t.recs[p.off]
		if !ok {
			t.del(p.off) // removed by retention before it was delivered
			t.h.dropped++
			t.w.cache.del(p.off)
			continue
		}
		if p.e.status == entryLeased {
			t.h.expired++
		}
		budget -= rec.Size()
		t.lease(op, p.off, p.e, rec)
		t.w.cache.del(p.off) // a redelivery reads it again
	}
}

// unpick files picked messages back: they stay deliverable.
func (t *subTx) unpick(picks []prioPick) {
	for _, p := range picks {
		heap.Push(&t.w.m.pidx.ready[p.e.prio], p.off)
	}
}

// computePriority is compute's scan and receive step for a priority
// subscription: index new records (for receives), promote what is due,
// hand out messages, and publish the partition's state for Receive.
func (t *subTx) computePriority(batch []*wop) {
	receives := false
	for _, op := range batch {
		receives = receives || op.kind == wopReceive
	}
	more := false
	if receives {
		var err error
		if more, err = t.index(t.w.q.cfg.MaxScan); err != nil {
			for _, op := range batch {
				if op.kind == wopReceive {
					op.err = err
				}
			}
			return
		}
	}
	t.promote()
	for _, op := range batch {
		if op.kind == wopReceive {
			t.receivePriority(op)
			op.nextDue = t.nextDue
		}
	}
	top := t.top()
	for _, op := range batch {
		op.top, op.more = top, more
	}
	pub := t.w.pub
	pub.top.Store(int32(top))
	if !receives {
		return
	}
	if more || t.count < t.w.q.cfg.MaxTracked {
		pub.indexed.Store(t.h.frontier)
	} else {
		pub.indexed.Store(t.log.HighWatermark()) // full: indexing more waits for acks
	}
}

// publishPending copies the mirror's pending counts for the metrics.
func (w *partWorker) publishPending() {
	for p := range w.m.pidx.pending {
		w.pub.pending[p].Store(w.m.pidx.pending[p])
	}
}

// countPending keeps the pending counts in step with one entry change.
func (px *prioIndex) countPending(old, e *subEntry) {
	if old != nil && old.status == entryReady {
		px.pending[old.prio]--
	}
	if e != nil && e.status == entryReady {
		px.pending[e.prio]++
	}
}

// cursor returns the first tracked offset (or frontier when none),
// dropping the offsets of done messages from the heap.
func (t *subTx) cursor() int64 {
	px := t.w.m.pidx
	for px.offs.Len() > 0 && t.get(px.offs[0]) == nil {
		heap.Pop(&px.offs)
	}
	if px.offs.Len() > 0 && px.offs[0] < t.h.frontier {
		return px.offs[0]
	}
	return t.h.frontier
}

// maxIndexRounds bounds the indexing batches one receive runs on one
// partition before it hands out messages (each takes QueueConfig.MaxScan
// records), so that a producer outpacing the index cannot hold it forever.
const maxIndexRounds = 1000

// prioPart is one partition of a priority pass.
type prioPart struct {
	w   *partWorker
	top int // highest deliverable priority as last reported; -1: none
}

// priorityPass leases the highest-priority deliverable messages of all
// partitions. It first indexes what each partition's log holds beyond its
// index (so every message's priority is known), then repeatedly asks the
// partition with the highest deliverable priority for messages at or
// above the next partition's highest, until rp.max (or rp.maxBytes) are
// leased or nothing is deliverable.
func (q *Queues) priorityPass(ctx context.Context, rp *recvParams, ps *recvPass) error {
	var parts []*prioPart
	start := int(q.rr.Add(1) % uint64(rp.partitions))
	for i := 0; i < rp.partitions; i++ {
		log, w, err := q.partition(rp, ps, (start+i)%rp.partitions)
		if err != nil {
			return err
		}
		if w == nil {
			continue
		}
		// The published top is a hint (acks and time change it since):
		// a partition that had nothing is asked too, after the others.
		pt := &prioPart{w: w, top: max(int(w.pub.top.Load()), 0)}
		for n := 0; n < maxIndexRounds && w.pub.indexed.Load() < log.HighWatermark(); n++ {
			op := &wop{kind: wopReceive, vt: rp.vt}
			if err = w.do(ctx, op); err != nil {
				break
			}
			pt.top = op.top
			ps.due(op.nextDue)
			if !op.more {
				break
			}
		}
		if err != nil {
			ps.lastErr = err
			continue
		}
		ps.served++
		parts = append(parts, pt)
	}
	maxBytes := rp.maxBytes
	for rounds := 0; len(ps.out) < rp.max && maxBytes > 0 && rounds < 2*len(parts)*(MaxPriority+1); rounds++ {
		best, second := -1, -1
		for i, pt := range parts {
			switch {
			case pt.top < 0:
			case best < 0 || pt.top > parts[best].top:
				best, second = i, best
			case second < 0 || pt.top > parts[second].top:
				second = i
			}
		}
		if best < 0 {
			return nil
		}
		minPrio := 0
		if second >= 0 {
			minPrio = parts[second].top
		}
		pt := parts[best]
		op := &wop{kind: wopReceive, max: rp.max - len(ps.out), maxBytes: maxBytes, vt: rp.vt, autoAck: rp.autoAck, minPrio: minPrio}
		if err := pt.w.do(ctx, op); err != nil {
			ps.lastErr = err
			pt.top = -1
			continue
		}
		ps.out = append(ps.out, op.msgs...)
		for _, m := range op.msgs {
			maxBytes -= m.Size()
		}
		ps.due(op.nextDue)
		pt.top = op.top
		if len(op.msgs) == 0 && pt.top >= minPrio {
			pt.top = -1 // nothing came although something was reported: do not ask again in this pass
		}
	}
	return nil
}
