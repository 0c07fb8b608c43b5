package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"
)

// A partWorker serialises this node's work on one subscription's state on
// one partition. Receives, acks, nacks and extends queue up on its channel;
// it takes all that are waiting as one batch, computes one state
// transaction against its mirror of the state, and proposes it conditional
// on the state's header being the one the mirror predicts. Batching turns
// many concurrent consumers into few Raft entries; the condition makes
// concurrent workers on other nodes safe (the loser rebuilds its mirror and
// computes again).
//
// Transactions are pipelined: up to QueueConfig.PipelineDepth are in flight
// at once, each computed on the state the one before will leave (the
// mirror is updated when a transaction is proposed, not when it is
// applied). Every header carries a random tag, so a transaction's condition
// can only match the exact state it was computed on. Results are handed
// out in order; when a transaction fails, the ones after it fail too, the
// mirror is rebuilt from the replicated state and their operations run
// again.
type partWorker struct {
	q      *Queues
	sub    *Subscription
	part   int
	prefix string
	hdrKey string
	tag    uint32
	depth  int
	ops    chan *wop
	kickC  chan struct{} // cap 1: maintenance wanted
	stopC  chan struct{} // closed when the subscription is deleted
	pub    *prioPub      // priority subscriptions: what Receive and the metrics read
	cache  *recCache     // priority subscriptions: records indexed, not delivered yet (worker goroutine)

	// Owned by the worker goroutine.
	m        *subMirror // nil: rebuild from the state before use
	madeDead bool       // this worker dead-lettered messages it has not appended yet
	dlqStall string     // why dead letters wait (a mirror dead-letter topic), as last logged
	pending  []*wop     // taken from ops (or requeued), not yet computed
	inflight []*flight  // proposed, oldest first
	broken   bool       // a flight failed: start no more until all landed, then rebuild
	failed   bool       // the last rebuild's base lost a condition: wait for the replica to move
	base     []byte     // the replica's header the mirror was last built from
	waits    sync.WaitGroup
}

// subMirror is a decoded copy of one subscription's state on one partition.
type subMirror struct {
	raw     []byte // the header's bytes in the state; nil when absent
	h       subHeader
	entries map[int64]*subEntry // never mutated in place
	dead    map[int64]struct{}  // offsets of the entries with status entryDead
	pidx    *prioIndex          // priority subscriptions (worker mirrors only)
}

// flight is one computed batch: proposed (tx set) or needing no change.
type flight struct {
	ops  []*wop
	tx   *subTx
	done chan struct{} // closed when res and err are set
	res  TxnResult
	err  error
}

type wopKind uint8

const (
	wopReceive wopKind = iota
	wopAck
	wopNack
	wopExtend
	wopMaintain
	wopDLQDone
)

// wop is one operation queued on a worker. The caller fills the request
// fields; the worker fills the results and closes done.
type wop struct {
	kind wopKind
	// receive
	max, maxBytes int
	vt            int64 // ms; receive and extend
	autoAck       bool
	// ack, nack, extend
	receipts []receipt
	idx      []int // positions in the caller's list
	delay    int64 // nack: ms, -1 for the backoff
	reason   string
	// dead-letter appends done
	dlqDone []dlqRef

	minPrio int // receive, priority subscriptions: only messages of this priority or higher

	tries   int
	msgs    []Message
	nextDue int64 // receive: ms when something not deliverable now becomes so (0: nothing known)
	top     int   // receive, priority subscriptions: the highest priority still deliverable, -1: none
	more    bool  // receive, priority subscriptions: the log holds records not indexed yet
	errs    []error
	expires []int64
	err     error
	done    chan struct{}
}

type dlqRef struct {
	off int64
	seq int64
}

func (op *wop) reset() {
	op.msgs, op.nextDue, op.err = nil, 0, nil
	if n := len(op.receipts); n > 0 {
		op.errs = make([]error, n)
		if op.kind == wopExtend {
			op.expires = make([]int64, n)
		}
	}
}

