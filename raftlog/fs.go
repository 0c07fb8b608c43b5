package raftlog

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	dbconfig "github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"

	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// A Host keeps every file in one filesystem: Config.FS when set (Dragonboat's
// vfs interface, so the NodeHost, its LogDB and its snapshots use the same
// one), the operating system's otherwise. Weir's own files — segments,
// checkpoints, roles.json — go through segment.FS; vfsFS adapts a vfs.FS to
// it.

// newFS returns the segment.FS of a Config.FS value.
func newFS(fs dbconfig.IFS) segment.FS {
	if fs == nil {
		return segment.OS{}
	}
	return vfsFS{fs}
}

// vfsFS is a segment.FS over a Dragonboat (github.com/lni/vfs) filesystem.
type vfsFS struct{ fs dbconfig.IFS }

var _ segment.FS = vfsFS{}

func (v vfsFS) Create(name string) (segment.File, error) {
	// vfs.FS.Create opens for writing only (the in-memory FS enforces it):
	// create, then reopen for reading and writing.
	f, err := v.fs.Create(name)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return v.OpenForWrite(name)
}

func (v vfsFS) Open(name string) (segment.File, error) {
	f, err := v.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return v.file(name, f), nil
}

func (v vfsFS) OpenForWrite(name string) (segment.File, error) {
	// ReuseForWrite(name, name): vfs's only way to open an existing file
	// for writing without truncating it or appending to it.
	f, err := v.fs.ReuseForWrite(name, name)
	if err != nil {
		return nil, err
	}
	return v.file(name, f), nil
}

func (v vfsFS) OpenDir(name string) (segment.File, error) {
	f, err := v.fs.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return v.file(name, f), nil
}

func (v vfsFS) Rename(oldname, newname string) error { return v.fs.Rename(oldname, newname) }
func (v vfsFS) Remove(name string) error             { return v.fs.Remove(name) }
func (v vfsFS) RemoveAll(name string) error          { return v.fs.RemoveAll(name) }
func (v vfsFS) List(dir string) ([]string, error)    { return v.fs.List(dir) }
func (v vfsFS) MkdirAll(dir string, perm os.FileMode) error {
	return v.fs.MkdirAll(dir, perm)
}
func (v vfsFS) Stat(name string) (os.FileInfo, error) { return v.fs.Stat(name) }

// file returns f as a segment.File: itself when it can truncate (an
// *os.File), else wrapped in a vfsFile that emulates truncation.
func (v vfsFS) file(name string, f vfs.File) segment.File {
	if sf, ok := f.(segment.File); ok {
		return sf
	}
	return &vfsFile{fs: v.fs, name: name, f: f}
}

// vfsFile adds Truncate to a vfs file that lacks it (vfs's in-memory files).
// Truncate writes the kept prefix to a new file under the same name; as
// with a real truncate, the change is durable only after Sync, which then
// also fsyncs the directory (the name now points at the new file). The
// segment package truncates only a log's active segment, when Open cuts a
// torn tail or an append failed halfway, and never writes with Write after.
type vfsFile struct {
	fs   dbconfig.IFS
	name string

	mu       sync.RWMutex // guards the fields below; Truncate and Sync hold it exclusively
	f        vfs.File
	replaced bool // a Truncate replaced the file since the last Sync
}

func (f *vfsFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.f.ReadAt(p, off)
}

func (f *vfsFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.f.WriteAt(p, off)
}

func (f *vfsFile) Write(p []byte) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.f.Write(p)
}

func (f *vfsFile) Stat() (os.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.f.Stat()
}

func (f *vfsFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Close()
}

func (f *vfsFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.f.Sync(); err != nil {
		return err
	}
	if f.replaced {
		if err := segment.SyncDir(vfsFS{f.fs}, filepath.Dir(f.name)); err != nil {
			return err
		}
		f.replaced = false
	}
	return nil
}

func (f *vfsFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.f.Stat()
	if err != nil {
		return err
	}
	if size == st.Size() {
		return nil
	}
	if size > st.Size() || size < 0 {
		return errors.New("raftlog: this filesystem only truncates files to a shorter length")
	}
	keep := make([]byte, size)
	if _, err := f.f.ReadAt(keep, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	w, err := f.fs.Create(f.name)
	if err != nil {
		return err
	}
	_, err = w.Write(keep)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	nf, err := f.fs.ReuseForWrite(f.name, f.name)
	if err != nil {
		return err
	}
	f.f.Close()
	f.f, f.replaced = nf, true
	return nil
}

// readFile reads the whole named file of fs, like os.ReadFile.
func readFile(fs segment.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.NewSectionReader(f, 0, st.Size()))
}

// writeFileAtomic writes b to path through a synced temporary file, a
// rename and an fsync of the directory.
func writeFileAtomic(fs segment.FS, path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	return segment.SyncDir(fs, filepath.Dir(path))
}
