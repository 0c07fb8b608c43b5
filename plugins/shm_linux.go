package plugins

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// newShm creates a region of size bytes (broker side).
func newShm(size int) (*shm, error) {
	fd, err := unix.MemfdCreate("weir-wasm-worker", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	s := &shm{f: os.NewFile(uintptr(fd), "weir-wasm-worker-shm")}
	if err := s.f.Truncate(int64(size)); err != nil {
		s.f.Close()
		return nil, err
	}
	if err := s.remap(size); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

// openShm takes over a region passed by the broker (worker side), mapping
// nothing until the first batch names its size.
func openShm(f *os.File) (*shm, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	return &shm{f: f}, nil
}

// remap maps the region's first size bytes, after checking the file has
// them (a mapping past the end of the file faults on access).
func (s *shm) remap(size int) error {
	if size == len(s.mem) {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(s.f.Fd()), &st); err != nil {
		return err
	}
	if size <= 0 || int64(size) > st.Size {
		return fmt.Errorf("shared memory of %d bytes, the file has %d", size, st.Size)
	}
	mem, err := unix.Mmap(int(s.f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	s.unmap()
	s.mem = mem
	return nil
}

func (s *shm) unmap() {
	if s.mem != nil {
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
}

// close unmaps the region and closes its file.
func (s *shm) close() {
	s.unmap()
	s.f.Close()
}
