package plugins

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/abi"
)

// runner runs batches of one module: an in-process instance or a worker
// process holding one.
type runner interface {
	// process runs one batch, which enc encodes where the runner wants it
	// (a worker: into its shared region). reusable reports whether the
	// runner may run another batch (false after a timeout, trap or crash).
	process(ctx context.Context, in *core.ProcessInput, enc batchEncoder) (out *core.ProcessOutput, logs []logLine, reusable bool, err error)
	close()
}

// batchEncoder appends a batch's abi encoding to b and returns the result.
type batchEncoder func(b []byte) []byte

// processor implements core.Processor over a pool of runners.
//
// Lock order: processor.mu, then nothing.
type processor struct {
	h     *Host
	ref   core.ModuleRef
	lim   limits
	guest guestInfo // from validation: ABI version, ticks
	eng   *engine   // nil for process isolation

	mu      sync.Mutex
	idle    []runner
	live    map[runner]struct{} // every runner not closed, idle or busy
	closed  bool
	running int // in-process guest calls under way (engine in use)

	bufs  sync.Pool // *[]byte batch encodings
	hints hintTable // state keys to prefetch, per partition (workers)
}

func (p *processor) start(ctx context.Context) (runner, error) {
	var r runner
	var err error
	if p.eng != nil {
		r, err = p.newLocal(ctx)
	} else {
		var w *worker
		if w, err = p.h.startWorker(ctx, p.ref.Wasm, p.lim); err == nil {
			w.hints = &p.hints
			r = w
		}
	}
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		r.close()
		return nil, ErrClosed
	}
	p.live[r] = struct{}{}
	return r, nil
}

func (p *processor) get(ctx context.Context) (runner, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		r := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return r, nil
	}
	p.mu.Unlock()
	return p.start(ctx)
}

func (p *processor) put(r runner) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.h.cfg.MaxIdle {
		p.idle = append(p.idle, r)
		p.mu.Unlock()
		return
	}
	delete(p.live, r)
	p.mu.Unlock()
	r.close()
}

func (p *processor) discard(r runner) {
	p.mu.Lock()
	delete(p.live, r)
	p.mu.Unlock()
	r.close()
}

// Process runs one batch with one call into the guest. Errors fail the
// batch only; the runner that failed is discarded unless the guest merely
// returned an error.
func (p *processor) Process(ctx context.Context, in *core.ProcessInput) (*core.ProcessOutput, error) {
	if in.Tick && (!p.guest.tick || len(in.Records) > 0) {
		return &core.ProcessOutput{}, nil // nothing to tick
	}
	r, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	enc := func(b []byte) []byte { return appendBatch(b, p.guest.version, in) }
	start := time.Now()
	out, logs, reusable, err := r.process(ctx, in, enc)
	p.emitLogs(in, logs)
	if reusable {
		p.put(r)
	} else {
		p.discard(r)
	}
	if err != nil {
		p.h.cfg.Logger.Debug("wasm batch failed", "pipeline", in.Pipeline, "topic", in.Topic,
			"partition", in.Partition, "records", len(in.Records), "elapsed", time.Since(start), "err", err)
		return nil, err
	}
	return out, nil
}

func (p *processor) emitLogs(in *core.ProcessInput, logs []logLine) {
	if len(logs) == 0 {
		return
	}
	lg := p.h.cfg.Logger
	ctx := context.Background()
	for _, l := range logs {
		lg.Log(ctx, slogLevel(l.level), l.msg, "pipeline", in.Pipeline, "module", p.ref.Name,
			"version", p.ref.Version, "topic", in.Topic, "partition", in.Partition)
		if in.Log != nil {
			in.Log(slogLevel(l.level), l.msg)
		}
	}
}

