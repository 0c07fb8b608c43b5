//go:build !linux

package plugins

import "os"

func newShm(size int) (*shm, error) { return nil, errNoShm }

func openShm(f *os.File) (*shm, error) { return nil, errNoShm }

func (s *shm) remap(size int) error { return errNoShm }

func (s *shm) close() { s.f.Close() }
