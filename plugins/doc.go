// Package plugins is Weir's WebAssembly host, on wazero in compiler mode. It
// implements core.Runtime (Host) and core.Processor: it validates uploaded
// modules, compiles them once (with a compilation cache on disk), keeps
// pools of instances, and runs one batch per call across the boundary, with
// limits on memory, time and output per batch.
//
// # Use
//
//	h, err := plugins.New(plugins.Config{CacheDir: "/var/lib/weir/wasm-cache"})
//	info, err := h.Validate(ctx, wasm)              // on upload: *core.ModuleInvalidError
//	p, err := h.Processor(ctx, ref, core.ProcessorLimits{})
//	out, err := p.Process(ctx, &core.ProcessInput{...}) // per batch
//
// Process may be called concurrently (for different partitions); each call
// takes an idle instance or starts one. An error fails that batch only:
// errors.Is it against ErrTimeout, ErrTrap, ErrGuest, ErrOutputLimit,
// ErrABI, ErrWorker. Instantiation (the start function, _initialize) runs
// under the same time and memory limits as a batch: Processor fails with
// ErrTimeout, ErrTrap (from a worker: ErrWorker wrapping it) or
// ErrMemoryLimit for a module that cannot start, and Host.Limits resolves and checks a
// pipeline's limits before anything runs. Output records alias buffers owned by the output, and
// records a guest forwarded unchanged share the memory of the input records.
//
// # Isolation and the CPU bound
//
// wazero cannot interrupt a guest cheaply (its context-done check costs
// 16-50x in guest code), so by default (IsolationProcess) guests run in
// worker processes: the broker binary re-executed with WorkerEnv=1, whose
// main calls RunWorker. The broker sends batches over the worker's stdin and
// reads results from its stdout (on Linux the batch and result bytes go
// through a memory region the two share, the pipe carrying only small
// frames: shm.go, Config.WorkerSharedMemory); a watchdog timer per batch kills a worker
// that overruns, so a guest that loops forever is stopped and costs nothing
// afterwards, while guest code runs at full speed. State reads cross the
// pipe at most once per batch (see proto.go); writes stay in the worker
// until the batch succeeds. IsolationInProcess (interruptible, slow) and
// IsolationTrusted (fast, unbounded) run guests in the broker process.
// docs/RATIONALE.md ("Wasm CPU limits") has the measurements.
//
// A test binary can be its own worker: call RunWorker from TestMain when
// WorkerEnv is set (see main_test.go).
//
// The ABI is described in sdk/abi and docs/abi.md; RunLocal runs a module
// over JSON lines for `weir transform test`.
package plugins
