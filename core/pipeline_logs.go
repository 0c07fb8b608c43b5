package core

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// GuestLog is one line a module logged (the host ABI's log call), kept in
// the node's ring of its pipeline (Pipelines.Logs).
type GuestLog struct {
	Seq       int64  `json:"seq"`  // per pipeline on this node, from 1
	Time      int64  `json:"time"` // Unix ms, when the batch returned
	Level     string `json:"level"`
	Message   string `json:"message"`
	Module    string `json:"module"`
	Version   int    `json:"version"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// Offset and LastOffset are the input offsets of the batch the line was
	// logged in (a module logs per batch call, not per record).
	Offset     int64 `json:"offset"`
	LastOffset int64 `json:"last_offset"`
}

// DefaultLogLines is how many guest log lines a node keeps per pipeline.
const DefaultLogLines = 1000

// logRing keeps the last max guest log lines of each pipeline on this node.
// Its mutex guards pipes and wake; it is never held with Pipelines.mu.
type logRing struct {
	max   int
	mu    sync.Mutex
	pipes map[string]*pipeLog
	wake  chan struct{} // closed at the next append
}

type pipeLog struct {
	lines []GuestLog // oldest first, at most 2×max before a trim
	seq   int64      // of the last line
}

func newLogRing(max int) *logRing {
	return &logRing{max: max, pipes: map[string]*pipeLog{}, wake: make(chan struct{})}
}

func (r *logRing) add(pipeline string, l GuestLog) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pl := r.pipes[pipeline]
	if pl == nil {
		pl = &pipeLog{}
		r.pipes[pipeline] = pl
	}
	pl.seq++
	l.Seq = pl.seq
	pl.lines = append(pl.lines, l)
	if len(pl.lines) >= 2*r.max {
		pl.lines = append(pl.lines[:0:0], pl.lines[len(pl.lines)-r.max:]...)
	}
	close(r.wake)
	r.wake = make(chan struct{})
}

// since returns the kept lines after seq (at most max), and a channel
// closed at the next append.
func (r *logRing) since(pipeline string, after int64) ([]GuestLog, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pl := r.pipes[pipeline]
	if pl == nil {
		return nil, r.wake
	}
	lines := pl.lines
	if len(lines) > r.max {
		lines = lines[len(lines)-r.max:]
	}
	i := 0
	for i < len(lines) && lines[i].Seq <= after {
		i++
	}
	return append([]GuestLog(nil), lines[i:]...), r.wake
}

// keep drops the rings of pipelines not in live.
func (r *logRing) keep(live map[string]PipelineSpec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.pipes {
		if _, ok := live[name]; !ok {
			delete(r.pipes, name)
		}
	}
}

// Logs returns the guest log lines this node keeps for a pipeline (the
// last PipelinesConfig.LogLines, logged by the workers that ran here), those
// after sequence number after. With none and wait > 0 it waits up to wait
// (or until ctx ends) for one. Lines of workers on other nodes are not here:
// each node keeps the lines of the partitions it led. Errors:
// ErrPipelineNotFound.
func (p *Pipelines) Logs(ctx context.Context, name string, after int64, wait time.Duration) ([]GuestLog, error) {
	if _, err := p.Get(name); err != nil {
		return nil, err
	}
	var deadline <-chan time.Time
	for {
		lines, woke := p.logs.since(name, after)
		if len(lines) > 0 || wait <= 0 {
			return lines, nil
		}
		if deadline == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-woke:
		case <-deadline:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

// guestLogger returns ProcessInput.Log for one batch: lines go to the
// pipeline's ring on this node and, as "guest.log" events, to the batch's
// span (ctx's); the runtime also writes them to the node's log.
func (p *Pipelines) guestLogger(ctx context.Context, s PipelineSpec, k pipeKey, recs []Record) func(slog.Level, string) {
	return p.guestLoggerAt(ctx, s, k, recs[0].Offset, recs[len(recs)-1].Offset)
}

// guestLoggerAt is guestLogger for a call over input offsets [first, last]
// (a tick: first = last = the partition's position).
func (p *Pipelines) guestLoggerAt(ctx context.Context, s PipelineSpec, k pipeKey, first, last int64) func(slog.Level, string) {
	span := trace.SpanFromContext(ctx)
	return func(level slog.Level, msg string) {
		p.logs.add(s.Name, GuestLog{Time: time.Now().UnixMilli(), Level: level.String(), Message: msg,
			Module: s.Module, Version: s.Version, Topic: k.topic, Partition: k.part, Offset: first, LastOffset: last})
		if span.IsRecording() {
			span.AddEvent("guest.log", trace.WithAttributes(attribute.String("level", level.String()), attribute.String("message", msg)))
		}
	}
}