const (
	maxBatchOps  = 256
	maxTxnTries  = 5
	dlqBatchRecs = 500
)

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newPartWorker(q *Queues, s *Subscription, p int) *partWorker {
	prefix := subStatePrefix(s.Name, s.UID)
	w := &partWorker{q: q, sub: s, part: p, prefix: prefix, hdrKey: prefix + "h", tag: uidTag(s.UID),
		depth: q.cfg.PipelineDepth, ops: make(chan *wop, 1024), kickC: make(chan struct{}, 1), stopC: make(chan struct{})}
	if s.Priority {
		w.pub = &prioPub{}
		w.pub.top.Store(MaxPriority) // unknown: ask it first
		w.cache = newRecCache(q.cfg.PriorityCacheBytes)
	}
	return w
}

// do queues op and waits for its result. The worker goes on with it when
// ctx ends first (leases so granted expire unseen and count as attempts).
func (w *partWorker) do(ctx context.Context, op *wop) error {
	op.done = make(chan struct{})
	select {
	case w.ops <- op:
	case <-w.stopC:
		return fmt.Errorf("%w: subscription %q was deleted", ErrSubscriptionNotFound, w.sub.Name)
	case <-w.q.ctx.Done():
		return fmt.Errorf("%w: the queue service is stopping", ErrUnavailable)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *partWorker) kick() {
	select {
	case w.kickC <- struct{}{}:
	default:
	}
}

func (w *partWorker) run() {
	defer w.q.wg.Done()
	for {
		if w.broken && len(w.inflight) == 0 {
			w.broken, w.m = false, nil
		}
		canStart := len(w.inflight) < w.depth && !w.broken
		if len(w.pending) == 0 || !canStart {
			var opsC <-chan *wop
			var kickC <-chan struct{}
			if canStart {
				opsC, kickC = w.ops, w.kickC
			}
			var headC <-chan struct{}
			if len(w.inflight) > 0 {
				headC = w.inflight[0].done
			}
			select {
			case op := <-opsC:
				w.pending = append(w.pending, op)
			case <-kickC:
				w.pending = append(w.pending, &wop{kind: wopMaintain, done: make(chan struct{})})
			case <-headC:
				w.land()
			case <-w.stopC:
				w.shutdown(fmt.Errorf("%w: subscription %q was deleted", ErrSubscriptionNotFound, w.sub.Name))
				return
			case <-w.q.ctx.Done():
				w.shutdown(fmt.Errorf("%w: the queue service is stopping", ErrUnavailable))
				return
			}
		}
		for len(w.inflight) > 0 && closed(w.inflight[0].done) {
			w.land()
		}
		if w.broken && len(w.inflight) == 0 {
			w.broken, w.m = false, nil
		}
		if len(w.pending) > 0 && len(w.inflight) < w.depth && !w.broken {
		more:
			for len(w.pending) < maxBatchOps {
				select {
				case op := <-w.ops:
					w.pending = append(w.pending, op)
				default:
					break more
				}
			}
			n := min(len(w.pending), maxBatchOps)
			batch := append([]*wop(nil), w.pending[:n]...)
			w.pending = append(w.pending[:0], w.pending[n:]...)
			w.launch(batch)
		}
		if len(w.inflight) == 0 && len(w.pending) == 0 {
			w.flushDLQ()
		}
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// shutdown waits for the flights and fails everything not done.
func (w *partWorker) shutdown(err error) {
	for _, f := range w.inflight {
		<-f.done
		if f.err == nil && (f.tx == nil || f.res.Applied) && !w.broken {
			finish(f.ops, nil)
			continue
		}
		w.broken = true
		finish(f.ops, err)
	}
	w.inflight = nil
	w.waits.Wait()
	finish(w.pending, err)
	w.pending = nil
	for {
		select {
		case op := <-w.ops:
			finish([]*wop{op}, err)
		default:
			return
		}
	}
}

func finish(batch []*wop, err error) {
	for _, op := range batch {
		if err != nil {
			op.err = err
		}
		close(op.done)
	}
}

// land hands out the results of the oldest flight, which is done.
func (w *partWorker) land() {
	f := w.inflight[0]
	w.inflight = w.inflight[1:]
	switch {
	case f.tx == nil && !w.broken:
		finish(f.ops, nil) // computed on a state that came true
	case f.tx == nil:
		w.requeue(f.ops)
	case f.err == nil && f.res.Applied:
		finish(f.ops, nil)
	case f.err == nil:
		// Not applied: another writer got there first, or an earlier
		// flight failed. Compute again on the real state.
		w.broken, w.failed = true, true
		w.requeue(f.ops)
	default:
		w.broken = true // the outcome is unknown
		finish(f.ops, f.err)
	}
}

func (w *partWorker) requeue(ops []*wop) {
	var again []*wop
	for _, op := range ops {
		op.tries++
		if op.tries >= maxTxnTries {
			finish([]*wop{op}, fmt.Errorf("%w: subscription state is contended, retry", ErrUnavailable))
			continue
		}
		again = append(again, op)
	}
	w.pending = append(again, w.pending...)
}

// refresh makes the mirror match the replicated state.
//
// This node's replica may lag the leader (a follower, or a node that
// forwards its transactions): when it has not yet applied the transactions
// the mirror already holds (a lower generation), the mirror is kept, since
// those transactions committed. After a transaction failed, a rebuild from
// a replica that has not changed since the failed computation would fail
// again: it waits (a little) for the replica to apply something first.
func (w *partWorker) refresh(log PartitionLog) error {
	raw, ok := log.StateGet(w.hdrKey)
	if w.m != nil {
		if ok == (w.m.raw != nil) && bytes.Equal(raw, w.m.raw) {
			return nil
		}
		if ok && w.m.raw != nil {
			if h, err := decodeSubHeader(raw); err == nil && h.gen < w.m.h.gen {
				return nil // the mirror is ahead of this replica
			}
		}
	}
	if w.failed {
		w.failed = false
		deadline := time.NewTimer(time.Second)
		defer deadline.Stop()
	wait:
		for {
			changed := log.Changed()
			raw, ok = log.StateGet(w.hdrKey)
			if ok != (w.base != nil) || !bytes.Equal(raw, w.base) {
				break
			}
			select {
			case <-changed:
			case <-deadline.C:
				break wait
			case <-w.q.ctx.Done():
				return fmt.Errorf("%w: the queue service is stopping", ErrUnavailable)
			}
		}
	}
	m, err := loadMirror(log, w.prefix)
	if err != nil {
		return err
	}
	if w.sub.Priority {
		m.pidx = newPrioIndex(m, w.sub)
	}
	w.m = m
	w.base = m.raw
	if m.pidx != nil {
		w.publishPending()
	}
	return nil
}

// loadMirror decodes a subscription's state from one scan of the partition
// state (one consistent snapshot).
func loadMirror(log PartitionLog, prefix string) (*subMirror, error) {
	m := &subMirror{entries: map[int64]*subEntry{}, dead: map[int64]struct{}{}}
	var derr error
	log.StateScan(prefix, func(k string, v []byte) bool {
		if k == prefix+"h" {
			h, err := decodeSubHeader(v)
			if err != nil {
				derr = err
				return false
			}
			m.raw, m.h = v, h
			return true
		}
		off, ok := parseEntryKey(prefix, k)
		if !ok {
			return true
		}
		e, err := decodeSubEntry(v)
		if err != nil {
			derr = err
			return false
		}
		m.entries[off] = e
		if e.status == entryDead {
			m.dead[off] = struct{}{}
		}
		return true
	})
	if derr != nil {
		return nil, fmt.Errorf("subscription state under %q: %w", prefix, derr)
	}
	if m.raw == nil {
		// Never used on this partition: start at the log start (a
		// subscription created at "latest" has its header from creation).
		start := log.LogStart()
		m.h = subHeader{frontier: start, cursor: start}
	}
	return m, nil
}

// launch computes one batch on the predicted state and proposes it.
func (w *partWorker) launch(batch []*wop) {
	log, err := w.q.store.Partition(w.sub.Topic, w.part)
	if err != nil {
		finish(batch, err)
		return
	}
	if len(w.inflight) == 0 {
		if err := w.refresh(log); err != nil {
			finish(batch, err)
			return
		}
	}
	t := w.compute(log, batch)
	if !t.dirty {
		w.inflight = append(w.inflight, &flight{ops: batch, done: closedChan})
		return
	}
	txn := t.build()
	t.commit() // optimistically: the next batch is computed on this one's outcome
	f := &flight{ops: batch, tx: t, done: make(chan struct{})}
	w.inflight = append(w.inflight, f)
	if p, ok := log.(TxnProposer); ok && w.depth > 1 {
		wait, err := p.ProposeTxn(txn)
		if err == nil {
			w.waits.Add(1)
			go func() {
				defer w.waits.Done()
				ctx, cancel := context.WithTimeout(w.q.ctx, w.q.cfg.OpTimeout)
				f.res, f.err = wait(ctx)
				cancel()
				close(f.done)
			}()
			return
		}
		if len(w.inflight) > 1 {
			// Not queued; flights before it are: they must land first.
			f.res = TxnResult{FailedCond: -1}
			close(f.done)
			return
		}
	}
	// Synchronously (ApplyTxn retries while no leader is known).
	ctx, cancel := context.WithTimeout(w.q.ctx, w.q.cfg.OpTimeout)
	f.res, f.err = log.ApplyTxn(ctx, txn)
	cancel()
	close(f.done)
}

// compute runs a batch against the mirror: receipts first, then the scan
// for deliverable messages (which sees what the acks freed), then the
// receives.
func (w *partWorker) compute(log PartitionLog, batch []*wop) *subTx {
	t := w.newTx(w.q.ctx, log)
	for _, op := range batch {
		op.reset()
	}
	for _, op := range batch {
		switch op.kind {
		case wopAck:
			t.ack(op)
		case wopNack:
			t.nack(op)
		case wopExtend:
			t.extend(op)
		case wopDLQDone:
			t.dlqDone(op)
		}
	}
	scan := false
	for _, op := range batch {
		scan = scan || op.kind == wopReceive || op.kind == wopMaintain
	}
	if !scan {
		if w.m.pidx != nil {
			w.pub.top.Store(int32(t.top())) // acks free keys' next messages
		}
		return t // receipts only: nothing to deliver or dead-letter
	}
	if w.m.pidx != nil {
		t.computePriority(batch)
		return t
	}
	t.scan()
	for _, op := range batch {
		if op.kind == wopReceive {
			t.receive(op)
			op.nextDue = t.nextDue
		}
	}
	return t
}

type subTx struct {
	w        *partWorker
	ctx      context.Context
	log      PartitionLog
	now      int64
	h        subHeader
	changes  map[int64]*subEntry // nil value: delete
	count    int                 // entries in mirror+changes
	dirty    bool
	madeDead bool

	// Filled by scan.
	cands   []int64          // deliverable entries, by offset
	heads   map[uint64]int64 // ordering "key": the first tracked offset per key
	nextDue int64

	// Priority subscriptions: the records of the messages this batch leases.
	recs map[int64]Record
}

func (w *partWorker) newTx(ctx context.Context, log PartitionLog) *subTx {
	t := &subTx{w: w, ctx: ctx, log: log, now: w.q.cfg.Now().UnixMilli(), h: w.m.h,
		changes: map[int64]*subEntry{}, count: len(w.m.entries)}
	if w.m.pidx != nil {
		t.recs = map[int64]Record{}
	}
	return t
}

func (t *subTx) get(off int64) *subEntry {
	if e, ok := t.changes[off]; ok {
		return e
	}
	return t.w.m.entries[off]
}

func (t *subTx) set(off int64, e *subEntry) {
	prev := t.get(off)
	if prev == nil {
		t.count++
	}
	t.changes[off] = e
	t.dirty = true
	if t.w.m.pidx != nil {
		t.indexSet(off, prev, e)
	}
}

func (t *subTx) del(off int64) {
	if prev := t.get(off); prev != nil {
		t.count--
		t.changes[off] = nil
		t.dirty = true
		if t.w.m.pidx != nil {
			t.unkey(off, prev)
		}
	}
}

// each calls fn for every entry of mirror+changes, in no order.
func (t *subTx) each(fn func(off int64, e *subEntry)) {
	for off, e := range t.w.m.entries {
		if _, ok := t.changes[off]; !ok {
			fn(off, e)
		}
	}
	for off, e := range t.changes {
		if e != nil {
			fn(off, e)
		}
	}
}

// leased returns the entry of r when r names its current lease.
func (t *subTx) leased(r receipt) *subEntry {
	e := t.get(r.offset)
	if e != nil && e.status == entryLeased && e.nonce == r.nonce && e.attempt == r.attempt {
		return e
	}
	return nil
}

// done reports whether the message at off is acknowledged or dead-lettered.
func (t *subTx) done(off int64) bool { return off < t.h.frontier && t.get(off) == nil }

func (t *subTx) ack(op *wop) {
	for i, r := range op.receipts {
		switch {
		case t.leased(r) != nil:
			t.del(r.offset)
			t.h.acked++
		case t.done(r.offset):
			// Already done: an ack is idempotent.
		case r.offset >= t.h.frontier:
			op.errs[i] = fmt.Errorf("%w: offset %d was never delivered", ErrInvalidReceipt, r.offset)
			t.dirty = true // validate: this replica may lag
		default:
			op.errs[i] = fmt.Errorf("%w: the message was nacked or leased again since this receipt", ErrLeaseLost)
			t.dirty = true
		}
	}
}

func (t *subTx) nack(op *wop) {
	for i, r := range op.receipts {
		e := t.leased(r)
		if e == nil {
			op.errs[i] = t.lostErr(r)
			continue
		}
		ne := *e
		if op.reason != "" {
			ne.lastError = op.reason
		} else {
			ne.lastError = "nacked"
		}
		t.h.nacked++
		if t.w.sub.final(ne.attempt) {
			t.kill(r.offset, &ne)
			continue
		}
		delay := op.delay
		if delay < 0 {
			delay = t.w.sub.Backoff.Delay(ne.attempt)
		}
		ne.status, ne.notBefore, ne.leaseUntil = entryReady, t.now+delay, 0
		t.set(r.offset, &ne)
	}
}

func (t *subTx) extend(op *wop) {
	for i, r := range op.receipts {
		e := t.leased(r)
		if e == nil {
			op.errs[i] = t.lostErr(r)
			continue
		}
		ne := *e
		ne.leaseUntil = t.now + op.vt
		t.set(r.offset, &ne)
		op.expires[i] = ne.leaseUntil
	}
}

// lostErr says why r holds no lease. An answer computed on this replica's
// state is confirmed by a transaction (the batch is made dirty): a lagging
// replica must not turn a live lease into an error.
func (t *subTx) lostErr(r receipt) error {
	t.dirty = true
	switch {
	case t.done(r.offset):
		return fmt.Errorf("%w: the message was acknowledged or dead-lettered", ErrLeaseLost)
	case r.offset >= t.h.frontier:
		return fmt.Errorf("%w: offset %d was never delivered", ErrInvalidReceipt, r.offset)
	}
	return fmt.Errorf("%w: the message was nacked or leased again since this receipt", ErrLeaseLost)
}

// kill marks a message dead: it takes the next dead-letter sequence number.
func (t *subTx) kill(off int64, e *subEntry) {
	e.status, e.leaseUntil, e.notBefore = entryDead, 0, 0
	e.dlqSeq = t.h.dlqNext
	t.h.dlqNext++
	t.set(off, e)
	t.madeDead = true
}

func (t *subTx) dlqDone(op *wop) {
	for _, d := range op.dlqDone {
		if e := t.get(d.off); e != nil && e.status == entryDead && e.dlqSeq == d.seq {
			t.del(d.off)
			t.h.deadLettered++
		}
	}
}

// scan dead-letters expired last attempts and lists what is deliverable.
func (t *subTx) scan() {
	sub := t.w.sub
	keyed := sub.Ordering == OrderingKey
	t.heads = map[uint64]int64{}
	type item struct {
		off int64
		e   *subEntry
	}
	var items []item
	var expiredLast []item
	t.each(func(off int64, e *subEntry) {
		if e.status == entryLeased && t.now >= e.leaseUntil && sub.final(e.attempt) {
			expiredLast = append(expiredLast, item{off, e})
			return
		}
		if e.status == entryDead {
			return
		}
		if keyed && e.hasKey {
			if cur, ok := t.heads[e.keyHash]; !ok || off < cur {
				t.heads[e.keyHash] = off
			}
		}
		items = append(items, item{off, e})
	})
	sort.Slice(expiredLast, func(i, j int) bool { return expiredLast[i].off < expiredLast[j].off })
	for _, it := range expiredLast {
		ne := *it.e
		ne.lastError = "visibility timeout expired"
		t.h.expired++
		t.kill(it.off, &ne)
	}
	for _, it := range items {
		if keyed && it.e.hasKey && t.heads[it.e.keyHash] != it.off {
			continue // blocked behind an earlier message of its key
		}
		due := it.e.notBefore
		if it.e.status == entryLeased {
			if sub.final(it.e.attempt) {
				t.due(it.e.leaseUntil) // then it is dead-lettered, not delivered
				continue
			}
			due = it.e.leaseUntil + sub.Backoff.Delay(it.e.attempt)
		}
		if due <= t.now {
			t.cands = append(t.cands, it.off)
		} else {
			t.due(due)
		}
	}
	sort.Slice(t.cands, func(i, j int) bool { return t.cands[i] < t.cands[j] })
}

func (t *subTx) due(at int64) {
	if t.nextDue == 0 || at < t.nextDue {
		t.nextDue = at
	}
}

// readOne reads the record at off; ok is false when retention removed it.
func (t *subTx) readOne(off int64) (Record, bool, error) {
	recs, err := t.log.Read(t.ctx, off, 1, 1)
	var re *OffsetRangeError
	if errors.As(err, &re) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	if len(recs) == 0 || recs[0].Offset != off {
		return Record{}, false, nil
	}
	return recs[0], true, nil
}

// receive leases deliverable tracked messages first, then fresh ones.
func (t *subTx) receive(op *wop) {
	budget := op.maxBytes
	full := func() bool { return len(op.msgs) >= op.max || (budget <= 0 && len(op.msgs) > 0) }
	if t.receiveCandidates(op, &budget, full) {
		t.receiveFresh(op, &budget, full)
	}
}

// receiveCandidates leases the tracked candidates (ready, or leased and
// expired) in order until op is full; false: a read failed (op.err is set
// when nothing was leased yet).
func (t *subTx) receiveCandidates(op *wop, budget *int, full func() bool) bool {
	for len(t.cands) > 0 && !full() {
		off := t.cands[0]
		t.cands = t.cands[1:]
		e := t.get(off)
		if e == nil {
			continue
		}
		rec, ok, err := t.readOne(off)
		if err != nil {
			if len(op.msgs) == 0 {
				op.err = err
			}
			return false
		}
		if !ok {
			t.del(off)
			t.h.dropped++
			continue
		}
		if e.status == entryLeased {
			t.h.expired++
		}
		*budget -= rec.Size()
		t.lease(op, off, e, rec)
	}
	return true
}

// receiveFresh reads past the frontier, tracking each new message and
// leasing those deliverable now, until op is full or the scan and tracking
// bounds are reached.
func (t *subTx) receiveFresh(op *wop, budget *int, full func() bool) {
	keyed := t.w.sub.Ordering == OrderingKey
	scanned := 0
	for tries := 0; !full() && scanned < t.w.q.cfg.MaxScan && t.count < t.w.q.cfg.MaxTracked && tries < 8; tries++ {
		if start := t.log.LogStart(); t.h.frontier < start {
			// Retention removed messages nobody received.
			t.h.dropped += start - t.h.frontier
			t.h.frontier = start
			t.dirty = true
		}
		if t.h.frontier >= t.log.HighWatermark() {
			return
		}
		want := min(max(op.max-len(op.msgs), 16), t.w.q.cfg.MaxScan-scanned)
		// A modest byte bound: the segment reader sizes its read window by it.
		recs, err := t.log.Read(t.ctx, t.h.frontier, want, min(max(*budget, 1), max(16<<10, want*512)))
		var re *OffsetRangeError
		if errors.As(err, &re) {
			continue // trimmed under us: the loop moves the frontier
		}
		if err != nil {
			if len(op.msgs) == 0 {
				op.err = err
			}
			return
		}
		if len(recs) == 0 {
			return
		}
		for i := range recs {
			if full() || t.count >= t.w.q.cfg.MaxTracked {
				return
			}
			scanned++
			t.track(op, recs[i], keyed, budget)
		}
	}
}

// track moves the frontier past rec and tracks it: held back behind its
// key's head (keyed ordering) or until its delivery time, else leased to op.
func (t *subTx) track(op *wop, rec Record, keyed bool, budget *int) {
	off := rec.Offset
	t.h.frontier = off + 1
	t.dirty = true
	fresh := &subEntry{status: entryReady, hasKey: rec.Key != nil}
	if fresh.hasKey {
		fresh.keyHash = keyHash(rec.Key)
	}
	at := DeliverAt(&rec)
	if keyed && fresh.hasKey {
		if _, blocked := t.heads[fresh.keyHash]; blocked {
			fresh.notBefore = at
			t.set(off, fresh)
			return
		}
		t.heads[fresh.keyHash] = off
	}
	if at > t.now {
		fresh.notBefore = at
		t.set(off, fresh)
		t.due(at)
		return
	}
	*budget -= rec.Size()
	t.lease(op, off, fresh, rec)
}

// lease hands the message at off (prev: its entry, attempt 0 when fresh)
// to op's receiver.
func (t *subTx) lease(op *wop, off int64, prev *subEntry, rec Record) {
	ne := *prev
	ne.status = entryLeased
	ne.attempt++
	ne.nonce = rand.Uint64()
	ne.leaseUntil = t.now + op.vt
	ne.notBefore = 0
	t.h.delivered++
	if op.autoAck {
		t.del(off)
		t.h.acked++
	} else {
		t.set(off, &ne)
	}
	op.msgs = append(op.msgs, Message{
		Receipt:        receipt{tag: t.w.tag, partition: t.w.part, offset: off, attempt: ne.attempt, nonce: ne.nonce}.String(),
		Partition:      t.w.part,
		Attempt:        ne.attempt,
		LeaseExpiresAt: ne.leaseUntil,
		Record:         rec,
	})
}

// build encodes the transaction: the new header (next generation, cursor
// at the first tracked offset) and the entry changes, conditional on the
// header the mirror was built from.
func (t *subTx) build() *StateTxn {
	t.h.gen++
	t.h.tag = rand.Uint64()
	if t.w.m.pidx != nil {
		t.h.cursor = t.cursor()
	} else {
		t.h.cursor = t.h.frontier
		t.each(func(off int64, _ *subEntry) {
			if off < t.h.cursor {
				t.h.cursor = off
			}
		})
	}
	txn := &StateTxn{Ops: make([]StateOp, 0, len(t.changes)+1)}
	if t.w.m.raw == nil {
		txn.Conds = []StateCond{{Key: t.w.hdrKey, Absent: true}}
	} else {
		txn.Conds = []StateCond{{Key: t.w.hdrKey, Value: t.w.m.raw}}
	}
	txn.Ops = append(txn.Ops, StateOp{Key: t.w.hdrKey, Value: t.h.encode()})
	for off, e := range t.changes {
		if e == nil {
			txn.Ops = append(txn.Ops, StateOp{Key: entryKey(t.w.prefix, off), Delete: true})
		} else {
			txn.Ops = append(txn.Ops, StateOp{Key: entryKey(t.w.prefix, off), Value: e.encode()})
		}
	}
	return txn
}

// commit folds an applied transaction into the mirror.
func (t *subTx) commit() {
	m := t.w.m
	m.raw = t.h.encode()
	m.h = t.h
	for off, e := range t.changes {
		old := m.entries[off]
		if old != nil && old.status == entryDead {
			delete(m.dead, off)
		}
		if m.pidx != nil {
			m.pidx.countPending(old, e)
		}
		if e == nil {
			delete(m.entries, off)
		} else {
			m.entries[off] = e
			if e.status == entryDead {
				m.dead[off] = struct{}{}
			}
		}
	}
	if m.pidx != nil {
		t.w.publishPending()
	}
	if t.madeDead {
		t.w.madeDead = true
	}
}

// flushDLQ appends dead messages to the dead-letter topic (never to a
// mirror topic not yet promoted), idempotently:
// the producer id is this subscription incarnation and partition, the
// sequence the message's dead-letter number, so a repeat after a crash or
// by another node is dropped by the dead-letter partition. Only the
// partition leader flushes what it did not itself kill.
func (w *partWorker) flushDLQ() {
	if w.m == nil || len(w.m.dead) == 0 || w.sub.DeadLetterTopic == "" {
		return
	}
	var dead []dlqRef
	for off := range w.m.dead {
		dead = append(dead, dlqRef{off, w.m.entries[off].dlqSeq})
	}
	if len(dead) == 0 {
		w.madeDead = false
		return
	}
	log, err := w.q.store.Partition(w.sub.Topic, w.part)
	if err != nil || (!w.madeDead && !log.IsLeader()) {
		return
	}
	w.madeDead = false
	sort.Slice(dead, func(i, j int) bool { return dead[i].seq < dead[j].seq })
	// Sequences are dense from the first pending one.
	n := 1
	for n < len(dead) && n < dlqBatchRecs && dead[n].seq == dead[0].seq+int64(n) {
		n++
	}
	dead = dead[:n]
	ctx, cancel := context.WithTimeout(w.q.ctx, w.q.cfg.OpTimeout)
	defer cancel()
	dt, err := w.q.store.Topic(w.sub.DeadLetterTopic)
	if err != nil {
		w.q.log.Warn("dead-letter topic", "subscription", w.sub.Name, "topic", w.sub.DeadLetterTopic, "err", err)
		return
	}
	// A dead-letter topic that became a mirror (link.go) takes nothing:
	// the dead messages wait here, counted as dead_pending, until it is
	// promoted or detached.
	if err := CheckWritable(w.q.store, dt); err != nil {
		if msg := err.Error(); w.dlqStall != msg {
			w.dlqStall = msg
			w.q.log.Warn("dead letters wait", "subscription", w.sub.Name, "partition", w.part, "err", err)
		}
		return
	}
	w.dlqStall = ""
	dlog, err := w.q.store.Partition(w.sub.DeadLetterTopic, w.part%dt.Partitions)
	if err != nil {
		return
	}
	t := &subTx{w: w, ctx: ctx, log: log}
	recs := make([]Record, 0, len(dead))
	for _, d := range dead {
		rec, ok, err := t.readOne(d.off)
		if err != nil {
			return
		}
		recs = append(recs, w.deadLetter(d.off, rec, ok))
	}
	if !w.appendDeadLetters(ctx, dlog, dead[0].seq, recs) {
		return
	}
	w.pending = append(w.pending, &wop{kind: wopDLQDone, dlqDone: dead, done: make(chan struct{})})
}

// deadLetter is the dead-letter record of the message at off: its key,
// value and headers (but for dead-letter headers it carried) with where it
// came from and why it failed; ok false: retention removed the record.
func (w *partWorker) deadLetter(off int64, rec Record, ok bool) Record {
	e := w.m.entries[off]
	reason := "max_attempts_exceeded"
	if !ok {
		// Keep the sequence dense: the record itself is gone.
		reason = "max_attempts_exceeded; the record was removed by retention before dead-lettering"
	}
	out := Record{Key: rec.Key, Value: rec.Value}
	if out.Value == nil {
		out.Value = []byte{}
	}
	for _, h := range rec.Headers {
		if !dlqHeaders[h.Key] {
			out.Headers = append(out.Headers, h)
		}
	}
	out.Headers = append(out.Headers,
		Header{HeaderDLQReason, reason},
		Header{HeaderSourceTopic, w.sub.Topic},
		Header{HeaderSourcePartition, strconv.Itoa(w.part)},
		Header{HeaderSourceOffset, strconv.FormatInt(off, 10)},
		Header{HeaderSourceSub, w.sub.Name},
		Header{HeaderAttempts, strconv.Itoa(e.attempt)},
		Header{HeaderLastError, e.lastError},
	)
	return out
}

// appendDeadLetters appends recs, dead-letter numbers seq on, to dlog
// idempotently (producer id: this subscription incarnation and partition)
// and reports whether they are all in.
func (w *partWorker) appendDeadLetters(ctx context.Context, dlog PartitionLog, seq int64, recs []Record) bool {
	pid := "weir-dlq:" + w.sub.UID + ":" + strconv.Itoa(w.part)
	for len(recs) > 0 {
		_, err := dlog.Append(ctx, &AppendBatch{ProducerID: pid, Sequence: seq, Timestamp: w.q.cfg.Now().UnixMilli(), Records: recs})
		var se *SequenceError
		switch {
		case err == nil:
			recs = nil
		case errors.As(err, &se) && se.Expected >= seq+int64(len(recs)):
			recs = nil // all appended before (a repeat after a crash or by another node)
		case errors.As(err, &se) && se.Expected > seq:
			recs = recs[se.Expected-seq:]
			seq = se.Expected
		case errors.As(err, &se):
			// The dead-letter partition lost track of this producer (its
			// state is older than ours): append without idempotence.
			w.q.log.Warn("dead-letter sequence gap; appending without deduplication",
				"subscription", w.sub.Name, "partition", w.part, "expected", se.Expected, "have", seq)
			if _, err := dlog.Append(ctx, &AppendBatch{Timestamp: w.q.cfg.Now().UnixMilli(), Records: recs}); err != nil {
				return false
			}
			recs = nil
		default:
			w.q.log.Debug("dead-letter append", "subscription", w.sub.Name, "partition", w.part, "err", err)
			return false
		}
	}
	return true
}
