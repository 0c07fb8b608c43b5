package core

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Dead-letter headers a pipeline sets on the input records it gives up on,
// beside the queue model's (core/queue.go): reason, last error, source
// topic/partition/offset and attempts.
const (
	HeaderDLQModule   = "weir-module"
	HeaderDLQVersion  = "weir-module-version"
	HeaderDLQPipeline = "weir-pipeline"
)

type pipeKey struct {
	pipeline string
	topic    string
	part     int
}

// pipeWorker runs one input partition of a pipeline. A worker replaced by
// a new definition (an upgrade) is drained: it finishes its batch and
// returns; its successor waits for it (pred), so one worker at a time
// processes a partition and the switch is at a batch boundary.
type pipeWorker struct {
	cancel context.CancelFunc
	drain  chan struct{} // closed: stop at the next batch boundary
	done   chan struct{}
	spec   PipelineSpec
}

// errDrained ends a worker that was asked to stop at a batch boundary.
var errDrained = errors.New("pipeline worker drained for a new definition")

// drained reports whether the worker was asked to stop at a batch boundary.
func drained(drain <-chan struct{}) bool {
	select {
	case <-drain:
		return true
	default:
		return false
	}
}

// pipeMeta is a pipeline's progress on one input partition, kept in that
// partition's replicated state under pipe/<name>/meta and changed only
// together with the position (one transaction per batch).
type pipeMeta struct {
	Pos       int64            `json:"pos"`
	Started   bool             `json:"started"`
	Processed int64            `json:"processed"`
	Failed    int64            `json:"failed"`
	Dead      int64            `json:"dead"`
	Emitted   int64            `json:"emitted"`
	LastError string           `json:"last_error,omitempty"`
	Outbox    int64            `json:"outbox"` // next outbox sequence
	Seq       map[string]int64 `json:"seq"`    // next producer sequence per "topic/partition"
	// Incarnation is the PipelineSpec.Incarnation this position and state
	// belong to; a worker of another incarnation resets them (resetState).
	Incarnation int64 `json:"incarnation,omitempty"`
}

func pipePrefix(name string) string { return "pipe/" + name + "/" }

// loadPipeMeta reads a pipeline's progress on one input partition: the
// zero pipeMeta when there is none yet. Metadata that does not decode is
// an error wrapping ErrCorrupt, never a fresh start: a zero position would
// process the partition again from its start and emit every output again.
func loadPipeMeta(log PartitionLog, name string) (pipeMeta, error) {
	var m pipeMeta
	key := pipePrefix(name) + "meta"
	if b, ok := log.StateGet(key); ok {
		if err := json.Unmarshal(b, &m); err != nil {
			return pipeMeta{}, fmt.Errorf("%w: pipeline %q metadata (state key %s) does not decode: %v", ErrCorrupt, name, key, err)
		}
	}
	if m.Seq == nil {
		m.Seq = map[string]int64{}
	}
	return m, nil
}