func slogLevel(l int32) slog.Level {
	switch l {
	case abi.LevelDebug:
		return slog.LevelDebug
	case abi.LevelWarn:
		return slog.LevelWarn
	case abi.LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Close kills every instance and worker, busy or idle; batches running in
// workers fail. In-process instances that are running are closed when their
// batch returns, and the compiled code is released after the last one (never,
// if a trusted guest was abandoned still running: freeing code under a
// running guest would crash the broker).
func (p *processor) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	live := p.live
	idle := p.idle
	p.live, p.idle = nil, nil
	closeEng := p.eng != nil && p.running == 0
	p.mu.Unlock()
	for r := range live {
		if _, ok := r.(*worker); ok || containsRunner(idle, r) {
			r.close()
		}
	}
	if closeEng {
		p.eng.close(context.Background())
	}
	p.h.forget(p)
	return nil
}

func containsRunner(rs []runner, r runner) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// enter and leave count in-process guest calls; the engine is closed by
// Close, or by the last call to leave after Close.
func (p *processor) enter() {
	p.mu.Lock()
	p.running++
	p.mu.Unlock()
}

func (p *processor) leave() {
	p.mu.Lock()
	p.running--
	closeEng := p.closed && p.running == 0
	p.mu.Unlock()
	if closeEng {
		p.eng.close(context.Background())
	}
}

// local is an in-process runner.
type local struct {
	p         *processor
	in        *instance
	abandoned atomic.Bool // a trusted guest still running after its deadline
}

// newLocal instantiates the module in the broker process under the batch
// time limit: interrupted at the deadline in-process, abandoned (left to
// finish on its own, then closed) in trusted mode.
func (p *processor) newLocal(ctx context.Context) (runner, error) {
	ctx, cancel := context.WithTimeout(ctx, p.lim.timeout)
	defer cancel()
	overran := func() error {
		return batchErrf(ErrTimeout, "the module's start function and _initialize ran longer than %v", p.lim.timeout)
	}
	if p.h.cfg.Isolation != IsolationTrusted {
		p.enter()
		in, err := p.eng.instantiate(ctx)
		p.leave()
		if errors.Is(err, ErrTimeout) {
			return nil, overran()
		}
		if err != nil {
			return nil, err
		}
		return &local{p: p, in: in}, nil
	}
	type result struct {
		in  *instance
		err error
	}
	done := make(chan result, 1)
	var state atomic.Int32 // 0 running, 1 returned, 2 abandoned
	p.enter()
	go func() {
		defer p.leave()
		in, err := p.eng.instantiate(context.WithoutCancel(ctx))
		if !state.CompareAndSwap(0, 1) {
			p.h.stranded.Add(-1)
			if err == nil {
				in.close(context.Background()) // abandoned: nobody wants it now
			}
			return
		}
		done <- result{in, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		return &local{p: p, in: r.in}, nil
	case <-ctx.Done():
		p.h.stranded.Add(1)
		if state.CompareAndSwap(0, 2) {
			return nil, overran()
		}
		p.h.stranded.Add(-1)
		r := <-done // it returned just now
		if r.err != nil {
			return nil, r.err
		}
		return &local{p: p, in: r.in}, nil
	}
}

func (l *local) close() {
	if !l.abandoned.Load() {
		l.in.close(context.Background())
	}
}

func (l *local) process(ctx context.Context, in *core.ProcessInput, enc batchEncoder) (*core.ProcessOutput, []logLine, bool, error) {
	bp, _ := l.p.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = enc((*bp)[:0])
	batch := *bp
	defer l.p.bufs.Put(bp)
	s := newSession(in.Config, len(in.Outputs), len(in.Records), l.p.lim, readerSource{in.State})
	s.tick = in.Tick
	ctx, cancel := context.WithTimeout(ctx, l.p.lim.timeout)
	defer cancel()
	var err error
	if l.p.h.cfg.Isolation == IsolationTrusted {
		// No interruption: wait for the guest or the deadline, whichever
		// comes first. A guest that overruns is abandoned: its goroutine
		// keeps running (possibly forever) and closes the instance if it
		// ever returns.
		done := make(chan error, 1)
		l.p.enter()
		go func() {
			err := l.in.run(ctx, batch, s)
			if l.abandoned.Load() {
				l.in.close(context.Background())
			}
			l.p.leave()
			done <- err
		}()
		select {
		case err = <-done:
		case <-ctx.Done():
			l.abandoned.Store(true)
			select {
			case err = <-done: // it finished after all
				l.abandoned.Store(false)
			default:
				return nil, nil, false, batchErrf(ErrTimeout, "batch ran longer than %v (trusted mode: the guest was abandoned, not stopped)", l.p.lim.timeout)
			}
		}
	} else {
		l.p.enter()
		err = l.in.run(ctx, batch, s)
		l.p.leave()
	}
	if err != nil {
		return nil, s.logs, reusableAfter(err), err
	}
	out, err := s.output(in.Records)
	if err == nil {
		out.Pending = s.pending
	}
	return out, s.logs, err == nil, err
}

// reusableAfter reports whether an instance may run another batch after err:
// only when the guest itself reported the failure and its state is intact.
func reusableAfter(err error) bool {
	be, ok := err.(*batchError)
	return ok && (be.kind == ErrGuest || be.kind == ErrOutputLimit || be.kind == ErrABI)
}
