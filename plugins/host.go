package plugins

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"

	"github.com/weir-broker/weir/core"
)

var (
	_ core.Runtime   = (*Host)(nil)
	_ core.Processor = (*processor)(nil)
)

// Host validates and runs Wasm modules; it implements core.Runtime. It is
// safe for concurrent use. Close it to release compiled code and stop every
// worker process of its processors.
type Host struct {
	cfg   Config
	cache wazero.CompilationCache
	valRT wazero.Runtime // compiles uploads for validation

	mu     sync.Mutex
	procs  map[*processor]struct{}
	closed bool

	// stranded counts trusted instantiations abandoned at their deadline
	// and still running on compiled code the cache owns.
	stranded atomic.Int64
}

// New returns a Host. cfg is validated once here.
func New(cfg Config) (*Host, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, procs: make(map[*processor]struct{})}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugins: compilation cache: %w", err)
		}
		h.cache = c
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	ctx := context.Background()
	h.valRT = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(h.cache))
	return h, nil
}

// Config returns the host's configuration with defaults applied.
func (h *Host) Config() Config { return h.cfg }

// Validate checks an uploaded module: size, binary header, imports (only
// the weir host module and the WASI calls the Go runtime needs: no
// filesystem, no network), the required exports and their types, and the ABI
// version handshake. It compiles the module, which fills the compilation
// cache. Errors are *core.ModuleInvalidError with the reason.
func (h *Host) Validate(ctx context.Context, wasm []byte) (core.ModuleInfo, error) {
	if err := h.check(); err != nil {
		return core.ModuleInfo{}, err
	}
	info, _, err := h.validate(ctx, wasm)
	return info, err
}

func (h *Host) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	return nil
}

// Limits resolves lim as Processor applies it: zero fields take
// Config.Limits. Limits outside core's bounds or above MaxMemoryPages are
// refused with an error wrapping core.ErrBadRequest.
func (h *Host) Limits(lim core.ProcessorLimits) (core.ProcessorLimits, error) {
	l, err := h.cfg.resolve(lim)
	if err != nil {
		return core.ProcessorLimits{}, err
	}
	return core.ProcessorLimits{MemoryPages: l.pages, BatchTimeoutMs: l.timeout.Milliseconds(), MaxOutputBytes: l.maxOut}, nil
}

// Processor validates m and prepares it to run with limits (zero fields take
// Config.Limits). It starts one instance (or worker) right away, so that a
// module that cannot start fails here rather than on its first batch.
// Instantiation runs under the batch limits: a module whose declared initial
// memory is above the memory limit fails with ErrMemoryLimit before anything
// runs, and one whose start function or _initialize traps or overruns the
// time limit fails with ErrTimeout, or ErrTrap (from a worker: ErrWorker
// wrapping it).
func (h *Host) Processor(ctx context.Context, m core.ModuleRef, lim core.ProcessorLimits) (core.Processor, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	l, err := h.cfg.resolve(lim)
	if err != nil {
		return nil, err
	}
	info, guest, err := h.validate(ctx, m.Wasm)
	if err != nil {
		return nil, err
	}
	if info.MemoryPages > l.pages {
		return nil, fmt.Errorf("%w: the module declares %d pages (%d MiB) of initial memory, above its memory limit of %d pages (%d MiB)",
			ErrMemoryLimit, info.MemoryPages, info.MemoryPages/16, l.pages, l.pages/16)
	}
	p := &processor{h: h, ref: m, lim: l, guest: guest, live: make(map[runner]struct{})}
	if h.cfg.Isolation != IsolationProcess {
		e, err := newEngine(ctx, m.Wasm, h.cache, l.pages, h.cfg.Isolation == IsolationInProcess)
		if err != nil {
			return nil, err
		}
		p.eng = e
	}
	r, err := p.start(ctx)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.put(r)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		p.Close()
		return nil, ErrClosed
	}
	h.procs[p] = struct{}{}
	h.mu.Unlock()
	return p, nil
}

// Close closes every processor (killing their workers) and releases
// compiled code.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	procs := h.procs
	h.procs = nil
	h.mu.Unlock()
	busy := h.stranded.Load() > 0
	for p := range procs {
		p.Close()
		p.mu.Lock()
		busy = busy || p.running > 0
		p.mu.Unlock()
	}
	ctx := context.Background()
	h.valRT.Close(ctx)
	if busy {
		// A trusted guest is still running on compiled code the cache owns:
		// leave the cache to the garbage collector rather than crash.
		return nil
	}
	return h.cache.Close(ctx)
}

func (h *Host) forget(p *processor) {
	h.mu.Lock()
	delete(h.procs, p)
	h.mu.Unlock()
}