// Run starts and stops partition workers as pipelines and leadership
// change, until ctx ends.
func (p *Pipelines) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.ResyncInterval)
	defer t.Stop()
	for {
		changed := p.store.CatalogChanged()
		p.resync(ctx)
		select {
		case <-ctx.Done():
			p.stopAll()
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// resync makes the running workers match the catalog: a worker for each
// input partition this node leads of each running pipeline, a drained
// predecessor for a changed definition, and processors only for live
// definitions.
func (p *Pipelines) resync(ctx context.Context) {
	want, live := p.wanted()
	p.logs.keep(live)
	p.mu.Lock()
	stop, pred, replaced := p.retireWorkers(want)
	p.startWorkers(ctx, want, pred)
	for _, w := range pred { // replaced, and no longer wanted here
		stop = append(stop, w)
	}
	closeProcs := p.retireProcs(live, replaced)
	p.mu.Unlock()
	for _, w := range stop {
		w.cancel()
		<-w.done
	}
	for _, pr := range closeProcs {
		pr.Close()
	}
}

// wanted lists the workers this node should run (the input partitions it
// leads of every pipeline neither paused nor failed) and every defined
// pipeline by name.
func (p *Pipelines) wanted() (map[pipeKey]PipelineSpec, map[string]PipelineSpec) {
	want := map[pipeKey]PipelineSpec{}
	specs := p.List()
	live := map[string]PipelineSpec{}
	for _, s := range specs {
		live[s.Name] = s
		if s.Paused || s.Failure != nil {
			continue
		}
		for _, t := range s.Inputs {
			ti, err := p.store.Topic(t)
			if err != nil {
				continue
			}
			for part := 0; part < ti.Partitions; part++ {
				log, err := p.store.Partition(t, part)
				if err == nil && log.IsLeader() {
					want[pipeKey{s.Name, t, part}] = s
				}
			}
		}
	}
	return want, live
}

// retireWorkers removes from p.workers those no longer wanted (stop: to
// cancel) and those whose definition changed (pred by key, and replaced):
// these are told to drain. Called with p.mu held.
func (p *Pipelines) retireWorkers(want map[pipeKey]PipelineSpec) (stop []*pipeWorker, pred map[pipeKey]*pipeWorker, replaced []*pipeWorker) {
	pred = map[pipeKey]*pipeWorker{} // replaced by a new definition: drained
	for k, w := range p.workers {
		s, ok := want[k]
		switch {
		case !ok:
			stop = append(stop, w)
			delete(p.workers, k)
		case !sameRun(s, w.spec):
			// Told now, under the lock: once the successor is visible
			// (Status), the old worker reads no further batch.
			close(w.drain)
			pred[k] = w
			replaced = append(replaced, w)
			delete(p.workers, k)
		}
	}
	return stop, pred, replaced
}

// startWorkers starts a worker for each wanted key without one; a
// successor first waits for its drained predecessor, which it takes out of
// pred. Called with p.mu held.
func (p *Pipelines) startWorkers(ctx context.Context, want map[pipeKey]PipelineSpec, pred map[pipeKey]*pipeWorker) {
	for k, s := range want {
		if _, ok := p.workers[k]; ok {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &pipeWorker{cancel: cancel, drain: make(chan struct{}), done: make(chan struct{}), spec: s}
		p.workers[k] = w
		prev := pred[k]
		delete(pred, k)
		go func() {
			defer close(w.done)
			if prev != nil && !p.awaitDrain(wctx, prev) {
				return
			}
			p.runWorker(wctx, k, s, w.drain)
		}()
	}
}

// retireProcs removes the processors of deleted or changed pipelines from
// p.procs and returns those to close now; a changed one's draining workers
// (replaced) finish their batch with it first, and it is closed after
// them. Called with p.mu held.
func (p *Pipelines) retireProcs(live map[string]PipelineSpec, replaced []*pipeWorker) []Processor {
	var closeProcs []Processor
	draining := map[string][]*pipeWorker{}
	for _, w := range replaced {
		draining[w.spec.Name] = append(draining[w.spec.Name], w)
	}
	for name, e := range p.procs {
		s, ok := live[name]
		if !ok || s.Version != e.version || s.Module != e.module || s.Limits != e.limits {
			delete(p.procs, name)
			if ws := draining[name]; len(ws) > 0 {
				p.closing.Add(1)
				go func(pr Processor) {
					defer p.closing.Done()
					for _, w := range ws {
						<-w.done
					}
					pr.Close()
				}(e.p)
				continue
			}
			closeProcs = append(closeProcs, e.p)
		}
	}
	return closeProcs
}

// awaitDrain waits for a replaced worker (already told to drain) to stop
// at its next batch boundary: for at most DrainTimeout, then it is cancelled (its batch,
// uncommitted, is processed again by the successor). It reports false when
// ctx ended first (the predecessor is then cancelled and waited for too).
func (p *Pipelines) awaitDrain(ctx context.Context, prev *pipeWorker) bool {
	t := time.NewTimer(p.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-prev.done:
		return true
	case <-t.C:
		p.log.Warn("pipeline worker did not reach a batch boundary in time: cancelled", "pipeline", prev.spec.Name, "timeout", p.cfg.DrainTimeout)
	case <-ctx.Done():
	}
	prev.cancel()
	<-prev.done
	return ctx.Err() == nil
}

func (p *Pipelines) stopAll() {
	p.mu.Lock()
	ws := p.workers
	p.workers = map[pipeKey]*pipeWorker{}
	procs := p.procs
	p.procs = map[string]*procEntry{}
	p.mu.Unlock()
	for _, w := range ws {
		w.cancel()
		<-w.done
	}
	p.closing.Wait() // the processors of drained workers
	for _, e := range procs {
		e.p.Close()
	}
}

func (p *Pipelines) processor(ctx context.Context, s PipelineSpec) (Processor, error) {
	p.mu.Lock()
	if e := p.procs[s.Name]; e != nil && e.version == s.Version && e.module == s.Module && e.limits == s.Limits {
		p.mu.Unlock()
		return e.p, nil
	}
	p.mu.Unlock()
	m, err := p.Module(s.Module)
	if err != nil {
		return nil, err
	}
	if s.Version < 1 || s.Version > len(m.Versions) {
		return nil, fmt.Errorf("%w: module %q has no version %d", ErrModuleNotFound, s.Module, s.Version)
	}
	v := m.Versions[s.Version-1]
	wasm, err := p.moduleBytes(ctx, v)
	if err != nil {
		return nil, err
	}
	pr, err := p.rt.Processor(ctx, ModuleRef{Name: s.Module, Version: v.Version, SHA256: v.SHA256, Wasm: wasm}, s.Limits)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &startError{err}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.procs[s.Name]; e != nil && e.version == s.Version && e.module == s.Module && e.limits == s.Limits {
		go pr.Close() // another worker won the race
		return e.p, nil
	}
	p.procs[s.Name] = &procEntry{p: pr, module: s.Module, version: s.Version, limits: s.Limits}
	return pr, nil
}

// stateView serves a module's state reads from the input partition's
// replicated state under pipe/<name>/s/.
type stateView struct {
	log    PartitionLog
	prefix string
}

func (v stateView) Get(key []byte) ([]byte, bool) { return v.log.StateGet(v.prefix + string(key)) }

// startError is a module that could not start: the runtime refused to
// instantiate it (its start function or _initialize trapped or overran the
// time limit, its memory does not fit the limit, its worker died). Unlike
// other worker errors (a leader change, an unavailable partition) it counts
// as a failed attempt.
type startError struct{ err error }

func (e *startError) Error() string { return "module failed to start: " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// runWorker processes one input partition on its leader until ctx ends.
// Errors back off exponentially. A module that cannot start counts as a
// failed attempt in the partition's status; after on_error.max_attempts of
// them in a row the pipeline is marked failed (PipelineSpec.Failure) and the
// worker waits for resync to stop it: no node restarts it until a resume.
// An output that is a mirror topic (ErrMirrorTopic) stalls the worker,
// with the reason in the status, until the mirror is promoted.
func (p *Pipelines) runWorker(ctx context.Context, k pipeKey, s PipelineSpec, drain <-chan struct{}) {
	backoff := time.Duration(s.OnError.InitialBackoffMs) * time.Millisecond
	startFailures := 0
	for ctx.Err() == nil {
		err := p.work(ctx, k, s, drain)
		if ctx.Err() != nil || errors.Is(err, errDrained) {
			return
		}
		p.log.Warn("pipeline worker", "pipeline", s.Name, "topic", k.topic, "partition", k.part, "err", err)
		if errors.Is(err, ErrCorrupt) {
			// Corrupt stored progress: retrying cannot help and guessing
			// would re-emit outputs. Stop, with the reason in the status.
			msg := fmt.Sprintf("input partition %s/%d: %v; the pipeline stopped without moving its position", k.topic, k.part, err)
			if p.markFailed(ctx, k, s, msg, 1) {
				p.log.Error("pipeline failed: corrupt stored state", "pipeline", s.Name, "topic", k.topic, "partition", k.part, "err", err)
				select { // the catalog change stops (or replaces) this worker
				case <-ctx.Done():
				case <-drain:
				}
				return
			}
		}
		if errors.Is(err, ErrMirrorTopic) {
			// An output became a mirror topic (link.go): say so in the
			// status and retry with backoff; a promote or the link's
			// deletion lets the pipeline go on where it stopped.
			p.noteError(ctx, k, s, err.Error(), false)
		}
		var se *startError
		if errors.As(err, &se) {
			startFailures++
			if p.startFailed(ctx, k, s, se, startFailures) {
				select { // the catalog change stops (or replaces) this worker
				case <-ctx.Done():
				case <-drain:
				}
				return
			}
		} else {
			startFailures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-drain:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Duration(s.OnError.MaxBackoffMs)*time.Millisecond)
	}
}

// recordStart fixes where a new pipeline starts on a partition, once, in
// the partition's replicated state: the log start (from earliest) or the
// high watermark when the pipeline was first run (from latest). Kept only
// in memory, a "latest" start moved with every new record and the pipeline
// never processed any; kept in state, it survives restarts and failover.
// A partition added to the input after the pipeline was created starts at
// its log start either way: all it holds came after the pipeline.
func (p *Pipelines) recordStart(ctx context.Context, log PartitionLog, s PipelineSpec, k pipeKey, metaKey string) error {
	raw, had := log.StateGet(metaKey)
	m, err := loadPipeMeta(log, s.Name)
	if err != nil || m.Started {
		return err
	}
	// A reset meta (resetState) keeps the producer sequences and outbox
	// numbering: the outputs' dedup windows still know them.
	m.Pos, m.Started, m.Incarnation = log.LogStart(), true, s.Incarnation
	if n, known := s.InputPartitions[k.topic]; s.From == "latest" && (!known || k.part < n) {
		m.Pos = log.HighWatermark()
	}
	doc, _ := json.Marshal(m)
	// Unchanged: a predecessor that started first keeps its start.
	_, err = log.ApplyTxn(ctx, &StateTxn{Conds: []StateCond{{Key: metaKey, Absent: !had, Value: raw}}, Ops: []StateOp{{Key: metaKey, Value: doc}}})
	return err
}

// resetState drops the position, keyed state and counters another
// incarnation of the pipeline left in the partition (a deleted pipeline of
// the same name, re-created without resume), after shipOutbox delivered
// what it had committed. The producer sequences and the outbox numbering
// stay, so the outputs' deduplication goes on accepting the new
// incarnation's appends. Deletions go in chunks; the meta is written last,
// conditionally, so a crash midway resets again.
func (p *Pipelines) resetState(ctx context.Context, log PartitionLog, s PipelineSpec, k pipeKey, metaKey string) error {
	raw, had := log.StateGet(metaKey)
	m, err := loadPipeMeta(log, s.Name)
	if err != nil || !had || m.Incarnation == s.Incarnation {
		return err
	}
	var keys []string
	log.StateScan(pipePrefix(s.Name), func(key string, _ []byte) bool {
		if key != metaKey {
			keys = append(keys, key)
		}
		return true
	})
	const chunk = 512
	for len(keys) > chunk {
		ops := make([]StateOp, chunk)
		for i, k := range keys[:chunk] {
			ops[i] = StateOp{Key: k, Delete: true}
		}
		if _, err := log.ApplyTxn(ctx, &StateTxn{Conds: []StateCond{{Key: metaKey, Value: raw}}, Ops: ops}); err != nil {
			return err
		}
		keys = keys[chunk:]
	}
	ops := make([]StateOp, 0, len(keys)+1)
	for _, k := range keys {
		ops = append(ops, StateOp{Key: k, Delete: true})
	}
	doc, _ := json.Marshal(pipeMeta{Incarnation: s.Incarnation, Outbox: m.Outbox, Seq: m.Seq})
	ops = append(ops, StateOp{Key: metaKey, Value: doc})
	res, err := log.ApplyTxn(ctx, &StateTxn{Conds: []StateCond{{Key: metaKey, Value: raw}}, Ops: ops})
	if err != nil {
		return err
	}
	if !res.Applied {
		return errors.New("pipeline meta changed during a reset (another leader?)")
	}
	p.log.Info("pipeline starts fresh: dropped a previous incarnation's position and state", "pipeline", s.Name, "topic", k.topic, "partition", k.part, "keys", len(keys))
	return nil
}

// work processes one input partition from its stored position until ctx
// ends, the worker is drained at a batch boundary, or an error stops it.
func (p *Pipelines) work(ctx context.Context, k pipeKey, s PipelineSpec, drain <-chan struct{}) error {
	if drained(drain) {
		return errDrained
	}
	log, proc, err := p.prepareWork(ctx, k, s)
	if err != nil {
		return err
	}
	// Batches in flight: the tail appends and commits (at-least-once) or
	// commits and ships (exactly-once) batch n while this loop runs batch
	// n+1. The position is read from state once and then carried, since the
	// tail's last commit may not have applied yet; every commit is
	// conditional on the one before, so a change by anyone else ends the
	// worker.
	t := newTail(ctx, pipelineTailDepth)
	defer t.close()
	b := &batchLoop{p: p, k: k, s: s, drain: drain, log: log, proc: proc, metaKey: pipePrefix(s.Name) + "meta", t: t, sh: &shipped{}}
	b.tk = newTickSchedule(s, time.Now())
	for ctx.Err() == nil {
		if err := t.Err(); err != nil {
			return err
		}
		if t.idle() { // nothing in flight: the state is the truth
			if err := b.reload(); err != nil {
				return err
			}
		}
		if drained(drain) { // a batch boundary: the successor takes over
			if err := t.wait(); err != nil {
				return err
			}
			return errDrained
		}
		b.resume()
		changed := log.Changed()
		recs, err := log.Read(ctx, b.m.Pos, s.BatchSize, p.cfg.MaxBatchBytes)
		if err != nil {
			if errors.Is(err, ErrOffsetOutOfRange) {
				continue
			}
			return err
		}
		if len(recs) == 0 {
			if err := b.caughtUp(ctx, changed); err != nil {
				return err
			}
			continue
		}
		// Rights are checked with the batch in hand, so a record appended
		// after a revocation is never processed under the old rights; so
		// are the outputs, none of which may have become a mirror topic
		// (link.go): no batch is processed that could not be written.
		err = p.checkAccess(s, k.topic)
		if err == nil {
			err = p.checkWrites(s)
		}
		if err != nil {
			b.noteRefusal(ctx, err)
			return err
		}
		if err := b.batch(ctx, recs); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// prepareWork opens the input partition and the pipeline's processor, then
// readies the partition's stored progress: it ships what a predecessor
// committed, drops another incarnation's state and records where the
// pipeline starts.
func (p *Pipelines) prepareWork(ctx context.Context, k pipeKey, s PipelineSpec) (PartitionLog, Processor, error) {
	log, err := p.store.Partition(k.topic, k.part)
	if err != nil {
		return nil, nil, err
	}
	proc, err := p.processor(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	metaKey := pipePrefix(s.Name) + "meta"
	// A new leader first ships what its predecessor committed but may not
	// have delivered.
	if err := p.shipOutbox(ctx, log, s, k); err != nil {
		return nil, nil, err
	}
	if err := p.resetState(ctx, log, s, k, metaKey); err != nil {
		return nil, nil, err
	}
	if err := p.recordStart(ctx, log, s, k, metaKey); err != nil {
		return nil, nil, err
	}
	return log, proc, nil
}

// batchLoop is what work carries from batch to batch on one input
// partition: the tail of commits in flight, the shipped outbox entry, the
// tick schedule and the position with the stored metadata it was read from
// (rawMeta, hadMeta), the condition of the next commit. It is owned by the
// goroutine running work.
type batchLoop struct {
	p       *Pipelines
	k       pipeKey
	s       PipelineSpec
	drain   <-chan struct{}
	log     PartitionLog
	proc    Processor
	metaKey string
	t       *tail
	sh      *shipped
	tk      *tickSchedule

	rawMeta []byte
	hadMeta bool
	m       pipeMeta
}

// reload reads the position and metadata from the partition's state; only
// when nothing is in flight, since then the state is the truth.
func (b *batchLoop) reload() error {
	var err error
	b.rawMeta, b.hadMeta = b.log.StateGet(b.metaKey)
	b.m, err = loadPipeMeta(b.log, b.s.Name)
	return err
}

// resume fixes the position before a read: a start recordStart did not
// record, this incarnation on fresh metadata, and records retention
// deleted before the pipeline processed them.
func (b *batchLoop) resume() {
	if !b.m.Started { // recordStart lost a race with a predecessor's first batch
		b.m.Pos, b.m.Started = b.log.LogStart(), true
	}
	if !b.hadMeta {
		b.m.Incarnation = b.s.Incarnation
	}
	if start := b.log.LogStart(); b.m.Pos < start {
		b.m.Pos = start // retention deleted records the pipeline had not processed
	}
}

// caughtUp handles a read that found no new record: it deletes the last
// shipped outbox entry, runs a due tick, or waits for new records (changed),
// the tick schedule, a failed commit, ctx or a drain. A nil error means
// the loop goes on; errDrained that the worker was drained.
func (b *batchLoop) caughtUp(ctx context.Context, changed <-chan struct{}) error {
	t := b.t
	if t.idle() {
		// Caught up: delete the last shipped outbox entry now
		// rather than with the next batch's commit.
		if err := b.sh.flush(ctx, b.log); err != nil {
			return err
		}
	}
	wait, due := b.tk.wait(time.Now())
	if due {
		// A tick reads and may change the committed state: nothing
		// may be in flight behind it. Once the tail is idle, the
		// loop's top reloads the position from state.
		if !t.idle() {
			return t.wait()
		}
		doc, err := b.p.tick(ctx, t, b.proc, b.log, b.s, b.k, &b.m, b.rawMeta, b.hadMeta, b.tk, b.sh)
		if err != nil {
			return err
		}
		if doc != nil {
			b.rawMeta, b.hadMeta = doc, true
		}
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.drain:
		if err := t.wait(); err != nil {
			return err
		}
		return errDrained
	case <-t.Failed():
	case <-changed:
	case <-time.After(wait):
	}
	return nil
}

// noteRefusal says why the pipeline stalls in its status (last_error),
// once per change of reason: the refusal is retried with backoff.
func (b *batchLoop) noteRefusal(ctx context.Context, err error) {
	if msg := err.Error(); b.m.LastError != msg && b.t.wait() == nil {
		b.m.LastError = msg
		doc, _ := json.Marshal(b.m)
		_, _ = b.log.ApplyTxn(ctx, &StateTxn{Conds: []StateCond{{Key: b.metaKey, Absent: !b.hadMeta, Value: b.rawMeta}}, Ops: []StateOp{{Key: b.metaKey, Value: doc}}})
	}
}

// batch processes recs (with retries), gives them to the dead-letter topic
// when every attempt failed, and hands the outputs, state writes and new
// position to the tail as one commit. It traces and counts the batch.
func (b *batchLoop) batch(ctx context.Context, recs []Record) error {
	p, s, k := b.p, b.s, b.k
	tel := p.broker.Telemetry() // spans and counts: docs/observability.md
	bctx, span := tel.StartPipelineBatch(ctx, s.Name, k.topic, k.part, recs)
	deadBefore := b.m.Dead
	out, attempts, lastErr := p.processWithRetry(bctx, b.proc, b.log, s, k, recs, &b.m, b.drain)
	if ctx.Err() != nil {
		EndSpan(span, ctx.Err())
		return ctx.Err()
	}
	if errors.Is(lastErr, errDrained) { // abandoned between failed attempts: nothing committed
		EndSpan(span, lastErr)
		return errDrained
	}
	next := recs[len(recs)-1].Offset + 1
	fx := newEffects()
	if lastErr != nil {
		// Give up on the batch: its input goes to the dead-letter topic.
		for _, r := range recs {
			fx.add(s.OnError.DeadLetterTopic, 0, p.deadRecord(r, s, k, "batch_failed", lastErr.Error(), attempts))
		}
		b.m.Dead += int64(len(recs))
		b.m.LastError = lastErr.Error()
	} else {
		if err := p.collect(fx, out, recs, s, k, &b.m); err != nil {
			return err
		}
		b.m.Processed += int64(len(recs))
	}
	b.m.Pos = next
	b.tk.ran(time.Now(), len(fx.state) > 0)
	for _, key := range fx.order {
		tel.Stamp(bctx, fx.emit[key]) // outputs carry the trace of their input
	}
	doc, err := p.commit(bctx, b.t, b.log, s, k, &b.m, b.rawMeta, b.hadMeta, fx.state, fx.emit, fx.order, b.sh)
	if err != nil {
		EndSpan(span, err)
		return err
	}
	b.rawMeta, b.hadMeta = doc, true
	if lastErr == nil {
		tel.PipelineRecords(s.Name, len(recs), 0, int(b.m.Dead-deadBefore))
	} else {
		tel.PipelineRecords(s.Name, 0, 0, int(b.m.Dead-deadBefore))
	}
	EndSpan(span, lastErr)
	return nil
}

// effects are what a batch or tick commits: records per output partition
// ("topic/partition", in first-use order) and state writes.
type effects struct {
	emit  map[string][]Record
	order []string
	state []StateOp
}

func newEffects() *effects { return &effects{emit: map[string][]Record{}} }

func (fx *effects) add(topic string, part int, r Record) {
	key := topic + "/" + strconv.Itoa(part)
	if _, ok := fx.emit[key]; !ok {
		fx.order = append(fx.order, key)
	}
	fx.emit[key] = append(fx.emit[key], r)
}

// collect adds a successful call's outputs, dead letters and state writes
// to fx, counting them in m.
func (p *Pipelines) collect(fx *effects, out *ProcessOutput, recs []Record, s PipelineSpec, k pipeKey, m *pipeMeta) error {
	for _, o := range out.Records {
		if o.Output < 0 || o.Output >= len(s.Outputs) {
			continue
		}
		topic := s.Outputs[o.Output]
		part, err := p.outputPartition(topic, o.Record.Key, k.part)
		if err != nil {
			return err
		}
		fx.add(topic, part, o.Record)
		m.Emitted++
	}
	for _, d := range out.Dead {
		if d.Index < 0 || d.Index >= len(recs) {
			continue
		}
		fx.add(s.OnError.DeadLetterTopic, 0, p.deadRecord(recs[d.Index], s, k, "rejected_by_module", d.Reason, 1))
		m.Dead++
	}
	for _, c := range out.State {
		fx.state = append(fx.state, StateOp{Key: pipePrefix(s.Name) + "s/" + string(c.Key), Value: c.Value, Delete: c.Delete})
	}
	return nil
}

// startFailed counts a failed start in the partition's status (failed,
// last_error) and, at the last attempt, marks the pipeline failed. It
// reports whether it did.
func (p *Pipelines) startFailed(ctx context.Context, k pipeKey, s PipelineSpec, err *startError, attempts int) bool {
	p.noteError(ctx, k, s, err.Error(), true)
	if attempts < s.OnError.MaxAttempts {
		return false
	}
	if !p.markFailed(ctx, k, s, err.Error(), attempts) {
		return false
	}
	p.log.Error("pipeline failed: its module cannot start", "pipeline", s.Name, "topic", k.topic, "partition", k.part, "attempts", attempts, "err", err)
	return true
}

// noteError records msg as the last error of pipeline s on input
// partition k (its status's last_error), counting a failed attempt when
// failed; without failed, the same message is not written again.
// Progress that does not decode, or that belongs to another incarnation
// (which resetState drops), is left alone.
func (p *Pipelines) noteError(ctx context.Context, k pipeKey, s PipelineSpec, msg string, failed bool) {
	log, err := p.store.Partition(k.topic, k.part)
	if err != nil {
		return
	}
	metaKey := pipePrefix(s.Name) + "meta"
	for range 3 { // the position may move under a concurrent commit; recount
		raw, had := log.StateGet(metaKey)
		m, err := loadPipeMeta(log, s.Name)
		if err != nil {
			return // corrupt: left as it is (the next work fails the pipeline)
		}
		if !had {
			m.Incarnation = s.Incarnation // the first meta of this pipeline here
		} else if m.Incarnation != s.Incarnation {
			return // another incarnation's, which resetState drops: not counted there
		}
		if !failed && m.LastError == msg {
			return
		}
		if failed {
			m.Failed++
		}
		m.LastError = msg
		doc, _ := json.Marshal(m)
		res, err := log.ApplyTxn(ctx, &StateTxn{Conds: []StateCond{{Key: metaKey, Absent: !had, Value: raw}}, Ops: []StateOp{{Key: metaKey, Value: doc}}})
		if err != nil || res.Applied {
			return
		}
	}
}

// markFailed records in the catalog that the pipeline stopped (its
// Failure: state failed), naming the input partition whose worker gave up
// and why. It reports whether the pipeline is now failed (by this call or
// another partition's worker) or deleted; false when the definition was
// replaced or the catalog refused the write (the caller backs off).
func (p *Pipelines) markFailed(ctx context.Context, k pipeKey, s PipelineSpec, msg string, attempts int) bool {
	f := &PipelineFailure{Error: msg, Topic: k.topic, Partition: k.part, Attempts: attempts, At: time.Now().UnixMilli()}
	for ctx.Err() == nil {
		old, ok := p.store.CatalogGet(catalogPipelines, s.Name)
		if !ok {
			return true // deleted meanwhile
		}
		var cur PipelineSpec
		if json.Unmarshal(old, &cur) != nil || !sameRun(cur, s) {
			return false // replaced: resync restarts this worker with the new definition
		}
		if cur.Failure != nil {
			return true // another partition's worker got there first
		}
		cur.Failure = f
		doc, _ := json.Marshal(cur)
		done, cerr := p.store.CatalogPut(ctx, catalogPipelines, s.Name, doc, CatalogCond{IfEqual: old})
		if cerr != nil {
			p.log.Warn("pipeline failure not recorded", "pipeline", s.Name, "err", cerr)
			return false // back off and try again
		}
		if done {
			return true
		}
	}
	return true
}

func (p *Pipelines) outputPartition(topic string, key []byte, inPart int) (int, error) {
	t, err := p.store.Topic(topic)
	if err != nil {
		return 0, err
	}
	if key != nil {
		return KeyPartition(key, t.Partitions), nil
	}
	return inPart % t.Partitions, nil
}

// processWithRetry calls the module until a batch succeeds or its attempts
// are spent. A drain between failed attempts abandons the batch (errDrained):
// a replacement module gets it whole.
func (p *Pipelines) processWithRetry(ctx context.Context, proc Processor, log PartitionLog, s PipelineSpec, k pipeKey, recs []Record, m *pipeMeta, drain <-chan struct{}) (*ProcessOutput, int, error) {
	backoff := time.Duration(s.OnError.InitialBackoffMs) * time.Millisecond
	var lastErr error
	for attempt := 1; attempt <= s.OnError.MaxAttempts; attempt++ {
		in := &ProcessInput{Pipeline: s.Name, Topic: k.topic, Partition: k.part, Records: recs, Outputs: s.Outputs, Config: s.Config,
			State: stateView{log: log, prefix: pipePrefix(s.Name) + "s/"}, Log: p.guestLogger(ctx, s, k, recs)}
		var out *ProcessOutput
		err := p.broker.Telemetry().WasmCall(ctx, s.Name, s.Module, len(recs), func(ctx context.Context) (err error) {
			out, err = proc.Process(ctx, in)
			return err
		})
		if err == nil {
			return out, attempt, nil
		}
		if ctx.Err() != nil {
			return nil, attempt, ctx.Err()
		}
		lastErr = err
		m.Failed++
		p.broker.Telemetry().PipelineRecords(s.Name, 0, len(recs), 0)
		m.LastError = err.Error()
		p.log.InfoContext(ctx, "pipeline batch failed", "pipeline", s.Name, "topic", k.topic, "partition", k.part, "offset", recs[0].Offset, "attempt", attempt, "err", err)
		if attempt == s.OnError.MaxAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return nil, attempt, ctx.Err()
		case <-drain:
			return nil, attempt, errDrained
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Duration(s.OnError.MaxBackoffMs)*time.Millisecond)
	}
	return nil, s.OnError.MaxAttempts, lastErr
}

func (p *Pipelines) deadRecord(r Record, s PipelineSpec, k pipeKey, reason, errMsg string, attempts int) Record {
	h := append([]Header{}, r.Headers...)
	h = append(h,
		Header{HeaderDLQReason, reason},
		Header{HeaderLastError, errMsg},
		Header{HeaderDLQPipeline, s.Name},
		Header{HeaderDLQModule, s.Module},
		Header{HeaderDLQVersion, strconv.Itoa(s.Version)},
		Header{HeaderSourceTopic, k.topic},
		Header{HeaderSourcePartition, strconv.Itoa(k.part)},
		Header{HeaderSourceOffset, strconv.FormatInt(r.Offset, 10)},
		Header{HeaderAttempts, strconv.Itoa(attempts)},
	)
	return Record{Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: h}
}

// pipelineTailDepth is how many batches a worker's tail holds waiting
// beside the one it is committing.
const pipelineTailDepth = 1

// shipped is an exactly-once worker's outbox entry that was shipped and not
// yet deleted: the next commit deletes it in the same Raft entry (one entry
// fewer per batch), or the worker does when it goes idle. Only the tail's
// jobs touch it, and the worker loop when the tail is idle.
type shipped struct{ key string }

// flush deletes the shipped entry, if any (the worker is idle).
func (sh *shipped) flush(ctx context.Context, log PartitionLog) error {
	if sh.key == "" {
		return nil
	}
	if _, err := log.ApplyTxn(ctx, &StateTxn{Ops: []StateOp{{Key: sh.key, Delete: true}}}); err != nil {
		return err
	}
	sh.key = ""
	return nil
}

// commit makes a batch's effects durable behind the worker (tail), and
// returns the batch's position document as it will be committed (the
// condition of the next batch's commit). Exactly-once: the new position,
// the module's state changes and the outputs (an outbox entry) are one
// transaction on the input partition, conditional on the position not
// having moved; once it applied, the job ships the outbox entry with
// idempotent appends (its deletion rides on the next commit, see shipped).
// At-least-once: the job appends the outputs, then commits the position.
// Either way, a batch that changed state waits for its commit, so that the
// next batch reads that state; outputs are never visible before the
// commit that makes them exactly-once.
func (p *Pipelines) commit(ctx context.Context, t *tail, log PartitionLog, s PipelineSpec, k pipeKey, m *pipeMeta, rawMeta []byte, hadMeta bool, stateOps []StateOp, emit map[string][]Record, order []string, sh *shipped) ([]byte, error) {
	metaKey := pipePrefix(s.Name) + "meta"
	cond := StateCond{Key: metaKey, Absent: !hadMeta, Value: rawMeta}
	var job func(ctx context.Context) error
	var doc []byte
	if s.Guarantee != ExactlyOnce {
		doc, _ = json.Marshal(m)
		ops := append(stateOps, StateOp{Key: metaKey, Value: doc})
		job = func(ctx context.Context) error {
			return p.appendThenCommit(ctx, log, s, ops, cond, emit, order)
		}
	} else {
		var ops []StateOp
		var obKey string
		var entry []byte
		if len(order) > 0 {
			for _, key := range order {
				seq := m.Seq[key]
				m.Seq[key] = seq + int64(len(emit[key]))
				entry = encodeOutboxGroup(entry, key, seq, emit[key])
			}
			obKey = fmt.Sprintf("%sob/%020d", pipePrefix(s.Name), m.Outbox)
			ops = append(ops, StateOp{Key: obKey, Value: entry})
			m.Outbox++
		}
		doc, _ = json.Marshal(m)
		ops = append(ops, stateOps...)
		ops = append(ops, StateOp{Key: metaKey, Value: doc})
		job = func(ctx context.Context) error {
			txn := &StateTxn{Conds: []StateCond{cond}, Ops: ops}
			if sh.key != "" {
				txn.Ops = append(txn.Ops, StateOp{Key: sh.key, Delete: true})
			}
			res, err := log.ApplyTxn(ctx, txn)
			if err != nil {
				return err
			}
			if !res.Applied {
				return errPositionMoved
			}
			sh.key = ""
			if obKey == "" {
				return nil
			}
			if err := p.shipEntry(ctx, log, s, k, obKey, entry); err != nil {
				return err
			}
			sh.key = obKey
			return nil
		}
	}
	err := t.submit(job)
	if err == nil && len(stateOps) > 0 {
		err = t.wait()
	}
	return doc, err
}

var errPositionMoved = errors.New("pipeline position moved under this worker (another leader?)")

// appendThenCommit is an at-least-once batch's commit: its outputs, to
// every output partition at once, then (if all were appended) its position
// and state.
func (p *Pipelines) appendThenCommit(ctx context.Context, log PartitionLog, s PipelineSpec, ops []StateOp, cond StateCond, emit map[string][]Record, order []string) error {
	now := time.Now().UnixMilli()
	err := each(len(order), func(i int) error {
		topic, part := splitTP(order[i])
		_, err := p.appendOutput(ctx, s, topic, part, &AppendBatch{Timestamp: now, Records: emit[order[i]]})
		return err
	})
	if err != nil {
		return err
	}
	res, err := log.ApplyTxn(ctx, &StateTxn{Conds: []StateCond{cond}, Ops: ops})
	if err != nil {
		return err
	}
	if !res.Applied {
		return errPositionMoved
	}
	return nil
}

// appendOutput appends b, outputs or dead letters of pipeline s, to one
// partition of topic. Every output append of a pipeline goes through it
// (appendThenCommit, shipEntry), and it refuses a topic that is a mirror
// not yet promoted (*MirrorError) whenever the topic became one, even
// after the batch was processed or its outbox entry committed: the entry
// waits, and ships once the mirror is promoted or detached.
func (p *Pipelines) appendOutput(ctx context.Context, s PipelineSpec, topic string, part int, b *AppendBatch) (AppendResult, error) {
	if err := checkWritableTopic(p.store, topic); err != nil {
		return AppendResult{}, fmt.Errorf("pipeline %q: %w", s.Name, err)
	}
	out, err := p.store.Partition(topic, part)
	if err != nil {
		return AppendResult{}, err
	}
	return p.broker.Telemetry().AppendOutput(ctx, out, s.Name, topic, part, b)
}

func splitTP(key string) (string, int) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			n, _ := strconv.Atoi(key[i+1:])
			return key[:i], n
		}
	}
	return key, 0
}

// shipOutbox appends every committed outbox entry to its output partitions
// and deletes it. The appends are idempotent (producer id per pipeline and
// input partition, sequence fixed at commit), so shipping twice after a crash
// or a leader change writes each output once.
func (p *Pipelines) shipOutbox(ctx context.Context, log PartitionLog, s PipelineSpec, k pipeKey) error {
	prefix := pipePrefix(s.Name) + "ob/"
	type entry struct {
		key string
		val []byte
	}
	var pending []entry
	log.StateScan(prefix, func(key string, v []byte) bool {
		pending = append(pending, entry{key, v})
		return true
	})
	for _, e := range pending {
		if err := p.shipEntry(ctx, log, s, k, e.key, e.val); err != nil {
			return err
		}
		if _, err := log.ApplyTxn(ctx, &StateTxn{Ops: []StateOp{{Key: e.key, Delete: true}}}); err != nil {
			return err
		}
	}
	return nil
}

// shipEntry appends one committed outbox entry (state key key, value val)
// to its output partitions, idempotently.
func (p *Pipelines) shipEntry(ctx context.Context, log PartitionLog, s PipelineSpec, k pipeKey, key string, val []byte) error {
	pid := "pipe/" + s.Name + "/" + k.topic + "/" + strconv.Itoa(k.part)
	groups, err := decodeOutbox(val)
	if err != nil {
		// Never skipped: its outputs would be lost. The pipeline fails.
		return fmt.Errorf("%w: pipeline %q outbox entry (state key %s) does not decode: %v", ErrCorrupt, s.Name, key, err)
	}
	// One entry names each output partition once: ship them at once.
	return each(len(groups), func(i int) error {
		g := groups[i]
		topic, part := splitTP(g.tp)
		_, err := p.appendOutput(ctx, s, topic, part, &AppendBatch{ProducerID: pid, Sequence: g.seq, Timestamp: time.Now().UnixMilli(), Records: g.recs})
		var se *SequenceError
		if errors.As(err, &se) && se.Expected > g.seq {
			err = nil // appended before, beyond the dedup window
		}
		return err
	})
}

type outboxGroup struct {
	tp   string
	seq  int64
	recs []Record
}

// encodeOutboxGroup appends one output partition's records to an outbox
// entry: uvarint len(tp), tp, varint seq, uvarint len(records), records.
func encodeOutboxGroup(b []byte, tp string, seq int64, recs []Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(tp)))
	b = append(b, tp...)
	b = binary.AppendVarint(b, seq)
	enc := AppendRecords(nil, recs)
	b = binary.AppendUvarint(b, uint64(len(enc)))
	return append(b, enc...)
}

func decodeOutbox(b []byte) ([]outboxGroup, error) {
	var out []outboxGroup
	d := decoder{b: b}
	for len(d.b) > 0 && d.err == nil {
		tp := string(d.bytes(d.uvarint()))
		seq := d.varint()
		enc := d.bytes(d.uvarint())
		if d.err != nil {
			break
		}
		recs, err := DecodeRecords(nil, enc, 0)
		if err != nil {
			return nil, err
		}
		for i := range recs {
			recs[i].Offset = 0
		}
		out = append(out, outboxGroup{tp, seq, recs})
	}
	return out, d.err
}

// checkAccess refuses a batch when the pipeline's principal may no longer
// read its input or write its outputs (docs/security.md).
func (p *Pipelines) checkAccess(s PipelineSpec, input string) error {
	a := p.cfg.Access
	if a == nil {
		return nil
	}
	if !a.PrincipalAllowed(s.Principal, "topic", input, "read") {
		return fmt.Errorf("%w: pipeline %q runs as principal %q, which may not read topic %q", ErrForbidden, s.Name, s.Principal, input)
	}
	for _, t := range s.writes() {
		if t != "" && !a.PrincipalAllowed(s.Principal, "topic", t, "write") {
			return fmt.Errorf("%w: pipeline %q runs as principal %q, which may not write topic %q", ErrForbidden, s.Name, s.Principal, t)
		}
	}
	return nil
}
