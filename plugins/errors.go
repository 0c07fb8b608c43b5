package plugins

import (
	"errors"
	"fmt"
)

// Errors a batch fails with. Each fails that batch only; the processor
// discards the instance (or worker) that failed, except after ErrGuest.
var (
	// ErrTimeout: the batch ran past its time limit; the guest was stopped.
	ErrTimeout = errors.New("wasm: batch time limit exceeded")
	// ErrOutputLimit: the batch emitted more bytes than its limit.
	ErrOutputLimit = errors.New("wasm: output limit exceeded")
	// ErrTrap: the guest trapped (including running out of memory) or exited.
	ErrTrap = errors.New("wasm: guest trapped")
	// ErrGuest: the guest's handler returned an error.
	ErrGuest = errors.New("wasm: guest returned an error")
	// ErrABI: the guest broke the ABI (malformed data, index out of range,
	// state entry too large).
	ErrABI = errors.New("wasm: guest broke the abi")
	// ErrMemoryLimit: the module declares more initial memory than its
	// memory limit; Processor refuses it before running anything. (A guest
	// that grows past the limit while running traps: ErrTrap.)
	ErrMemoryLimit = errors.New("wasm: memory limit exceeded")
	// ErrWorker: the worker process failed or could not start.
	ErrWorker = errors.New("wasm: worker process failed")
	// ErrClosed: the processor or host is closed.
	ErrClosed = errors.New("wasm: closed")
)

// error kinds on the worker pipe, in the order of kindErrs.
var kindErrs = []error{ErrTrap, ErrGuest, ErrABI, ErrOutputLimit, ErrTimeout, ErrWorker}

func errKind(err error) uint32 {
	for i, e := range kindErrs {
		if errors.Is(err, e) {
			return uint32(i)
		}
	}
	return uint32(len(kindErrs) - 1)
}

// kindError rebuilds an error sent by a worker.
func kindError(kind uint32, msg string) error {
	if int(kind) >= len(kindErrs) {
		kind = uint32(len(kindErrs) - 1)
	}
	return &batchError{kind: kindErrs[kind], msg: msg}
}

type batchError struct {
	kind error
	msg  string
}

func (e *batchError) Error() string { return e.msg }
func (e *batchError) Unwrap() error { return e.kind }

func batchErrf(kind error, format string, args ...any) error {
	return &batchError{kind: kind, msg: kind.Error() + ": " + fmt.Sprintf(format, args...)}
}
