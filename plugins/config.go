package plugins

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/weir-broker/weir/core"
)

// Isolation says where guests run and how their CPU time is bounded.
type Isolation string

const (
	// IsolationProcess runs every instance in a worker child process (the
	// broker binary re-executed in worker mode, see RunWorker). A watchdog
	// kills a worker whose batch overruns its time limit, so a guest that
	// loops forever costs nothing afterwards; guest code runs at full speed.
	// The default.
	IsolationProcess Isolation = "process"
	// IsolationInProcess runs guests in the broker process with wazero's
	// context-done interruption: CPU time is bounded, but guest code runs
	// 16-50 times slower (docs/RATIONALE.md, "Wasm CPU limits").
	IsolationInProcess Isolation = "inprocess"
	// IsolationTrusted runs guests in the broker process at full speed with
	// no CPU bound: a batch that overruns its time limit fails, but a guest
	// that never returns keeps a core busy until the broker exits. Only for
	// modules the operator trusts.
	IsolationTrusted Isolation = "trusted"
)

// WorkerEnv is the environment variable that puts the broker binary in Wasm
// worker mode: when it is "1", cmd/weir's main must call RunWorker on stdin
// and stdout before anything else, and exit.
const WorkerEnv = "WEIR_WASM_WORKER"

// Defaults of Config and core.ProcessorLimits; the limits' defaults and
// bounds are core's (core.DefaultMemoryPages and the rest).
const (
	DefaultMaxModuleBytes  = core.DefaultMaxModuleBytes // 16 MiB, the gateway's body limit
	DefaultMemoryPages     = core.DefaultMemoryPages    // 16 MiB
	DefaultMaxMemoryPages  = core.MemoryPagesMax        // 256 MiB
	DefaultBatchTimeout    = core.DefaultBatchTimeoutMs * time.Millisecond
	DefaultMaxOutputBytes  = core.DefaultMaxOutputBytes
	DefaultMaxStateBytes   = 1 << 20
	DefaultMaxIdle         = 2
	DefaultWorkerStartTime = time.Minute
)

// Config configures a Host. The zero value is usable: process isolation,
// default limits, no disk cache.
type Config struct {
	// CacheDir holds wazero's compilation cache, shared by the broker and its
	// workers. Empty: an in-memory cache in the broker, and every worker
	// compiles the module itself (slow: ~1 s per Go guest).
	CacheDir string
	// MaxModuleBytes bounds an uploaded module. Default 16 MiB, the gateway's
	// default body limit: a larger module could not be uploaded anyway.
	MaxModuleBytes int
	// Isolation is where guests run. Default IsolationProcess.
	Isolation Isolation
	// Limits apply where a pipeline's core.ProcessorLimits leaves a zero,
	// for batches and for instantiation (start function, _initialize).
	// Defaults: 256 pages (16 MiB), 2000 ms, 16 MiB of output per batch.
	// They must be within core's bounds (core.ProcessorLimits.Validate).
	Limits core.ProcessorLimits
	// MaxMemoryPages is the most memory a pipeline may ask for, in 64 KiB
	// pages: a module declaring more initial memory is refused at upload.
	// Default and upper bound core.MemoryPagesMax, 4096 (256 MiB).
	MaxMemoryPages uint32
	// MaxStateBytes bounds one state key plus value. Default 1 MiB.
	MaxStateBytes int
	// MaxIdle is how many idle instances (or worker processes) a processor
	// keeps for reuse. Default 2.
	MaxIdle int
	// WorkerPath is the executable started for IsolationProcess, with
	// WorkerArgs and WorkerEnv=1 in its environment. Default: this process's
	// own executable (os.Executable), no arguments.
	WorkerPath string
	WorkerArgs []string
	// WorkerSharedMemory is the largest region of memory a worker shares
	// with the broker (Linux), in bytes: batches are written into it
	// instead of through the worker's pipe, and results that fit come back
	// in it. It starts at 1 MiB and grows to the largest batch; batches
	// above it go through the pipe. Default 64 MiB
	// (DefaultWorkerSharedMemory); negative: pipes only.
	WorkerSharedMemory int
	// WorkerStartTimeout bounds starting a worker and loading the module.
	// Default 1 minute.
	WorkerStartTimeout time.Duration
	// Logger receives guest log lines and worker diagnostics. Default
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxModuleBytes == 0 {
		c.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if c.Isolation == "" {
		c.Isolation = IsolationProcess
	}
	if c.Limits.MemoryPages == 0 {
		c.Limits.MemoryPages = DefaultMemoryPages
	}
	if c.Limits.BatchTimeoutMs == 0 {
		c.Limits.BatchTimeoutMs = DefaultBatchTimeout.Milliseconds()
	}
	if c.Limits.MaxOutputBytes == 0 {
		c.Limits.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.MaxMemoryPages == 0 {
		c.MaxMemoryPages = DefaultMaxMemoryPages
	}
	if c.MaxStateBytes == 0 {
		c.MaxStateBytes = DefaultMaxStateBytes
	}
	if c.MaxIdle == 0 {
		c.MaxIdle = DefaultMaxIdle
	}
	if c.WorkerStartTimeout == 0 {
		c.WorkerStartTimeout = DefaultWorkerStartTime
	}
	if c.WorkerSharedMemory == 0 {
		c.WorkerSharedMemory = DefaultWorkerSharedMemory
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration error. New calls it after applying
// defaults.
func (c *Config) Validate() error {
	switch c.Isolation {
	case "", IsolationProcess, IsolationInProcess, IsolationTrusted:
	default:
		return fmt.Errorf("plugins: unknown isolation %q", c.Isolation)
	}
	if c.MaxModuleBytes < 0 || c.MaxStateBytes < 0 || c.MaxIdle < 0 {
		return errors.New("plugins: negative size in config")
	}
	if c.MaxMemoryPages > core.MemoryPagesMax {
		return fmt.Errorf("plugins: MaxMemoryPages above %d (%d MiB)", core.MemoryPagesMax, core.MemoryPagesMax/16)
	}
	if err := c.checkLimits(c.Limits); err != nil {
		return fmt.Errorf("plugins: default limits: %w", err)
	}
	return nil
}

// checkLimits checks limits against core's bounds and MaxMemoryPages.
// Errors wrap core.ErrBadRequest.
func (c *Config) checkLimits(l core.ProcessorLimits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if c.MaxMemoryPages != 0 && l.MemoryPages > c.MaxMemoryPages {
		return core.Invalidf("limits.memory_pages of %d pages is above the maximum of %d (%d MiB) on this broker", l.MemoryPages, c.MaxMemoryPages, c.MaxMemoryPages/16)
	}
	return nil
}

// limits are resolved processor limits.
type limits struct {
	pages    uint32
	timeout  time.Duration
	maxOut   int64
	maxState int
}

func (c *Config) resolve(l core.ProcessorLimits) (limits, error) {
	if l.MemoryPages == 0 {
		l.MemoryPages = c.Limits.MemoryPages
	}
	if l.BatchTimeoutMs == 0 {
		l.BatchTimeoutMs = c.Limits.BatchTimeoutMs
	}
	if l.MaxOutputBytes == 0 {
		l.MaxOutputBytes = c.Limits.MaxOutputBytes
	}
	if err := c.checkLimits(l); err != nil {
		return limits{}, err
	}
	return limits{
		pages:    l.MemoryPages,
		timeout:  time.Duration(l.BatchTimeoutMs) * time.Millisecond,
		maxOut:   l.MaxOutputBytes,
		maxState: c.MaxStateBytes,
	}, nil
}
