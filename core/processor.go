package core

import (
	"context"
	"errors"
)

// ErrModuleInvalid is wrapped by errors that reject an uploaded module.
var ErrModuleInvalid = errors.New("module invalid")

// ModuleInvalidError says why a module was rejected. It wraps ErrModuleInvalid.
type ModuleInvalidError struct{ Reason string }

func (e *ModuleInvalidError) Error() string { return "module invalid: " + e.Reason }
func (e *ModuleInvalidError) Unwrap() error { return ErrModuleInvalid }

// ModuleInfo is what validation learns of a module.
type ModuleInfo struct {
	ABIVersion uint32
	SHA256     string // hex
	Size       int
}

// ModuleRef names one stored version of a module with its bytes.
type ModuleRef struct {
	Name    string
	Version int
	SHA256  string
	Wasm    []byte
}

// ProcessorLimits bound one pipeline's module. Zero fields take the
// runtime's defaults.
type ProcessorLimits struct {
	MemoryPages    uint32 `json:"memory_pages,omitempty"`     // 64 KiB pages of guest memory
	BatchTimeoutMs int64  `json:"batch_timeout_ms,omitempty"` // CPU/wall time allowed for one batch
	MaxOutputBytes int64  `json:"max_output_bytes,omitempty"` // bytes of emitted records per batch
}

// StateReader reads a pipeline's committed state for one input partition.
type StateReader interface {
	Get(key []byte) (value []byte, ok bool)
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
	// Processor prepares a module to run with the given limits.
	Processor(ctx context.Context, m ModuleRef, limits ProcessorLimits) (Processor, error)
}
