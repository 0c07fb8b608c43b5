package segment

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

// FS is the filesystem a Log keeps its files in: OS (the default) in
// production; tests substitute one that loses whatever was not fsynced when
// "the power fails" (raftlog's power-loss test). Names are filepath names.
// Errors for missing files must satisfy errors.Is(err, os.ErrNotExist).
type FS interface {
	// Create creates or truncates the named file, open for reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading.
	Open(name string) (File, error)
	// OpenForWrite opens an existing file for reading and writing, keeping
	// its content.
	OpenForWrite(name string) (File, error)
	// OpenDir opens a directory, for Sync only.
	OpenDir(name string) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	RemoveAll(name string) error
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) in dir, in any order.
	List(dir string) ([]string, error)
	Stat(name string) (os.FileInfo, error)
}

// File is an open file of an FS. *os.File implements it.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	io.Closer
	Stat() (os.FileInfo, error)
	Sync() error
	// Truncate changes the size of the file; a later Sync makes it durable.
	Truncate(size int64) error
}

// OS is the operating system's filesystem, the FS a zero Config uses.
type OS struct{}

var _ FS = OS{}

func (OS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}
func (OS) Open(name string) (File, error)         { return os.Open(name) }
func (OS) OpenForWrite(name string) (File, error) { return os.OpenFile(name, os.O_RDWR, 0) }
func (OS) OpenDir(name string) (File, error)      { return os.Open(name) }
func (OS) Rename(oldname, newname string) error   { return os.Rename(oldname, newname) }
func (OS) Remove(name string) error               { return os.Remove(name) }
func (OS) RemoveAll(name string) error            { return os.RemoveAll(name) }
func (OS) MkdirAll(dir string, perm os.FileMode) error {
	return os.MkdirAll(dir, perm)
}
func (OS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }
func (OS) List(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// SyncDir fsyncs directory dir of fs, making the entries created, renamed
// or removed in it durable.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirAll creates dir and its missing parents durably: it fsyncs the parent
// of every directory it creates, so that a power failure cannot take away a
// directory whose files were fsynced.
func mkdirAll(fs FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(fs, parent); err != nil {
			return err
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return SyncDir(fs, parent)
}
