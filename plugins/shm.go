package plugins

import (
	"errors"
	"fmt"
	"os"
)

// Shared memory between the broker and a worker (Linux): the broker creates
// a memory file (memfd) per worker, maps it, and passes it to the worker as
// its file descriptor 3 (shmFDEnv names it). A batch is then encoded
// straight into the region and only a small msgBatch frame crosses the
// pipe, naming the region's size and the batch's length (flagShm); the
// worker answers with msgResultShm when its result fits the region. So a
// batch costs two small pipe messages, one wake-up each way, instead of a
// megabyte squeezed through a 64 KiB pipe buffer in a dozen hand-offs.
//
// The region belongs to the broker: it only grows it (ftruncate, remap)
// between batches, never while one is in flight, and tells the worker the
// size with every batch (the worker remaps when it changed). The broker
// copies a result out of the region before it decodes it, so a worker that
// changes the region afterwards cannot change what was decoded. Batches and
// results above the region's limit (Config.WorkerSharedMemory) go through
// the pipe as before; so does everything with a worker that does not
// announce capShm in its hello.

// shmFDEnv is set, in a worker's environment, to the descriptor of its
// shared region (always 3: the first of exec.Cmd.ExtraFiles).
const shmFDEnv = "WEIR_WASM_WORKER_SHM_FD"

// capShm, in msgHello's capabilities, says the worker mapped the region.
const capShm uint32 = 1

// shmInitial is a new region's size; it grows to the largest batch.
const shmInitial = 1 << 20

// DefaultWorkerSharedMemory is Config.WorkerSharedMemory's default.
const DefaultWorkerSharedMemory = 64 << 20

var errNoShm = errors.New("shared memory is not supported on this platform")

// shm is one mapped shared region.
type shm struct {
	f   *os.File
	mem []byte // the mapping: len(mem) is the region's size
}

// grow makes the region at least n bytes (broker side). It may move the
// mapping: slices of the old one must not be used afterwards.
func (s *shm) grow(n int) error {
	if n <= len(s.mem) {
		return nil
	}
	size := max(2*len(s.mem), shmInitial)
	for size < n {
		size *= 2
	}
	if err := s.f.Truncate(int64(size)); err != nil {
		return fmt.Errorf("grow shared memory to %d bytes: %w", size, err)
	}
	return s.remap(size)
}
