package core

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Ticks: a module's timers (docs/transforms.md, "Time") must fire when
// its input partition gets no new records. A worker whose partition is
// idle calls the module's tick (ProcessInput.Tick: docs/abi.md,
// weir_tick) every PipelineSpec.TickIntervalMs while the module reports
// timers pending, and commits what the tick emitted and wrote exactly as
// a batch's effects: one transaction on the input partition, with the
// outbox for an exactly-once pipeline, at an unchanged position. The
// watermark and the timers are module state, so they are committed with
// the outputs and the position and survive a restart as they were at the
// last commit: a window close is neither lost nor emitted twice.

// tickSchedule decides when an idle partition's worker ticks its module.
// It is owned by the worker's goroutine.
type tickSchedule struct {
	interval time.Duration
	next     time.Time // no tick before
	pending  bool      // the module may have timers: tick when idle
}

// newTickSchedule starts pending: after a start (a restart, a new leader)
// the worker does not know whether the module has timers, so it asks at
// the first idle interval.
func newTickSchedule(s PipelineSpec, now time.Time) *tickSchedule {
	ms := s.TickIntervalMs
	if ms <= 0 {
		ms = DefaultTickIntervalMs
	}
	d := time.Duration(ms) * time.Millisecond
	return &tickSchedule{interval: d, next: now.Add(d), pending: true}
}

// ran notes a batch: the next tick is an interval away, and if the batch
// wrote state it may have set timers (they are state: a batch that wrote
// none leaves the module as idle as its last tick said).
func (t *tickSchedule) ran(now time.Time, wroteState bool) {
	t.pending = t.pending || wroteState
	t.next = now.Add(t.interval)
}

// ticked notes a tick and whether the module has timers left.
func (t *tickSchedule) ticked(now time.Time, pending bool) {
	t.pending, t.next = pending, now.Add(t.interval)
}

// wait says how long an idle worker waits for records before it looks
// again (at most a second), or that a tick is due now.
func (t *tickSchedule) wait(now time.Time) (time.Duration, bool) {
	if !t.pending {
		return time.Second, false
	}
	d := t.next.Sub(now)
	if d <= 0 {
		return 0, true
	}
	return min(d, time.Second), false
}

// tick runs one tick of the module on an idle partition and commits its
// effects at the current position. A failed tick is logged (also to the
// pipeline's logs) and retried at the next interval; it fails nothing:
// its timers are still due, and the next batch or tick fires them.
func (p *Pipelines) tick(ctx context.Context, t *tail, proc Processor, log PartitionLog, s PipelineSpec, k pipeKey, m *pipeMeta, rawMeta []byte, hadMeta bool, tk *tickSchedule, sh *shipped) ([]byte, error) {
	if err := p.checkAccess(s, k.topic); err != nil {
		return nil, err // as for a batch: the worker backs off
	}
	glog := p.guestLoggerAt(ctx, s, k, m.Pos, m.Pos)
	in := &ProcessInput{Pipeline: s.Name, Topic: k.topic, Partition: k.part, Outputs: s.Outputs, Config: s.Config,
		State: stateView{log: log, prefix: pipePrefix(s.Name) + "s/"}, Log: glog, Tick: true}
	var out *ProcessOutput
	err := p.broker.Telemetry().WasmCall(ctx, s.Name, s.Module, 0, func(ctx context.Context) (err error) {
		out, err = proc.Process(ctx, in)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		tk.ticked(time.Now(), true)
		p.log.InfoContext(ctx, "pipeline tick failed", "pipeline", s.Name, "topic", k.topic, "partition", k.part, "err", err)
		glog(slog.LevelError, "tick failed: "+err.Error())
		return nil, nil
	}
	tk.ticked(time.Now(), out.Pending)
	if len(out.Records) == 0 && len(out.State) == 0 {
		return nil, nil
	}
	fx := newEffects()
	if err := p.collect(fx, out, nil, s, k, m); err != nil {
		return nil, err
	}
	return p.commit(ctx, t, log, s, k, m, rawMeta, hadMeta, fx.state, fx.emit, fx.order, sh)
}

// Keys implements StateLister over the pipeline's state in the input
// partition.
func (v stateView) Keys(prefix, start string, limit int) []string {
	var keys []string
	if start < prefix {
		start = prefix
	}
	full := v.prefix + prefix
	v.log.StateScan(full, func(key string, _ []byte) bool {
		k := strings.TrimPrefix(key, v.prefix)
		if k < start {
			return true
		}
		keys = append(keys, k)
		return len(keys) < limit
	})
	return keys
}
