package core

import (
	"context"
	"errors"
	"log/slog"
)

// ErrModuleInvalid is wrapped by errors that reject an uploaded module.
var ErrModuleInvalid = errors.New("module invalid")

// ModuleInvalidError says why a module was rejected. It wraps ErrModuleInvalid.
type ModuleInvalidError struct{ Reason string }

func (e *ModuleInvalidError) Error() string { return "module invalid: " + e.Reason }
func (e *ModuleInvalidError) Unwrap() error { return ErrModuleInvalid }

// DefaultMaxModuleBytes bounds an uploaded module: 16 MiB, the same as the
// gateway's default HTTP body limit, so that any module within the limit can
// be uploaded in one request. Raise both together (docs/pipelines.md).
const DefaultMaxModuleBytes = 16 << 20

// ModuleInfo is what validation learns of a module.
type ModuleInfo struct {
	ABIVersion uint32
	SHA256     string // hex
	Size       int
	// MemoryPages is the initial size of the module's memory, in 64 KiB
	// pages: what instantiating it allocates before any code runs.
	MemoryPages uint32
}

// ModuleRef names one stored version of a module with its bytes.
type ModuleRef struct {
	Name    string
	Version int
	SHA256  string
	Wasm    []byte
}

// Defaults and bounds of ProcessorLimits (docs/pipelines.md, "Limits").
// A zero field takes the runtime's default (these, unless the operator
// configured the runtime otherwise); a value outside [Min, Max] is refused
// when the pipeline is created, with ErrBadRequest (HTTP 400).
const (
	DefaultMemoryPages = 256  // 16 MiB of guest memory
	MemoryPagesMax     = 4096 // 256 MiB: a guest is one instance per partition and idle worker

	DefaultBatchTimeoutMs = 2000
	BatchTimeoutMsMin     = 10     // below this a worker's watchdog timer is mostly noise
	BatchTimeoutMsMax     = 60_000 // one minute: past it, a stuck partition is a failure, not a slow one

	DefaultMaxOutputBytes = 16 << 20
	MaxOutputBytesMax     = 32 << 20 // an exactly-once batch's outputs are one Raft entry (64 MiB at most)
)

// ProcessorLimits bound one pipeline's module, for each batch and for
// instantiation (the module's start function and _initialize run under the
// same time and memory limits as a batch). Zero fields take the runtime's
// defaults.
type ProcessorLimits struct {
	MemoryPages    uint32 `json:"memory_pages,omitempty"`     // 64 KiB pages of guest memory
	BatchTimeoutMs int64  `json:"batch_timeout_ms,omitempty"` // CPU/wall time allowed for one batch
	MaxOutputBytes int64  `json:"max_output_bytes,omitempty"` // bytes of emitted records per batch
}

// Validate checks the limits against their bounds (zero is the default and
// valid). Errors wrap ErrBadRequest.
func (l ProcessorLimits) Validate() error {
	if l.MemoryPages > MemoryPagesMax {
		return Invalidf("limits.memory_pages is %d; at most %d (%d MiB)", l.MemoryPages, MemoryPagesMax, MemoryPagesMax/16)
	}
	if l.BatchTimeoutMs != 0 && (l.BatchTimeoutMs < BatchTimeoutMsMin || l.BatchTimeoutMs > BatchTimeoutMsMax) {
		return Invalidf("limits.batch_timeout_ms is %d; it must be between %d and %d", l.BatchTimeoutMs, BatchTimeoutMsMin, BatchTimeoutMsMax)
	}
	if l.MaxOutputBytes < 0 || l.MaxOutputBytes > MaxOutputBytesMax {
		return Invalidf("limits.max_output_bytes is %d; it must be between 1 and %d (%d MiB)", l.MaxOutputBytes, MaxOutputBytesMax, MaxOutputBytesMax>>20)
	}
	return nil
}

// StateReader reads a pipeline's committed state for one input partition.
type StateReader interface {
	Get(key []byte) (value []byte, ok bool)
}

// StateLister lists a pipeline's committed state keys for one input
// partition; the broker's StateReader implements it (a module's
// state_keys calls use it; a StateReader without it lists nothing).
type StateLister interface {
	// Keys returns at most limit keys that begin with prefix and are at or
	// after start, in byte order.
	Keys(prefix, start string, limit int) []string
}

// ProcessInput is one batch handed to a module.
type ProcessInput struct {
	Pipeline  string
	Topic     string
	Partition int
	Records   []Record
	Outputs   []string          // output topic names; OutputRecord.Output indexes it
	Config    map[string]string // the pipeline's config
	State     StateReader       // nil for stateless pipelines
	// Log, when not nil, receives each line the module logged during the
	// call (also of a failed call), after the call returns, in order.
	Log func(level slog.Level, msg string)
	// Tick asks for a tick instead of a batch (Records is empty): the
	// module's timers may fire without new input (docs/abi.md,
	// weir_tick). A module that takes no ticks does nothing and reports
	// ProcessOutput.Pending false.
	Tick bool
}

// OutputRecord is one record a module emitted.
type OutputRecord struct {
	Output int // index into ProcessInput.Outputs
	Record Record
}

// StateChange is one state write a module made during a batch.
type StateChange struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// ProcessOutput is everything a batch produced. Nothing of it takes effect
// unless the caller commits it.
type ProcessOutput struct {
	Records []OutputRecord
	State   []StateChange // in the order the module made them
	// Dead lists indexes of input records the module asked to dead-letter
	// (for example malformed input), with the reason.
	Dead []DeadRecord
	// Pending, for a tick, reports that the module has timers pending and
	// wants to be ticked again at the pipeline's tick interval even
	// without new input.
	Pending bool
}

// DeadRecord is an input record a module rejected.
type DeadRecord struct {
	Index  int
	Reason string
}

// Processor runs one module instance set for one pipeline. Process is called
// by one goroutine at a time per input partition; a Processor may be shared
// across partitions and must be safe for that.
type Processor interface {
	// Process runs one batch. An error (trap, timeout, limit) fails the whole
	// batch; the caller retries or dead-letters it.
	Process(ctx context.Context, in *ProcessInput) (*ProcessOutput, error)
	Close() error
}

// Runtime compiles and runs modules (plugins.Host implements it).
type Runtime interface {
	// Validate checks an uploaded module; errors wrap ErrModuleInvalid.
	Validate(ctx context.Context, wasm []byte) (ModuleInfo, error)
	// Limits resolves a pipeline's limits as Processor would apply them:
	// zero fields take the runtime's defaults. Limits the runtime does not
	// allow are refused with an error wrapping ErrBadRequest.
	Limits(l ProcessorLimits) (ProcessorLimits, error)
	// Processor prepares a module to run with the given limits: it
	// instantiates the module once (its start function and _initialize run
	// under the limits), so that a module that cannot start fails here.
	Processor(ctx context.Context, m ModuleRef, limits ProcessorLimits) (Processor, error)
}
